"""``classfleet onvif check`` against the simulator: what the poller would record, for a technician."""

from __future__ import annotations

import json
import logging

import pytest
from typer.testing import CliRunner

from controller.cli import app
from controller.pollers.onvif.simulator import SimCamera

pytestmark = pytest.mark.integration


def test_check_json_has_drift_and_each_profiles_stream_uri(simulator):
    port = simulator.add(SimCamera(clock_offset_s=600, strict=True, serial="CLI1"))
    result = CliRunner().invoke(app, ["onvif", "check", f"127.0.0.1:{port}", "--user", "admin", "--json"],
                                env={"CLASSFLEET_ONVIF_PASSWORD": "Passw0rd"})
    assert result.exit_code == 1, result.output  # a fault is active
    report = json.loads(result.output)
    assert 598 <= report["drift_s"] <= 602 and report["clock_adjusted"] is True
    assert report["identity"]["serial"] == "CLI1"
    assert {p["token"]: p["stream_uri"] for p in report["profiles"]} == {
        "Profile_0": "rtsp://127.0.0.1:8554/ch1_0.h264", "Profile_1": "rtsp://127.0.0.1:8554/ch1_1.h264"}
    assert [f["code"] for f in report["faults"] if f["active"]] == ["camera.time_drift"]
    assert report["snapshot"]["ok"] is True
    assert "Passw0rd" not in result.output


def test_check_text_for_a_healthy_camera_and_a_wrong_password(simulator):
    port = simulator.add(SimCamera())
    ok = CliRunner().invoke(app, ["onvif", "check", f"127.0.0.1:{port}", "--user", "admin", "--password",
                                  "Passw0rd"])
    assert ok.exit_code == 0, ok.output
    assert "clock drift:" in ok.output and "rtsp://127.0.0.1:8554/ch1_0.h264" in ok.output
    assert "faults: none" in ok.output
    bad = CliRunner().invoke(app, ["onvif", "check", f"127.0.0.1:{port}", "--user", "admin", "--password", "nope"])
    assert bad.exit_code == 1 and "camera.auth_failed" in bad.output and "UNREACHABLE" not in bad.output


def test_check_unreachable_and_bad_address(simulator):
    port = simulator.add(SimCamera(), listening=False)
    down = CliRunner().invoke(app, ["onvif", "check", f"127.0.0.1:{port}", "--user", "admin", "--password", "x",
                                    "--timeout", "1"])
    assert down.exit_code == 1 and "UNREACHABLE" in down.output and "camera.unreachable" in down.output
    bad = CliRunner().invoke(app, ["onvif", "check", "127.0.0.1:notaport", "--user", "admin"])
    assert bad.exit_code == 2
    no_user = CliRunner().invoke(app, ["onvif", "check", f"127.0.0.1:{port}"])
    assert no_user.exit_code == 2  # --user is required


def test_importing_the_onvif_poller_leaves_the_controllers_logging_alone():
    """onvif-zeep-async calls logging.basicConfig() on import; the controller's own set-up must still win."""
    import subprocess
    import sys

    code = ("import logging, controller.cli, controller.pollers.onvif.service; "
            "print(len(logging.getLogger().handlers), logging.getLogger().level)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["0", str(logging.WARNING)]
