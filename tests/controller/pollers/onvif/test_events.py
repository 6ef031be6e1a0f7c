"""PullPoint against the simulator: tamper raises and clears camera.tamper through record_polls, a lost
subscription is re-created, and stopping unsubscribes. Tamper has no real capture: simulator only."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.pollers.onvif.check import CameraTarget, CheckSettings, OnvifChecker
from controller.pollers.onvif.events import PullPointSubscription
from controller.pollers.onvif.service import OnvifPoller
from controller.pollers.onvif.simulator import SimCamera
from controller.store import db
from controller.store.models import Device, Incident
from tests.helpers import add_school, wait_for

pytestmark = pytest.mark.integration
SETTINGS = CheckSettings(call_timeout_s=1.0, connect_timeout_s=1.0, check_timeout_s=8.0)


def test_watcher_reports_tamper_resubscribes_and_unsubscribes(simulator):
    cam = SimCamera(max_pull_hold_s=0.3)
    port = simulator.add(cam)
    seen: list[tuple[str, str | None, bool | None]] = []

    async def run() -> int:
        async with OnvifChecker(SETTINGS) as checker:
            sub = PullPointSubscription(checker, CameraTarget("127.0.0.1", port, "admin", "Passw0rd"),
                                        termination_s=2, pull_timeout_s=0.3)

            async def on_events(events):
                seen.extend((e.topic, e.operation, e.state) for e in events if e.is_tamper)

            task = asyncio.ensure_future(sub.run(on_events, retry_s=0.1))
            await asyncio.sleep(0.5)
            cam.tamper(True)
            await asyncio.sleep(0.5)
            cam._subs.clear()  # the camera rebooted and forgot every subscription
            await asyncio.sleep(0.6)
            cam.tamper(False)
            await asyncio.sleep(1.6)  # past half the 2 s life: renewed at least once
            renewals = sub.renewals
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return renewals

    renewals = asyncio.run(run())
    topic = "tns1:RuleEngine/TamperDetector/Tamper"
    assert seen[0] == (topic, "Initialized", False)
    assert (topic, "Changed", True) in seen and seen[-1] == (topic, "Changed", False)
    assert seen.count((topic, "Initialized", True)) == 1  # the new subscription learnt the current state
    assert renewals >= 1
    assert cam._subs == {}  # stopping unsubscribed


def test_poller_with_events_raises_and_resolves_camera_tamper(sqlite_url, simulator):
    engine = db.make_engine(sqlite_url)
    add_school(engine, "s1")
    cam = SimCamera(max_pull_hold_s=0.3)
    port = simulator.add(cam)
    with Session(engine) as session, session.begin():
        device = Device(school_id="s1", uid="cam-hall", kind="camera", watched_by="onvif",
                        mgmt_address=f"127.0.0.1:{port}", credential_ref="CAM")
        session.add(device)
        session.flush()
        dev = device.id

    def tamper_states() -> list[str]:
        with engine.connect() as conn:
            return list(conn.scalars(select(Incident.state).where(Incident.device_id == dev,
                                                                  Incident.code == "camera.tamper")))

    poller = OnvifPoller(engine, interval_s=3600, settings=SETTINGS, environ={"CAM": "admin:Passw0rd"},
                         events=True, event_pull_s=0.3)
    poller.start()
    try:
        assert poller.wait_rounds(1, 30)
        wait_for(lambda: cam._subs, 10, what="a PullPoint subscription")
        cam.tamper(True)
        wait_for(lambda: tamper_states() == ["open"], 10, what="camera.tamper opened")
        cam.tamper(False)
        wait_for(lambda: tamper_states() == ["resolved"], 10, what="camera.tamper resolved")
    finally:
        poller.stop()
    assert cam._subs == {}  # torn down cleanly
    engine.dispose()
