"""The poller service end to end: store devices watched by SNMP → real agents on loopback → ``record_polls``
→ device state, ports, incidents and history in a real (SQLite) store."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, insert, select

from controller.metrics import build_registry, poll_metrics, render_metrics
from controller.pollers.snmp.decode import read_snmprec
from controller.pollers.snmp.service import SnmpPollerService
from controller.store.models import Device, DeviceComponent, DeviceState, Incident, Observation
from tests.controller.pollers.snmp.conftest import SCHOOL
from tests.controller.pollers.snmp.test_decode import snapshot_of
from tests.fixtures.snmp import RECORDINGS, GarbageAgent, Snmpsim, UdpLink
from tests.helpers import add_school, wait_for

pytestmark = pytest.mark.integration


def add_device(engine: Engine, uid: str, address: str, credential_ref: str | None = None, kind: str = "switch",
               profile: str | None = None, school_uplink: bool = False) -> int:
    """Register a device watched by SNMP; returns its id."""
    with engine.begin() as conn:
        return int(conn.execute(insert(Device).values(
            school_id=SCHOOL, uid=uid, kind=kind, watched_by="snmp", mgmt_address=address,
            credential_ref=credential_ref, poll_profile=profile, is_school_uplink=school_uplink,
        ).returning(Device.id)).scalar_one())


def polls(engine: Engine, device_id: int) -> list[dict[str, Any]]:
    """The device's poll history, oldest first (``ts`` added to each)."""
    with engine.connect() as conn:
        rows = conn.execute(select(Observation.ts, Observation.data).where(
            Observation.device_id == device_id, Observation.kind == "poll").order_by(Observation.ts)).all()
    return [{**data, "ts": ts} for ts, data in rows]


def incident(engine: Engine, device_id: int, code: str) -> Any:
    """The latest incident of that code for the device (or None)."""
    with engine.connect() as conn:
        return conn.execute(select(Incident).where(Incident.device_id == device_id, Incident.code == code)
                            .order_by(Incident.id.desc())).first()


def service(engine: Engine, env: dict[str, str], **overrides: Any) -> SnmpPollerService:
    """A fast-cadence service for tests (the defaults are minutes, not fractions of a second)."""
    options: dict[str, Any] = {"interval_s": 0.3, "timeout_s": 0.5, "retries": 0, "fail_threshold": 2,
                               "refresh_s": 0.2, "backoff_max_s": 1.0, "batch_interval_s": 0.1, "env": env}
    options.update(overrides)
    return SnmpPollerService(engine, **options)


def _samples(registry: CollectorRegistry) -> dict[str, float]:
    """The registry's ``poller="snmp"`` samples by name (any other poller's would be a bug here)."""
    families = text_string_to_metric_families(render_metrics(registry).decode())
    samples = [s for f in families for s in f.samples if s.name.startswith("classfleet_poll_")]
    assert {s.labels.get("poller") for s in samples} <= {"snmp"}
    return {s.name: s.value for s in samples if "le" not in s.labels}


def test_service_records_ports_identity_and_clear_reasons_without_slowing_others(
        engine: Engine, snmpsim_agent: Snmpsim) -> None:
    """A good switch keeps its cadence while a wrong community, a garbage peer and a missing credential
    each get a recorded reason and, after N failed polls, switch.unreachable. The service reports the
    shared poller metrics (``poller="snmp"``): every check timed, rounds timed, timeouts counted."""
    env = {"SNMP_GOOD": "tplink_sg2008", "SNMP_BAD": "wrong-community"}
    registry, _ = build_registry(engine, 180)
    with GarbageAgent() as junk:
        good = add_device(engine, "sw-good", snmpsim_agent.address, "SNMP_GOOD")
        wrong = add_device(engine, "sw-wrong", snmpsim_agent.address, "SNMP_BAD")
        garbage = add_device(engine, "sw-junk", junk.address)
        unset = add_device(engine, "sw-nocred", snmpsim_agent.address, "SNMP_NOT_SET")
        svc = service(engine, env)
        svc.bind_metrics(poll_metrics(registry))
        svc.bind_metrics(poll_metrics(registry))  # binding twice registers nothing twice
        assert _samples(registry)["classfleet_poll_rounds_total"] == 0  # declared before the first round
        svc.start()
        try:
            wait_for(lambda: all(incident(engine, d, "switch.unreachable") for d in (wrong, garbage, unset)),
                     timeout=20, what="switch.unreachable for the three broken devices")
            wait_for(lambda: len(polls(engine, good)) >= 6, timeout=20, what="six polls of the good switch")
        finally:
            svc.stop()
    metrics = _samples(registry)
    every = [p for d in (good, wrong, garbage, unset) for p in polls(engine, d)]
    assert len(every) == svc.rounds
    asked = [p for p in every if p.get("error") != "config"]  # a missing credential asks the switch nothing
    assert metrics["classfleet_poll_check_duration_seconds_count"] == len(asked) < len(every)
    assert metrics["classfleet_poll_check_duration_seconds_sum"] > 0
    # the wrong community times out (no answer); junk answered and a missing credential asked nothing
    assert metrics["classfleet_poll_check_failures_total"] == len([p for p in every if p.get("error") == "timeout"])
    assert metrics["classfleet_poll_check_failures_total"] >= 2
    rounds = metrics["classfleet_poll_rounds_total"]
    assert 6 <= rounds <= len(every)  # a round is a pass over the switches due then, one or more of them
    assert metrics["classfleet_poll_duration_seconds_count"] == rounds
    assert metrics["classfleet_poll_duration_seconds_sum"] >= 0.5  # rounds waited out the 0.5 s timeouts
    assert metrics["classfleet_poll_round_errors_total"] == 0
    good_polls = polls(engine, good)
    assert all(p["reachable"] for p in good_polls)
    gaps = [(b["ts"] - a["ts"]).total_seconds() for a, b in zip(good_polls, good_polls[1:], strict=False)]
    assert max(gaps) < 1.5, gaps  # its 0.3 s cadence held while the others waited out 0.5 s timeouts
    assert polls(engine, wrong)[-1]["error"] == "timeout" and "community" in polls(engine, wrong)[-1]["error_detail"]
    assert polls(engine, garbage)[-1]["error"] == "malformed_response"
    assert polls(engine, unset)[-1]["error"] == "config"
    assert "SNMP_NOT_SET" in polls(engine, unset)[-1]["error_detail"]
    for device_id, reason in ((wrong, "timeout"), (garbage, "malformed_response"), (unset, "config")):
        row = incident(engine, device_id, "switch.unreachable")
        assert row.state == "open" and row.detail["reason"] == reason
    with engine.connect() as conn:
        device = conn.execute(select(Device.vendor, Device.model).where(Device.id == good)).one()
        ports = conn.execute(select(DeviceComponent).where(DeviceComponent.device_id == good)).all()
        online = conn.scalar(select(DeviceState.online).where(DeviceState.device_id == good))
    assert tuple(device) == ("TP-Link", "TL-SG2008") and online
    recorded = snapshot_of(read_snmprec(RECORDINGS / "tplink_sg2008.snmprec"))
    assert {p.kind for p in ports} == {"port"}
    assert {p.index: p.status for p in ports} == {i.index: i.oper for i in recorded.interfaces if i.physical}
    assert len(ports) == 9  # rows of an Ethernet ifType; AUX (23) and Loopback (24) are not ports
    assert incident(engine, good, "switch.unreachable") is None


def test_switch_that_stops_answering_becomes_unreachable_and_recovers(
        engine: Engine, snmpsim_agent: Snmpsim) -> None:
    """Cut the link to a live agent: switch.unreachable opens after N polls; restore it: it resolves."""
    with UdpLink(("127.0.0.1", snmpsim_agent.port)) as link:
        device = add_device(engine, "sw-link", link.address, "SNMP_C")
        svc = service(engine, {"SNMP_C": "ciscosb_sg350-10"})
        svc.start()
        try:
            wait_for(lambda: polls(engine, device), timeout=10, what="a first poll")
            link.cut()
            wait_for(lambda: incident(engine, device, "switch.unreachable"), timeout=15, what="switch.unreachable")
            assert incident(engine, device, "switch.unreachable").state == "open"
            link.restore()
            wait_for(lambda: incident(engine, device, "switch.unreachable").state == "resolved", timeout=15,
                     what="recovery")
        finally:
            svc.stop()
    history = polls(engine, device)
    assert [p["reachable"] for p in history][0] is True and history[-1]["reachable"] is True
    assert any(not p["reachable"] and p["error"] == "timeout" for p in history)


def test_counter_wrap_uplink_down_and_reboot_live(engine: Engine, snmpsim_agent: Snmpsim) -> None:
    """SYNTHETIC recordings of one switch over time: a 32-bit wrap gives a sane rate and the uplink loss
    raises switch.uplink_down; the reboot raises switch.rebooted and gives no rate; never a negative one."""
    env = {"SNMP_SW": "synthetic_sw_t0"}
    device = add_device(engine, "sw-synth", snmpsim_agent.address, "SNMP_SW", school_uplink=True)
    svc = service(engine, env)
    svc.start()
    try:
        wait_for(lambda: len(polls(engine, device)) >= 2, timeout=10, what="two polls at t0")
        env["SNMP_SW"] = "synthetic_sw_wrapped"
        wait_for(lambda: incident(engine, device, "switch.uplink_down"), timeout=10, what="switch.uplink_down")
        wait_for(lambda: any("in_bps" in p and p["uptime_s"] == 1001.0 for p in polls(engine, device)),
                 timeout=10, what="a rate across the wrap")
        env["SNMP_SW"] = "synthetic_sw_rebooted"
        wait_for(lambda: incident(engine, device, "switch.rebooted"), timeout=10, what="switch.rebooted")
    finally:
        svc.stop()
    history = polls(engine, device)
    wrap_round = next(p for p in history if p["uptime_s"] == 1001.0 and "in_bps" in p)
    assert 0 < wrap_round["in_bps"] < 1e9  # 1500 bytes in a fraction of a second, not ~4 GB
    reboot_round = next(p for p in history if p["uptime_s"] == 3.0)
    assert "in_bps" not in reboot_round and "out_bps" not in reboot_round
    for p in history:
        assert p.get("in_bps", 0) >= 0 and p.get("out_bps", 0) >= 0
        assert p.get("in_bps", 0) < 12e9 and p.get("out_bps", 0) < 12e9
    up = incident(engine, device, "switch.uplink_down")
    assert up.detail["port"] == "ge-0/0/4" and up.detail["how"] == "speed"
    assert incident(engine, device, "school.upstream_down") is not None
    assert incident(engine, device, "switch.rebooted").state == "open"


def test_poll_now_and_stop_are_prompt(engine: Engine, snmpsim_agent: Snmpsim) -> None:
    """With a long interval, poll_now() still polls at once; stop() returns quickly and joins the thread."""
    device = add_device(engine, "sw-now", snmpsim_agent.address, "SNMP_N")
    svc = service(engine, {"SNMP_N": "procurve_2520"}, interval_s=3600, refresh_s=3600)
    svc.start()
    try:
        wait_for(lambda: len(polls(engine, device)) == 1, timeout=10, what="the first poll")
        time.sleep(0.3)
        svc.poll_now(device)
        wait_for(lambda: len(polls(engine, device)) == 2, timeout=10, what="the poll asked for")
    finally:
        started = time.monotonic()
        svc.stop()
        assert time.monotonic() - started < 5
    assert svc._thread is None


def test_worker_processes_share_the_schools_and_stop(engine: Engine, sqlite_url: str, snmpsim_agent: Snmpsim,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Two spawned workers, one shard of schools each: every device is polled (by exactly one), then both exit."""
    from controller.pollers.snmp.service import SnmpPollerProcesses, school_shard

    schools = ["thcs-a", "thcs-b", "thcs-c", "thcs-d"]
    for school in schools:
        add_school(engine, school)
    assert len({school_shard(s, 2) for s in schools}) == 2  # both workers have work
    monkeypatch.setenv("CLASSFLEET_TEST_SNMP", "ruijie")
    devices = []
    with engine.begin() as conn:
        for school in schools:
            devices.append(int(conn.execute(insert(Device).values(
                school_id=school, uid="sw-1", kind="switch", watched_by="snmp", mgmt_address=snmpsim_agent.address,
                credential_ref="CLASSFLEET_TEST_SNMP").returning(Device.id)).scalar_one()))
    workers = SnmpPollerProcesses(sqlite_url, workers=2, interval_s=600, refresh_s=600, timeout_s=1, retries=0,
                                  batch_interval_s=0.1, log_level="WARNING")
    registry = CollectorRegistry()
    workers.bind_metrics(poll_metrics(registry))
    workers.start()
    pids = workers.pids
    try:
        wait_for(lambda: all(len(polls(engine, d)) == 1 for d in devices), timeout=30, what="one poll per device")
        workers.poll_now(devices[0])
        wait_for(lambda: len(polls(engine, devices[0])) == 2, timeout=15, what="the poll asked for")
    finally:
        workers.stop()
    assert len(pids) == 2 and workers.pids == []
    assert all(polls(engine, d)[0]["reachable"] for d in devices)
    assert [len(polls(engine, d)) for d in devices[1:]] == [1, 1, 1]
    # the workers' polls are in this process's /metrics: one check per poll, no failures, rounds from both
    metrics = _samples(registry)
    assert metrics["classfleet_poll_check_duration_seconds_count"] == 5
    assert metrics["classfleet_poll_check_duration_seconds_sum"] > 0
    assert metrics["classfleet_poll_check_failures_total"] == 0
    assert metrics["classfleet_poll_rounds_total"] >= 2 == metrics["classfleet_poll_round_errors_total"] + 2


def test_inferred_uplink_survives_a_restart(engine: Engine, snmpsim_agent: Snmpsim) -> None:
    """The uplink inferred before a restart is remembered (port data in the store), so its loss after the
    restart still raises switch.uplink_down although nothing would single it out any more."""
    env = {"SNMP_R": "synthetic_sw_t0"}
    device = add_device(engine, "sw-restart", snmpsim_agent.address, "SNMP_R")
    first = service(engine, env)
    first.start()
    try:
        wait_for(lambda: polls(engine, device), timeout=10, what="a poll")
    finally:
        first.stop()
    assert polls(engine, device)[-1]["uplink"] == {"port": "ge-0/0/4", "how": "speed"}
    env["SNMP_R"] = "synthetic_sw_wrapped"
    second = service(engine, env)
    second.start()
    try:
        wait_for(lambda: incident(engine, device, "switch.uplink_down"), timeout=10, what="switch.uplink_down")
    finally:
        second.stop()
    assert incident(engine, device, "switch.uplink_down").detail["port"] == "ge-0/0/4"
