"""The real health check against real answers: the captured exchanges replayed over HTTP.

The replay server (tests/fixtures/onvif.py) validates each WS-UsernameToken digest itself, since
nonces change on every request, and serves the captured bytes with the host:port rewritten.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt

import pytest
import zeep.exceptions

from controller.pollers.onvif.check import CameraTarget, CheckSettings, OnvifChecker, check_one, classify
from controller.pollers.onvif.events import PullPointSubscription
from tests.fixtures.onvif import ReplayConfig, by_prefix, digest_ok, load_exchanges, replay_camera

pytestmark = pytest.mark.integration
SETTINGS = CheckSettings(call_timeout_s=3.0, check_timeout_s=15.0)


def _check(port: int, password: str | None = "Passw0rd", user: str | None = "admin"):
    return asyncio.run(check_one(CameraTarget("127.0.0.1", port, user, password), SETTINGS))


def _active(report) -> set[str]:
    return set(report.active_faults())


def test_digest_validator_agrees_with_every_capture():
    checked = 0
    for exchange in load_exchanges().values():
        auth = exchange.meta.get("auth") or {}
        if not auth.get("ws_username_token"):
            continue
        ok = digest_ok(auth["nonce_b64"], auth["created"], auth["digest_b64"])
        assert ok is auth["digest_matches_configured_password"], exchange.name
        checked += 1
    assert checked >= 20


def test_replayed_camera_identity_profiles_streams_snapshot():
    with replay_camera() as (server, config):
        port = server.server_address[1]
        report = _check(port)
    assert report.reachable and report.auth_ok and report.failure is None, report.error
    assert report.identity == {"vendor": "OnvifSimpleServer", "model": "ClassCam-Sim", "firmware": "1.0.0",
                               "serial": "SN0001"}
    assert report.hardware_id == "HW01"
    assert [(p.token, p.source, p.encoding, p.width, p.height) for p in report.profiles] == [
        ("Profile_0", "VideoSourceToken", "H264", 1920, 1080), ("Profile_1", "VideoSourceToken", "H264", 640, 360)]
    assert [p.stream_uri for p in report.profiles] == ["rtsp://127.0.0.1:8554/ch0_0.h264",
                                                        "rtsp://127.0.0.1:8554/ch0_1.h264"]
    assert report.snapshot is not None and report.snapshot.ok
    assert report.snapshot.uri == f"http://127.0.0.1:{port}/snapshot.jpg"
    assert (report.snapshot.kind, report.snapshot.size) == ("jpeg", 855)
    assert report.services["http://www.onvif.org/ver10/media/wsdl"] == f"http://127.0.0.1:{port}/onvif/media_service"
    assert report.drift_s is not None and abs(report.drift_s) <= 2.0
    assert _active(report) == set()
    result = report.poll_result(7)
    assert result.reachable and result.identity["serial"] == "SN0001"
    assert {f.code for f in result.faults} == {"camera.unreachable", "camera.time_drift", "camera.auth_failed",
                                               "camera.no_stream", "camera.no_snapshot"}
    assert not result.components  # one video source: a camera, not an NVR
    # the login went through the replay server's own digest check, with a fresh nonce every time
    authed = [s for s in config.seen if s.created is not None]
    assert authed and all(s.digest_valid for s in authed)
    picked = {s.exchange for s in config.seen}
    assert {"01_device_GetSystemDateAndTime_noauth", "02_device_GetDeviceInformation",
            "04_device_GetServices_IncludeCapability_true", "03_device_GetCapabilities_All", "07_media_GetProfiles",
            "08_media_GetStreamUri_Profile_0", "09_media_GetStreamUri_Profile_1",
            "10_media_GetSnapshotUri_Profile_0", "12b"} <= picked
    assert config.seen[0].operation == "GetSystemDateAndTime" and config.seen[0].created is None  # no login


def test_replayed_clock_ten_minutes_fast_is_drift_from_utcdatetime_not_the_http_date():
    with replay_camera(ReplayConfig(clock="plus_10min")) as (server, _config):
        report = _check(server.server_address[1])
    captured = by_prefix(load_exchanges(), "37")
    assert "<tt:Minute>20</tt:Minute>" in captured.response.decode()  # the capture really is 10 min fast
    assert report.drift_s is not None and 597.0 <= report.drift_s <= 602.0  # the HTTP Date header says 0
    assert _active(report) == {"camera.time_drift"}
    assert not report.clock_adjusted  # this server ignores Created (38): no retry was needed


def test_replayed_strict_camera_gets_a_login_signed_on_its_clock():
    """A camera that refuses a Created outside its window: NotAuthorized, retried as 39b, so time_drift."""
    with replay_camera(ReplayConfig(clock="plus_10min", strict_window_s=30)) as (server, config):
        report = _check(server.server_address[1])
    assert report.auth_ok and report.clock_adjusted
    assert _active(report) == {"camera.time_drift"}
    logins = [s for s in config.seen if s.operation == "GetDeviceInformation"]
    assert [s.status for s in logins] == [400, 200]
    assert logins[0].exchange == "22"  # the captured NotAuthorized fault
    shift = (dt.datetime.fromisoformat(logins[1].created.replace("Z", "+00:00"))
             - dt.datetime.fromisoformat(logins[0].created.replace("Z", "+00:00"))).total_seconds()
    reference = by_prefix(load_exchanges(), "39b")
    assert abs(shift - 600) <= 3
    assert reference.meta["auth"]["created"] == "2026-11-29T07:20:01Z"  # 39b: sent at 07:10:01, signed +10 min


def test_replayed_wrong_password_is_auth_failed_not_unreachable():
    with replay_camera() as (server, config):
        report = _check(server.server_address[1], password="WrongPassword1")
    assert report.reachable and report.auth_ok is False and report.failure == "auth"
    assert _active(report) == {"camera.auth_failed"}
    assert [(s.operation, s.status) for s in config.seen] == [("GetSystemDateAndTime", 200),
                                                             ("GetDeviceInformation", 400)]
    assert config.seen[1].digest_valid is False


def test_replayed_camera_without_credentials_is_auth_failed():
    with replay_camera() as (server, _config):
        report = _check(server.server_address[1], password=None, user=None)
    assert _active(report) == {"camera.auth_failed"}


def test_replay_nonces_never_repeat():
    with replay_camera() as (server, config):
        _check(server.server_address[1])
        _check(server.server_address[1])
    nonces = [s.nonce for s in config.seen if s.nonce]
    assert len(nonces) > 10 and len(set(nonces)) == len(nonces)
    assert all(len(base64.b64decode(n)) == 16 for n in nonces)
    raw = base64.b64decode(by_prefix(load_exchanges(), "02").meta["auth"]["nonce_b64"])
    assert len(raw) == 16  # zeep's nonce size, as captured


def test_replayed_event_pull_subscribe_pull_renew_unsubscribe():
    """PullPoint against the real answers (14-21): initial state, idle, motion on and off, renew, teardown."""

    async def run(port: int, config: ReplayConfig) -> dict[str, object]:
        target = CameraTarget("127.0.0.1", port, "admin", "Passw0rd")
        async with OnvifChecker(SETTINGS) as checker:
            sub = PullPointSubscription(checker, target, pull_timeout_s=2)
            out: dict[str, object] = {"address": await sub.subscribe()}
            out["initial"] = await sub.pull()
            out["idle"] = await sub.pull()
            config.motion.extend([True, False])
            out["on"] = await sub.pull()
            out["off"] = await sub.pull()
            await sub.renew()
            await sub.unsubscribe()
            sub.address = out["address"]  # a pull on the torn-down subscription
            try:
                await sub.pull()
            except zeep.exceptions.Fault as fault:
                out["after"] = fault
            return out

    with replay_camera() as (server, config):
        port = server.server_address[1]
        out = asyncio.run(run(port, config))
    assert out["address"] == f"http://127.0.0.1:{port}/onvif/events_service?sub=1"
    (initial,) = out["initial"]
    assert (initial.topic, initial.operation, initial.state) == ("tns1:VideoSource/MotionAlarm", "Initialized", False)
    assert initial.source == {"Source": "VideoSourceToken"} and not initial.is_tamper
    assert out["idle"] == []
    assert [(e.operation, e.state) for e in out["on"]] == [("Changed", True)]
    assert [(e.operation, e.state) for e in out["off"]] == [("Changed", False)]
    assert [s.exchange for s in config.seen][-3:] == ["19_subscription_Renew", "20_subscription_Unsubscribe",
                                                     "21_fault_PullMessages_after_Unsubscribe"]
    fault = out["after"]
    assert [q.localname for q in fault.subcodes] == ["ResourceUnknownFault", "ResourceUnknownFault"]
    assert classify(fault) == "protocol"
    assert all(s.digest_valid for s in config.seen if s.created)


@pytest.mark.parametrize("zone", ["cet", "aest_dst"])
def test_replayed_time_zones_do_not_look_like_drift(zone):
    """32 (CET, local = UTC+1) and 33 (AEST with DST, UTC+11): only UTCDateTime counts, never LocalDateTime."""
    with replay_camera(ReplayConfig(clock=zone)) as (server, _config):
        report = _check(server.server_address[1])
    assert report.drift_s is not None and abs(report.drift_s) <= 2.0
    assert report.active_faults() == []
