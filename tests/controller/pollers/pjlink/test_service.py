"""The poller service end to end: projectors in a real SQLite store, simulated projectors over real TCP,
results only through record_polls, incidents opened and then resolved when the projectors recover."""

from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.pollers.pjlink.check import CheckSettings
from controller.pollers.pjlink.demo import start_demo_projectors
from controller.pollers.pjlink.service import PJLinkPoller, targets_from_store
from controller.pollers.pjlink.simulator import SimProjector
from controller.store import db
from controller.store.models import Device, DeviceComponent, DeviceState, Incident, Observation
from tests.helpers import add_school, count, open_incidents

pytestmark = pytest.mark.integration
SETTINGS = CheckSettings(connect_timeout_s=1.0, read_timeout_s=0.5, check_timeout_s=3.0)
ENV = {"PJ_PASSWORD": "s3cret"}


def _device(engine, uid: str, port: int, cred: str | None = None, address: str | None = None) -> int:
    with Session(engine) as session, session.begin():
        device = Device(school_id="s1", uid=uid, kind="projector", watched_by="pjlink",
                        mgmt_address=address or f"127.0.0.1:{port}", credential_ref=cred)
        session.add(device)
        session.flush()
        return device.id


def test_poller_opens_incidents_and_recovery_resolves_them(sqlite_url, simulator, caplog):
    engine = db.make_engine(sqlite_url)
    add_school(engine, "s1")
    good = SimProjector(password="s3cret", pjlink_class=2, serial="G1", lamp_hours=[1500])
    worn = SimProjector(lamp_hours=[3500])
    hot = SimProjector(errors={"temperature": "error", "filter": "warning"})
    locked = SimProjector(password="changed-on-the-projector")
    silent = SimProjector(mode="silent")
    dead = SimProjector()
    ports = [simulator.add(p) for p in (good, worn, hot, locked, silent)]
    ports.append(simulator.add(dead, listening=False))
    g, w, h, lk, s, d = (_device(engine, uid, port, cred) for uid, port, cred in zip(
        ("pj-good", "pj-worn", "pj-hot", "pj-locked", "pj-silent", "pj-dead"), ports,
        ("PJ_PASSWORD", None, None, "PJ_PASSWORD", None, None), strict=True))
    poller = PJLinkPoller(engine, interval_s=3600, settings=SETTINGS, environ=ENV, max_backoff_s=0)
    caplog.set_level(logging.INFO, logger="controller.pollers.pjlink.service")
    poller.start()
    try:
        assert poller.wait_rounds(1, 15)
        assert open_incidents(engine) == {(w, "projector.lamp_end_of_life"), (h, "projector.error.temperature"),
                                 (h, "projector.error.filter"), (lk, "projector.auth_failed"),
                                 (s, "projector.unreachable"), (d, "projector.unreachable")}
        with engine.connect() as conn:
            device = conn.execute(select(Device).where(Device.id == g)).one()
            states = {r.device_id: r.online for r in conn.execute(select(DeviceState))}
            lamps = {(r.device_id, r.index): (r.status, r.data["hours"]) for r in conn.execute(
                select(DeviceComponent).where(DeviceComponent.kind == "lamp"))}
            severities = {r.code: r.severity for r in conn.execute(select(Incident).where(Incident.device_id == h))}
            poll = conn.execute(select(Observation.data).where(Observation.device_id == g)).scalar_one()
        assert (device.vendor, device.model, device.serial, device.firmware) == ("ClassfleetSim", "SimProjector-1",
                                                                                  "G1", "1.0.3")
        assert states == {g: True, w: True, h: True, lk: True, s: False, d: False}
        assert lamps == {(g, 1): ("ok", 1500), (w, 1): ("end_of_life", 3500), (h, 1): ("ok", 1200)}
        assert severities == {"projector.error.temperature": "critical", "projector.error.filter": "warning"}
        assert poll["reachable"] is True and poll["power"] == "on" and poll["lamp_hours"] == 1500
        assert poll["input"] == "31" and poll["pjlink_class"] == 2

        # the technician replaces the lamp, cleans the filter, fixes the password, powers the dead one on
        worn.lamp_hours = [0]
        hot.errors.clear()
        locked.password = "s3cret"
        silent.mode = "ok"
        simulator.revive(ports[5])
        poller.poll_now()
        assert poller.wait_rounds(2, 15)
        assert open_incidents(engine) == set()
        with engine.connect() as conn:
            assert conn.execute(select(DeviceComponent.status).where(DeviceComponent.device_id == w)).scalar_one() \
                == "ok"
            assert all(r.online for r in conn.execute(select(DeviceState)))
        assert count(engine, Incident, Incident.state == "resolved") == 6

        poller.poll_now()  # a third, healthy round: nothing more to say in the log
        assert poller.wait_rounds(3, 15)
    finally:
        poller.stop()
    messages = [r.getMessage() for r in caplog.records]
    for uid_port in ports[1:]:
        assert sum(f":{uid_port} " in m and "recovered" not in m for m in messages) == 1, messages
        assert sum(f":{uid_port} " in m and "recovered" in m for m in messages) == 1, messages
    assert not any(f":{ports[0]} " in m for m in messages)  # healthy all along: never logged
    assert not any("s3cret" in m or "changed-on-the-projector" in m for m in messages)


def test_backoff_skips_dead_projectors_between_rounds(sqlite_url, simulator):
    engine = db.make_engine(sqlite_url)
    add_school(engine, "s1")
    dead = simulator.add(SimProjector(), listening=False)
    live = simulator.add(SimProjector())
    dead_id, live_id = _device(engine, "dead", dead), _device(engine, "live", live)
    poller = PJLinkPoller(engine, interval_s=0.2, settings=SETTINGS, environ={}, max_backoff_s=60)
    poller.start()
    try:
        assert poller.wait_rounds(7, 15)
    finally:
        poller.stop()
    live_polls = count(engine, Observation, Observation.device_id == live_id)
    dead_polls = count(engine, Observation, Observation.device_id == dead_id)
    assert live_polls >= 7 and dead_polls <= 4  # 0.2 s, then 0.4, 0.8, 1.6 s apart: backed off


def test_targets_from_store_reads_passwords_from_the_environment_and_reports_problems(sqlite_url):
    engine = db.make_engine(sqlite_url)
    add_school(engine, "s1")
    with_pw = _device(engine, "a", 4352, "PJ_PASSWORD")
    no_pw = _device(engine, "b", 4353)
    _device(engine, "c", 0, "PJ_MISSING", address="127.0.0.1:4354")
    _device(engine, "d", 0, address="127.0.0.1:notaport")
    with Session(engine) as session, session.begin():
        session.add(Device(school_id="s1", uid="e", kind="projector", watched_by="pjlink"))
        session.add(Device(school_id="s1", uid="f", kind="camera", watched_by="onvif", mgmt_address="127.0.0.1"))
        session.add(Device(school_id="s1", uid="g", kind="projector", watched_by="pjlink", lifecycle="retired",
                           mgmt_address="127.0.0.1"))
    targets, problems = targets_from_store(engine, ENV)
    by_id = {t.device_id: t for t in targets}
    assert by_id[with_pw].password == "s3cret" and by_id[with_pw].port == 4352
    assert by_id[no_pw].password is None
    assert len(targets) == 3
    assert any("PJ_MISSING is not set" in p for p in problems)
    assert any("device d" in p for p in problems) and any("device e" in p and "mgmt_address" in p for p in problems)
    assert not any("s3cret" in p for p in problems)


def test_demo_projectors_show_each_fault_once(sqlite_url):
    engine = db.make_engine(sqlite_url)
    add_school(engine, "demo")
    demo = start_demo_projectors(engine, "demo", 6)
    poller = PJLinkPoller(engine, interval_s=3600, settings=SETTINGS, environ=demo.environ)
    poller.start()
    try:
        assert poller.wait_rounds(1, 15)
    finally:
        poller.stop()
        demo.stop()
    p1, p2, p3, p4, _p5, _p6 = demo.device_ids
    assert open_incidents(engine) == {(p1, "projector.lamp_end_of_life"), (p2, "projector.error.fan"),
                             (p2, "projector.error.filter"), (p3, "projector.auth_failed")}
    with engine.connect() as conn:
        creds = dict(conn.execute(select(Device.id, Device.credential_ref)).all())
        assert conn.execute(select(Device.serial).where(Device.id == p4)).scalar_one() is None  # class 1
    assert creds[p4] is None and creds[p1] == "CLASSFLEET_DEMO_PJLINK"
    assert demo.environ["CLASSFLEET_DEMO_PJLINK"] not in repr(demo)
    start = time.monotonic()
    again = start_demo_projectors(engine, "demo", 2)  # idempotent by uid
    try:
        assert again.device_ids == [p1, p2]
    finally:
        again.stop()
    assert time.monotonic() - start < 5
