"""The poller service end to end: devices in a real SQLite store, simulated cameras over real HTTP,
results only through record_polls, incidents raised and then resolved when the cameras recover."""

from __future__ import annotations

import logging
import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.pollers.onvif.check import CheckSettings
from controller.pollers.onvif.demo import start_demo_cameras
from controller.pollers.onvif.service import OnvifPoller, targets_from_store
from controller.pollers.onvif.simulator import SimCamera
from controller.store import db
from controller.store.models import Device, DeviceComponent, DeviceState, Incident, Observation
from tests.helpers import add_school, count, open_incidents, wait_for

pytestmark = pytest.mark.integration
SETTINGS = CheckSettings(call_timeout_s=1.0, connect_timeout_s=1.0, check_timeout_s=8.0)
ENV = {"CAM_CRED": "admin:Passw0rd"}


def _device(engine, uid: str, port: int, kind: str = "camera", cred: str | None = "CAM_CRED") -> int:
    with Session(engine) as session, session.begin():
        device = Device(school_id="s1", uid=uid, kind=kind, watched_by="onvif", mgmt_address=f"127.0.0.1:{port}",
                        credential_ref=cred)
        session.add(device)
        session.flush()
        return device.id


def test_poller_raises_incidents_and_recovery_resolves_them(sqlite_url, simulator, caplog):
    engine = db.make_engine(sqlite_url)
    add_school(engine, "s1")
    good, drifted, locked, dead, nvr = (SimCamera(serial="G1"), SimCamera(clock_offset_s=600, strict=True),
                                        SimCamera(password="changed-by-someone"), SimCamera(),
                                        SimCamera(channels=3, dead_channels=frozenset({2}), model="SimNVR-16"))
    ports = [simulator.add(c) for c in (good, drifted, locked)]
    ports.append(simulator.add(dead, listening=False))
    ports.append(simulator.add(nvr))
    ids = [_device(engine, uid, port, kind) for uid, port, kind in zip(
        ("cam-good", "cam-drift", "cam-locked", "cam-dead", "nvr-1"), ports,
        ("camera", "camera", "camera", "camera", "nvr"), strict=True)]
    g, d, lk, dd, n = ids
    poller = OnvifPoller(engine, interval_s=3600, settings=SETTINGS, environ=ENV, max_backoff_s=0)
    caplog.set_level(logging.INFO, logger="controller.pollers.onvif.service")
    poller.start()
    try:
        assert poller.wait_rounds(1, 30)
        assert open_incidents(engine) == {(d, "camera.time_drift"), (lk, "camera.auth_failed"),
                                          (dd, "camera.unreachable"), (n, "camera.no_stream")}
        with engine.connect() as conn:
            device = conn.execute(select(Device).where(Device.id == g)).one()
            states = {r.device_id: r.online for r in conn.execute(select(DeviceState))}
            channels = {r.index: r.status for r in conn.execute(
                select(DeviceComponent).where(DeviceComponent.device_id == n, DeviceComponent.kind == "channel"))}
        assert (device.vendor, device.model, device.serial, device.firmware) == ("ClassfleetSim", "SimCam-2", "G1",
                                                                                  "2.4.1")
        assert states == {g: True, d: True, lk: True, dd: False, n: True}
        assert channels == {1: "up", 2: "down", 3: "up"}

        # the technician fixes everything: clock, password, power, the NVR's channel
        drifted.clock_offset_s = 0
        locked.password = "Passw0rd"
        simulator.revive(ports[3])
        nvr.dead_channels = frozenset()
        poller.poll_now()
        assert poller.wait_rounds(2, 30)
    finally:
        poller.stop()
    assert open_incidents(engine) == set()
    assert count(engine, Incident, Incident.state == "resolved") == 4
    with engine.connect() as conn:
        channels = {r.index: r.status for r in conn.execute(
            select(DeviceComponent).where(DeviceComponent.device_id == n))}
        drift = [r.data.get("drift_s") for r in conn.execute(
            select(Observation).where(Observation.device_id == d).order_by(Observation.ts))]
    assert channels == {1: "up", 2: "up", 3: "up"}
    assert abs(drift[0] - 600) <= 2 and abs(drift[1]) <= 2
    assert count(engine, Observation, Observation.kind == "poll") == 10
    # log once on failure, once on recovery, and never the secret
    messages = [r.getMessage() for r in caplog.records]
    assert sum("recovered" in m for m in messages) == 4
    assert not any("Passw0rd" in m for m in messages)
    engine.dispose()


def test_missing_credentials_are_reported_once_and_the_camera_still_checked(sqlite_url, simulator, caplog):
    engine = db.make_engine(sqlite_url)
    add_school(engine, "s1")
    port = simulator.add(SimCamera())
    dev = _device(engine, "cam-nocred", port, cred="NOT_SET_ANYWHERE")
    _device(engine, "cam-noaddr", port)
    with Session(engine) as session, session.begin():
        session.execute(Device.__table__.update().where(Device.uid == "cam-noaddr").values(mgmt_address=None))
    targets, problems = targets_from_store(engine, {})
    assert [t.device_id for t in targets] == [dev] and len(problems) == 2
    poller = OnvifPoller(engine, interval_s=0.05, settings=SETTINGS, environ={})
    caplog.set_level(logging.WARNING, logger="controller.pollers.onvif.service")
    poller.start()
    try:
        assert poller.wait_rounds(3, 30)
    finally:
        poller.stop()
    assert open_incidents(engine) == {(dev, "camera.auth_failed")}
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("NOT_SET_ANYWHERE" in m for m in warnings) == 1
    assert sum("camera.auth_failed" in m or "auth" in m for m in warnings if "127.0.0.1" in m) == 1
    engine.dispose()


def test_unreachable_camera_backs_off(sqlite_url, simulator):
    engine = db.make_engine(sqlite_url)
    add_school(engine, "s1")
    dead_port = simulator.add(SimCamera(), listening=False)
    dev = _device(engine, "cam-dead", dead_port)
    poller = OnvifPoller(engine, interval_s=0.05, settings=SETTINGS, environ=ENV, max_backoff_s=600)
    poller.start()
    try:
        assert poller.wait_rounds(6, 30)
    finally:
        poller.stop()
    # rounds 1 and 2 check it, then it waits 2, 4, ... intervals (capped): fewer checks than rounds
    checks = count(engine, Observation, Observation.device_id == dev)
    assert 2 <= checks < poller.rounds
    engine.dispose()


def test_demo_cameras_show_each_fault_once(sqlite_url):
    engine = db.make_engine(sqlite_url)
    add_school(engine, "demo-school-1")
    cams = start_demo_cameras(engine, "demo-school-1", cameras=4, nvr_channels=4)
    poller = OnvifPoller(engine, interval_s=3600, settings=SETTINGS, environ=cams.environ)
    try:
        poller.start()
        assert poller.wait_rounds(1, 30)
    finally:
        poller.stop()
        cams.stop()
    with engine.connect() as conn:
        uids = dict(conn.execute(select(Device.id, Device.uid)).all())
        codes = sorted((uids[d], c) for d, c in open_incidents(engine))
        parents = {r.uid: r.parent_id for r in conn.execute(select(Device.uid, Device.parent_id))}
    assert codes == [("cam-02", "camera.time_drift"), ("cam-03", "camera.auth_failed"), ("nvr-01", "camera.no_stream")]
    assert parents["cam-01"] == next(i for i, u in uids.items() if u == "nvr-01") and parents["nvr-01"] is None
    engine.dispose()


def test_stop_does_not_wait_for_a_hanging_camera(sqlite_url, simulator):
    engine = db.make_engine(sqlite_url)
    add_school(engine, "s1")
    cam = SimCamera(mode="blackhole")
    _device(engine, "cam-hole", simulator.add(cam))
    poller = OnvifPoller(engine, interval_s=3600, settings=CheckSettings(call_timeout_s=20, check_timeout_s=60),
                         environ=ENV)
    poller.start()
    wait_for(lambda: cam.requests > 0, 10, what="the check to reach the camera")
    started = time.monotonic()
    poller.stop()
    assert time.monotonic() - started < 3.0
    assert poller._thread is None
    engine.dispose()
