"""The health check against the simulator: drift vs login, wrong passwords, dead and hanging cameras,
NVR channels, snapshot auth. Recording, device-IO and snapshot digest auth have no real capture, so
they are proven here against the simulator only."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import http.client
import json
import secrets
import time

import aiohttp
import pytest
import zeep.exceptions

from controller.pollers.onvif.check import CameraTarget, CheckSettings, OnvifChecker, check_one, classify
from controller.pollers.onvif.simulator import SimCamera, ws_digest

pytestmark = pytest.mark.integration
FAST = CheckSettings(call_timeout_s=1.5, connect_timeout_s=1.0, check_timeout_s=10.0)


def _check(port: int, password: str = "Passw0rd", **target: object):
    return asyncio.run(check_one(CameraTarget("127.0.0.1", port, "admin", password, **target), FAST))


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
def test_ten_minutes_off_is_time_drift_not_auth_failed(simulator, strict):
    cam = SimCamera(clock_offset_s=600, strict=strict)
    report = _check(simulator.add(cam))
    assert report.reachable and report.auth_ok
    assert set(report.active_faults()) == {"camera.time_drift"}
    assert 598 <= report.drift_s <= 602
    assert report.clock_adjusted is strict  # only the strict camera needed the login on its clock
    drift = next(f for f in report.faults if f.code == "camera.time_drift")
    assert drift.detail["drift_s"] == pytest.approx(600, abs=2)


def test_strict_camera_on_time_needs_no_retry(simulator):
    report = _check(simulator.add(SimCamera(strict=True)))
    assert report.active_faults() == [] and not report.clock_adjusted


def test_wrong_password_is_auth_failed_not_unreachable(simulator):
    report = _check(simulator.add(SimCamera(password="not-this-one")))
    assert report.reachable and report.auth_ok is False
    assert set(report.active_faults()) == {"camera.auth_failed"}
    assert next(f for f in report.faults if f.code == "camera.unreachable").active is False


def test_wrong_password_on_a_drifted_strict_camera_is_still_auth_failed(simulator):
    report = _check(simulator.add(SimCamera(password="nope", clock_offset_s=-900, strict=True)))
    assert set(report.active_faults()) == {"camera.auth_failed", "camera.time_drift"}
    assert not report.clock_adjusted


def test_dead_and_hanging_cameras_do_not_delay_the_others(simulator):
    # The hanging cameras' timeout is long against a healthy check (tens of ms here, ~1.5 s on a loaded CI
    # runner), so "not delayed" is proven by order: every healthy camera is done before any timeout fires.
    settings = CheckSettings(call_timeout_s=5.0, connect_timeout_s=1.0, check_timeout_s=15.0)
    healthy = [simulator.add(SimCamera(serial=f"OK{i}")) for i in range(12)]
    dead = simulator.add(SimCamera(), listening=False)
    hang = simulator.add(SimCamera(mode="hang"))
    hole = simulator.add(SimCamera(mode="blackhole"))
    slow = simulator.add(SimCamera(mode="slow", delay_s=0.1))  # about 1 s over the whole check
    targets = [CameraTarget("127.0.0.1", p, "admin", "Passw0rd") for p in (hang, hole, dead, *healthy, slow)]

    async def run() -> dict[int, tuple[float, object]]:
        async with OnvifChecker(settings) as checker:
            start = time.monotonic()
            return {t.port: (time.monotonic() - start, r) async for t, r in checker.check_many(targets)}

    done = asyncio.run(run())
    first_timeout = min(done[hang][0], done[hole][0])
    assert first_timeout >= settings.call_timeout_s - 0.1
    assert max(done[p][0] for p in healthy) < first_timeout  # each healthy camera is done before any timeout
    for port in healthy:
        assert done[port][1].active_faults() == []
    for port in (hang, hole, dead):
        elapsed, report = done[port]
        assert report.active_faults() == ["camera.unreachable"] and not report.reachable
    assert done[dead][1].failure == "unreachable" and done[dead][0] < first_timeout  # refused, not timed out
    assert done[hang][1].failure == done[hole][1].failure == "timeout"
    assert done[hang][0] < settings.call_timeout_s + 1.5
    assert done[slow][1].active_faults() == []  # slow but inside the timeouts


def test_nvr_channels_show_the_dead_one(simulator):
    port = simulator.add(SimCamera(channels=4, dead_channels=frozenset({3}), model="SimNVR-16"))
    report = _check(port, nvr=True)
    assert [(c.kind, c.index, c.status) for c in report.channels] == [
        ("channel", 1, "up"), ("channel", 2, "up"), ("channel", 3, "down"), ("channel", 4, "up")]
    assert report.channels[0].data["stream_uri"].startswith("rtsp://127.0.0.1:8554/")
    no_stream = next(f for f in report.faults if f.code == "camera.no_stream")
    assert no_stream.active and no_stream.detail["channels"] == [3]
    assert report.identity["model"] == "SimNVR-16"


@pytest.mark.parametrize("auth", ["digest", "basic", "none"])
def test_snapshot_fetch_with_digest_or_basic_auth(simulator, auth):
    report = _check(simulator.add(SimCamera(snapshot_auth=auth)))
    assert report.snapshot is not None and report.snapshot.ok, report.snapshot
    assert report.snapshot.kind == "jpeg" and report.snapshot.size > 500
    assert report.active_faults() == []


def test_snapshot_that_is_not_an_image_is_no_snapshot(simulator):
    report = _check(simulator.add(SimCamera(snapshot_broken=True)))
    assert report.active_faults() == ["camera.no_snapshot"]
    assert "magic" in report.snapshot.error


def test_snapshot_refused_is_no_snapshot_not_auth_failed(simulator):
    cam = SimCamera()
    port = simulator.add(cam)

    async def run():
        async with OnvifChecker(FAST) as checker:
            cam.snapshot_auth = "basic"
            cam.password, old = "changed", cam.password  # the snapshot login fails, ONVIF login already done
            return await checker._fetch_snapshot(f"http://127.0.0.1:{port}/snapshot/1.jpg",
                                                 CameraTarget("127.0.0.1", port, "admin", old))

    result = asyncio.run(run())
    assert not result.ok and result.error == "HTTP 401"


def _signed_request(created: str, nonce: bytes, password: str = "Passw0rd") -> bytes:
    nonce_b64 = base64.b64encode(nonce).decode()
    return (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header><wsse:Security xmlns:wsse='
        '"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"><wsse:UsernameToken>'
        f"<wsse:Username>admin</wsse:Username><wsse:Password>{ws_digest(nonce_b64, created, password)}"
        f"</wsse:Password><wsse:Nonce>{nonce_b64}</wsse:Nonce><wsu:Created xmlns:wsu="
        '"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">'
        f"{created}</wsu:Created></wsse:UsernameToken></wsse:Security></s:Header><s:Body>"
        '<GetDeviceInformation xmlns="http://www.onvif.org/ver10/device/wsdl"/></s:Body></s:Envelope>').encode()


def _status(port: int, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/onvif/device_service", body=body, headers={"Content-Type": "application/soap+xml"})
    status = conn.getresponse().status
    conn.close()
    return status


def test_strict_simulator_rejects_stale_and_replayed_tokens_lenient_accepts(simulator):
    strict, lenient = simulator.add(SimCamera(strict=True)), simulator.add(SimCamera())
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    stale = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fresh = _signed_request(now, secrets.token_bytes(16))
    assert _status(strict, fresh) == 200
    assert _status(strict, fresh) == 400  # the same nonce again: a replay
    assert _status(strict, _signed_request(stale, secrets.token_bytes(16))) == 400
    assert _status(strict, _signed_request(now, secrets.token_bytes(16), "wrong")) == 400
    assert _status(lenient, fresh) == 200 and _status(lenient, fresh) == 200  # like the real server (35, 36)
    assert _status(lenient, _signed_request(stale, secrets.token_bytes(16))) == 200


def test_failures_are_classified_apart():
    assert classify(zeep.exceptions.Fault("Sender not Authorized", code="env:Sender")) == "auth"
    assert classify(zeep.exceptions.TransportError("x", status_code=401)) == "auth"
    assert classify(zeep.exceptions.TransportError("x", status_code=500)) == "protocol"
    assert classify(TimeoutError()) == "timeout"
    assert classify(aiohttp.ClientConnectionError()) == "unreachable"
    assert classify(zeep.exceptions.Fault("Action failed", code="env:Receiver")) == "protocol"


def test_camera_addresses_parse():
    assert CameraTarget.parse("10.0.0.5") == CameraTarget("10.0.0.5", 80)
    assert CameraTarget.parse("10.0.0.5:8080", "u", "p").port == 8080
    assert CameraTarget.parse("[fe80::1]:8000").host == "fe80::1"
    assert "p" not in repr(CameraTarget.parse("h:1", "u", "secret-pw")).split("user='u'")[1]
    with pytest.raises(ValueError):
        CameraTarget.parse("host:notaport")


def test_nvr_recording_state_per_channel(simulator):
    """Recording has no real capture: the simulated NVR's recording service only."""
    nvr = SimCamera(channels=3, dead_channels=frozenset({2}))
    report = _check(simulator.add(nvr), nvr=True)
    assert [job["state"] for job in report.recording] == ["Active", "Error", "Active"]
    assert [c.data["recording"] for c in report.channels] == ["Active", "Error", "Active"]
    figures = report.poll_result(1).figures
    assert (figures["recording_jobs"], figures["recording_active"], figures["recording_errors"]) == (3, 2, 1)
    nvr.recording, nvr.dead_channels = False, frozenset()
    report = _check(simulator.add(nvr))
    assert {job["state"] for job in report.recording} == {"Idle"} and report.active_faults() == []
    camera = _check(simulator.add(SimCamera()))
    assert camera.recording is None and "recording_jobs" not in camera.poll_result(1).figures


def test_optional_clock_fix_sets_a_manual_clock_and_leaves_ntp_alone(simulator):
    manual, ntp = SimCamera(clock_offset_s=600, strict=True), SimCamera(clock_offset_s=600, ntp=True)
    settings = CheckSettings(call_timeout_s=1.5, fix_clock=True)
    report = asyncio.run(check_one(CameraTarget("127.0.0.1", simulator.add(manual), "admin", "Passw0rd"), settings))
    assert report.clock_fixed and report.active_faults() == ["camera.time_drift"]  # cleared by the next round
    assert abs(manual.clock_offset_s) < 2
    assert report.snapshot.ok  # the rest of the check went on, signed on the fixed clock
    again = asyncio.run(check_one(CameraTarget("127.0.0.1", simulator.add(manual), "admin", "Passw0rd"), settings))
    assert again.active_faults() == [] and not again.clock_adjusted
    report = asyncio.run(check_one(CameraTarget("127.0.0.1", simulator.add(ntp), "admin", "Passw0rd"), settings))
    assert report.clock_mode == "NTP" and not report.clock_fixed and ntp.clock_offset_s == 600
    untouched = SimCamera(clock_offset_s=600)
    _check(simulator.add(untouched))  # off by default
    assert untouched.clock_offset_s == 600


def test_camera_that_wants_a_login_even_for_its_clock(simulator):
    port = simulator.add(SimCamera(auth_all=True, clock_offset_s=120))
    report = _check(port)
    assert report.auth_ok and 118 <= report.drift_s <= 122
    assert report.active_faults() == ["camera.time_drift"]
    refused = _check(port, password="wrong")
    assert refused.reachable and refused.active_faults() == ["camera.auth_failed"]


def test_media_profiles_failing_is_no_stream(simulator):
    report = _check(simulator.add(SimCamera(media_broken=True)))
    assert report.active_faults() == ["camera.no_stream"]
    no_stream = next(f for f in report.faults if f.code == "camera.no_stream")
    assert "GetProfiles" in no_stream.detail["error"]


def test_logins_in_handed_out_uris_are_never_kept(simulator):
    cam = SimCamera(uri_credentials=True, password="S3cret-pw", channels=2)
    report = asyncio.run(check_one(CameraTarget("127.0.0.1", simulator.add(cam), "admin", "S3cret-pw", nvr=True),
                                   FAST))
    assert report.active_faults() == [] and report.snapshot.ok
    assert "S3cret-pw" not in json.dumps(report.to_dict(), default=str)
    assert "S3cret-pw" not in json.dumps(report.poll_result(1).components[0].data)
    assert report.profiles[0].stream_uri.startswith("rtsp://127.0.0.1:8554/")
