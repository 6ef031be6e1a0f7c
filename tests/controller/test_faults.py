"""The faults engine: flapping held as one incident, agent.offline after a grace period, time.skew,
and root-cause suppression behind a school's unreachable uplink switch (both backends)."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from classfleet_wire import decode
from controller.faults import FaultPolicy, FaultSweeper
from controller.store import db, queries
from controller.store.models import Device, Incident
from controller.store.polls import FaultCheck, PollResult, record_polls
from controller.store.writer import Accepted, BatchWriter
from tests.helpers import add_school, heartbeat, status

T0 = dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC)
POLICY = FaultPolicy(flap_window=dt.timedelta(minutes=10), flap_threshold=3,
                     offline_after=dt.timedelta(minutes=3), offline_grace=dt.timedelta(minutes=5))


def _msg(topic: str, raw: bytes, at: dt.datetime) -> Accepted:
    return Accepted(decode(topic, raw), at, raw)


def _event(seq: int, state: str, ts: dt.datetime) -> bytes:
    return json.dumps({"v": 1, "session": 1, "seq": seq, "ts": ts.timestamp(), "code": "disk.low",
                       "severity": "warning", "state": state}).encode()


def _incidents(engine, code: str) -> list:
    with engine.connect() as conn:
        return conn.execute(select(Incident).where(Incident.code == code).order_by(Incident.id)).all()


def test_a_flapping_fault_is_one_incident_held_until_it_settles(db_url):
    engine = db.make_engine(db_url)
    add_school(engine, "s1")
    writer = BatchWriter(engine, POLICY)
    t = "classfleet/v1/s1/pc-1/event"
    seq = 0
    for i in range(4):  # raised and cleared four times in eight minutes
        for state in ("raised", "cleared"):
            seq += 1
            at = T0 + dt.timedelta(minutes=2 * i, seconds=30 * (state == "cleared"))
            writer.write([_msg(t, _event(seq, state, at), at)], [])
    rows = _incidents(engine, "disk.low")
    assert len(rows) == 1 and rows[0].count == 4 and rows[0].flapping and rows[0].state == "open"
    sweeper = FaultSweeper(engine, POLICY)
    sweeper.sweep_once(T0 + dt.timedelta(minutes=9))
    assert _incidents(engine, "disk.low")[0].state == "open"  # not settled yet
    sweeper.sweep_once(T0 + dt.timedelta(minutes=17))
    assert _incidents(engine, "disk.low")[0].state == "resolved"
    engine.dispose()


def test_a_fault_that_returns_after_the_window_is_a_new_incident(db_url):
    engine = db.make_engine(db_url)
    add_school(engine, "s1")
    writer = BatchWriter(engine, POLICY)
    t = "classfleet/v1/s1/pc-1/event"
    writer.write([_msg(t, _event(1, "raised", T0), T0)], [])
    writer.write([_msg(t, _event(2, "cleared", T0), T0 + dt.timedelta(minutes=1))], [])
    later = T0 + dt.timedelta(hours=2)
    writer.write([_msg(t, _event(3, "raised", later), later)], [])
    rows = _incidents(engine, "disk.low")
    assert [(r.state, r.flapping) for r in rows] == [("resolved", False), ("open", False)]
    engine.dispose()


def test_agent_offline_only_after_the_grace_period_and_resolved_on_return(db_url):
    engine = db.make_engine(db_url)
    add_school(engine, "s1")
    writer = BatchWriter(engine, POLICY)
    t = "classfleet/v1/s1/pc-1"
    writer.write([_msg(f"{t}/status", status("online", 1), T0),
                  _msg(f"{t}/heartbeat", heartbeat(1, 1, ts=T0.timestamp()), T0)], [])
    writer.write([_msg(f"{t}/status", status("offline", 1), T0 + dt.timedelta(minutes=1))], [])  # a reboot
    sweeper = FaultSweeper(engine, POLICY)
    sweeper.sweep_once(T0 + dt.timedelta(minutes=5))
    assert _incidents(engine, "agent.offline") == []
    sweeper.sweep_once(T0 + dt.timedelta(minutes=7))
    assert [r.state for r in _incidents(engine, "agent.offline")] == ["open"]
    back = T0 + dt.timedelta(minutes=8)
    writer.write([_msg(f"{t}/status", status("online", 2), back),
                  _msg(f"{t}/heartbeat", heartbeat(2, 1, ts=back.timestamp()), back)], [])
    sweeper.sweep_once(back + dt.timedelta(seconds=5))
    assert [r.state for r in _incidents(engine, "agent.offline")] == ["resolved"]
    # A machine that just goes silent (no Will) is offline after offline_after + grace.
    writer.write([_msg(f"{t}/heartbeat", heartbeat(2, 2, ts=back.timestamp()), back + dt.timedelta(seconds=10))], [])
    sweeper.sweep_once(back + dt.timedelta(minutes=7))
    assert [r.state for r in _incidents(engine, "agent.offline")] == ["resolved"]
    sweeper.sweep_once(back + dt.timedelta(minutes=9))
    assert [r.state for r in _incidents(engine, "agent.offline")] == ["resolved", "open"]
    engine.dispose()


def test_clock_skew_from_heartbeats(db_url):
    engine = db.make_engine(db_url)
    add_school(engine, "s1")
    writer = BatchWriter(engine, POLICY)
    t = "classfleet/v1/s1/pc-1"
    writer.write([_msg(f"{t}/status", status("online", 1), T0),
                  _msg(f"{t}/heartbeat", heartbeat(1, 1, ts=T0.timestamp() + 300), T0)], [])
    sweeper = FaultSweeper(engine, POLICY)
    sweeper.sweep_once(T0 + dt.timedelta(seconds=30))
    assert [r.state for r in _incidents(engine, "time.skew")] == ["open"]
    fixed = T0 + dt.timedelta(minutes=1)
    writer.write([_msg(f"{t}/heartbeat", heartbeat(1, 2, ts=fixed.timestamp() + 1), fixed)], [])
    sweeper.sweep_once(fixed + dt.timedelta(seconds=5))
    assert [r.state for r in _incidents(engine, "time.skew")] == ["resolved"]
    engine.dispose()


def test_devices_behind_an_unreachable_uplink_raise_no_incidents_of_their_own(db_url):
    engine = db.make_engine(db_url)
    add_school(engine, "s1")
    with Session(engine) as session, session.begin():
        switch = Device(school_id="s1", uid="sw-core", kind="switch", watched_by="snmp", is_school_uplink=True)
        session.add(switch)
        session.flush()
        switch_id = switch.id
    writer = BatchWriter(engine, POLICY)
    for i in range(5):
        t = f"classfleet/v1/s1/pc-{i}"
        writer.write([_msg(f"{t}/status", status("online", 1), T0),
                      _msg(f"{t}/heartbeat", heartbeat(1, 1, ts=T0.timestamp()), T0)], [])
    record_polls(engine, [PollResult(switch_id, T0, True, faults=(FaultCheck("switch.unreachable", False),))])
    cut = T0 + dt.timedelta(minutes=1)
    record_polls(engine, [PollResult(switch_id, cut, False, faults=(FaultCheck("switch.unreachable", True),))])
    sweeper = FaultSweeper(engine, POLICY)
    later = T0 + dt.timedelta(minutes=20)  # every PC has been silent for long
    sweeper.sweep_once(later)
    assert _incidents(engine, "agent.offline") == []
    assert len(_incidents(engine, "switch.unreachable")) == 1  # one incident for the school
    with Session(engine) as session:
        page = queries.list_devices(session, later, 180, queries.DeviceFilter(kind="pc"), 100, 0)
        assert {r[2] for r in page.items} == {"unreachable_upstream"}
    record_polls(engine, [PollResult(switch_id, later, True, faults=(FaultCheck("switch.unreachable", False),))])
    sweeper.sweep_once(later + dt.timedelta(seconds=1))
    assert len(_incidents(engine, "agent.offline")) == 5  # the link is back and the PCs still are not
    with Session(engine) as session:
        page = queries.list_devices(session, later, 180, queries.DeviceFilter(kind="pc"), 100, 0)
        assert {r[2] for r in page.items} == {"offline"}
    engine.dispose()
