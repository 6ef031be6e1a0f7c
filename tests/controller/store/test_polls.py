"""Poll results (the pollers' way into the store) on both backends."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.store import db
from controller.store.models import Device, DeviceComponent, DeviceState, Incident, Observation
from controller.store.polls import ComponentStatus, FaultCheck, PollResult, record_polls
from tests.helpers import add_school, count

T0 = dt.datetime(2026, 11, 30, 7, 0, tzinfo=dt.UTC)


def _switch(engine) -> int:
    add_school(engine, "s1")
    with Session(engine) as session, session.begin():
        device = Device(school_id="s1", uid="sw-core", kind="switch", watched_by="snmp", mgmt_address="127.0.0.1")
        session.add(device)
        session.flush()
        return device.id


def test_poll_rounds_drive_state_identity_components_and_incidents(db_url):
    engine = db.make_engine(db_url)
    dev = _switch(engine)
    ports = (ComponentStatus("port", 1, "up", "Gi1/0/1"), ComponentStatus("port", 2, "up", "Gi1/0/2"))
    record_polls(engine, [PollResult(dev, T0, True, {"uptime_s": 100.0}, {"vendor": "Cisco", "model": "C2960"},
                                     (FaultCheck("switch.uplink_down", False),), ports)])
    t1 = T0 + dt.timedelta(minutes=1)
    down = (ComponentStatus("port", 1, "up", "Gi1/0/1"), ComponentStatus("port", 2, "down", "Gi1/0/2"))
    for minute in (1, 2, 3):
        record_polls(engine, [PollResult(dev, T0 + dt.timedelta(minutes=minute), True, {},
                                         faults=(FaultCheck("switch.uplink_down", True, detail={"port": 2}),),
                                         components=down)])
    with engine.connect() as conn:
        incident = conn.execute(select(Incident)).one()
        port2 = conn.execute(select(DeviceComponent).where(DeviceComponent.index == 2)).one()
        device = conn.execute(select(Device)).one()
    assert incident.state == "open" and incident.count == 1  # repeated polls are not new occurrences
    assert incident.last_seen == T0 + dt.timedelta(minutes=3)
    assert port2.status == "down" and port2.changed_at == t1
    assert (device.vendor, device.model) == ("Cisco", "C2960")
    t5 = T0 + dt.timedelta(minutes=5)
    record_polls(engine, [PollResult(dev, t5, False, faults=(FaultCheck("switch.unreachable", True),))])
    with engine.connect() as conn:
        state = conn.execute(select(DeviceState)).one()
    assert state.online is False and state.last_seen == T0 + dt.timedelta(minutes=3)
    record_polls(engine, [PollResult(dev, t5 + dt.timedelta(minutes=1), True,
                                     faults=(FaultCheck("switch.unreachable", False),
                                             FaultCheck("switch.uplink_down", False)))])
    assert count(engine, Incident, Incident.state == "resolved") == 2
    assert count(engine, Observation, Observation.kind == "poll") == 6
    engine.dispose()
