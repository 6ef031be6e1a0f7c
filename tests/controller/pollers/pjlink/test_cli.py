"""``classfleet pjlink check`` against the simulator: what the poller would record, for a technician.

The lead registers ``controller.pollers.pjlink.cli:app`` as ``classfleet pjlink``; these tests drive
that app directly, so they hold before and after it is registered."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from controller.pollers.pjlink.cli import app
from controller.pollers.pjlink.simulator import SimProjector

pytestmark = pytest.mark.integration


def test_check_json_with_the_password_from_the_environment(simulator):
    projector = SimProjector(password="s3cret", pjlink_class=2, serial="CLI1", lamp_hours=[3200, 100])
    projector.set_error("filter", "warning")
    port = simulator.add(projector)
    result = CliRunner().invoke(app, ["check", f"127.0.0.1:{port}", "--json"],
                                env={"CLASSFLEET_PJLINK_PASSWORD": "s3cret"})
    assert result.exit_code == 1, result.output  # faults are active
    report = json.loads(result.output)
    assert report["reachable"] is True and report["auth_ok"] is True and report["pjlink_class"] == 2
    assert report["identity"] == {"vendor": "ClassfleetSim", "model": "SimProjector-1", "serial": "CLI1",
                                  "firmware": "1.0.3"}
    assert (report["power"], report["input"]) == ("on", "31")
    assert [(lamp["hours"], lamp["end_of_life"]) for lamp in report["lamps"]] == [(3200, True), (100, False)]
    assert report["errors"]["filter"] == "warning"
    assert sorted(f["code"] for f in report["faults"] if f["active"]) == ["projector.error.filter",
                                                                         "projector.lamp_end_of_life"]
    assert "s3cret" not in result.output


def test_check_text_for_a_healthy_projector_and_a_wrong_password(simulator):
    port = simulator.add(SimProjector(password="s3cret"))
    ok = CliRunner().invoke(app, ["check", f"127.0.0.1:{port}", "--password", "s3cret"])
    assert ok.exit_code == 0, ok.output
    assert "reachable" in ok.output and "lamp 1: 1200 h of 3000 h, lit, ok" in ok.output
    assert "power: on, input digital 1 (31)" in ok.output and "faults: none" in ok.output
    bad = CliRunner().invoke(app, ["check", f"127.0.0.1:{port}", "-p", "nope"])
    assert bad.exit_code == 1 and "LOGIN REFUSED" in bad.output and "projector.auth_failed" in bad.output
    assert "UNREACHABLE" not in bad.output
    bad_json = CliRunner().invoke(app, ["check", f"127.0.0.1:{port}", "-p", "nope", "--json"])
    assert json.loads(bad_json.output)["failure"] == "auth"


def test_check_unreachable_silent_and_bad_address(simulator):
    dead = simulator.add(SimProjector(), listening=False)
    down = CliRunner().invoke(app, ["check", f"127.0.0.1:{dead}", "--timeout", "1"])
    assert down.exit_code == 1 and "UNREACHABLE" in down.output and "projector.unreachable" in down.output
    silent = simulator.add(SimProjector(mode="silent"))
    quiet = CliRunner().invoke(app, ["check", f"127.0.0.1:{silent}", "--timeout", "0.5", "--json"])
    assert quiet.exit_code == 1 and json.loads(quiet.output)["failure"] == "timeout"
    bad = CliRunner().invoke(app, ["check", "127.0.0.1:notaport"])
    assert bad.exit_code == 2
