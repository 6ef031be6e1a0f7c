"""The store's fleet gauges written directly as exposition text say exactly what prometheus-client would;
poll metrics relayed from worker processes land as if observed here."""

from __future__ import annotations

import datetime as dt
import queue

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from controller.metrics import PollMetricsRelay, StoreCollector, poll_metrics
from controller.store import db
from controller.store.models import Device, EquipmentPlan, Room
from tests.helpers import add_school, write_online_pcs


def _samples(text: str) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
    return sorted((s.name, tuple(sorted(s.labels.items())), s.value)
                  for family in text_string_to_metric_families(text) for s in family.samples)


def test_fast_rendering_equals_prometheus_clients(sqlite_url):
    engine = db.make_engine(sqlite_url)
    add_school(engine, "s1")
    now = dt.datetime.now(dt.UTC)
    with Session(engine) as session, session.begin():
        lab = Room(school_id="s1", code="lab-1", name="Phòng máy", kind="computer_lab")
        session.add(lab)
        session.flush()
        session.add_all([
            Device(school_id="s1", uid="sw-1", kind="switch", watched_by="snmp", room_id=lab.id,
                   vendor='Cisco "Catalyst"', model="C2960\\X\nrev B"),  # every character the format escapes
            Device(school_id="s1", uid="cam-1", kind="camera", watched_by="onvif"),
            EquipmentPlan(school_id="s1", room_kind="computer_lab", device_kind="pc", planned=3)])
    write_online_pcs(engine, "s1", 3, now)
    collector = StoreCollector(engine, 180, clock=lambda: now)
    fast = collector.render().decode()
    registry = CollectorRegistry()
    registry.register(collector)
    slow = generate_latest(registry).decode()
    assert _samples(fast) == _samples(slow)
    info = {s.labels["device"]: s.labels for f in text_string_to_metric_families(fast) for s in f.samples
            if s.name == "classfleet_device_info"}
    assert info["sw-1"]["vendor"] == 'Cisco "Catalyst"' and info["sw-1"]["model"] == "C2960\\X\nrev B"
    assert len(info) == 5


def test_relayed_poll_metrics_land_as_if_observed_here():
    registry = CollectorRegistry()
    local = poll_metrics(registry)
    local.declare("snmp")
    wire: queue.Queue = queue.Queue(maxsize=3)
    relay = PollMetricsRelay(wire)
    relay.check_seconds.labels("snmp").observe(0.2)
    relay.check_failures.labels("snmp").inc()
    relay.rounds.labels("snmp").inc(2)
    relay.rounds.labels("snmp").inc()  # the queue is full: dropped and counted, the poll goes on
    assert relay.dropped == 1
    while not wire.empty():
        local.apply(wire.get())
    values = {(s.name, s.labels.get("le")): s.value for s in _samples_of(registry)}
    assert values[("classfleet_poll_check_duration_seconds_count", None)] == 1
    assert values[("classfleet_poll_check_duration_seconds_bucket", "0.25")] == 1
    assert values[("classfleet_poll_check_failures_total", None)] == 1
    assert values[("classfleet_poll_rounds_total", None)] == 2
    with pytest.raises(ValueError, match="not a relayed poll metric"):
        local.apply(("_engine", "snmp", "dispose", 0.0))


def _samples_of(registry: CollectorRegistry):
    return [s for family in text_string_to_metric_families(generate_latest(registry).decode()) for s in family.samples]
