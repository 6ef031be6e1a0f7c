"""The PJLink check against the simulator over real TCP: every ERST flag at both levels, lamp end of life,
passwords right, wrong and missing, class 1 and 2 identity, ERR1-ERR4, and a projector that accepts the
connection but never answers holding back nobody."""

from __future__ import annotations

import asyncio
import time

import pytest

from controller.pollers.pjlink.check import CheckSettings, ProjectorChecker, ProjectorTarget, check_one
from controller.pollers.pjlink.protocol import ERST_CATEGORIES
from controller.pollers.pjlink.simulator import SimProjector

pytestmark = pytest.mark.integration
FAST = CheckSettings(connect_timeout_s=1.0, read_timeout_s=0.5, check_timeout_s=3.0)


def _check(port: int, password: str | None = None, settings: CheckSettings = FAST):
    return asyncio.run(check_one(ProjectorTarget("127.0.0.1", port, password), settings))


def _faults(report) -> dict[str, tuple[bool, str | None]]:
    return {f.code: (f.active, f.severity) for f in report.faults}


def test_a_healthy_class1_projector_without_password(simulator):
    port = simulator.add(SimProjector(pjlink_class=1, lamp_hours=[1200]))
    report = _check(port)
    assert report.reachable and report.auth_ok and report.auth_required is False and report.failure is None
    assert (report.pjlink_class, report.power, report.input, report.name) == (1, "on", "31", "Phong 101")
    assert report.identity == {"vendor": "ClassfleetSim", "model": "SimProjector-1"}  # no SNUM/SVER in class 1
    assert [(lamp.hours, lamp.lit, lamp.threshold_h) for lamp in report.lamps] == [(1200, True, 3000)]
    assert report.active_faults() == [] and report.refused == {}
    faults = _faults(report)
    assert {f"projector.error.{c}" for c in ERST_CATEGORIES} <= set(faults)
    assert faults["projector.lamp_end_of_life"] == (False, None)
    result = report.poll_result(42)
    assert result.figures["power"] == "on" and result.figures["lamp_hours"] == 1200
    assert [(c.kind, c.index, c.status) for c in result.components] == [("lamp", 1, "ok")]


def test_class2_identity_and_the_right_password(simulator):
    port = simulator.add(SimProjector(password="s3cret", pjlink_class=2, serial="SN-77", firmware="2.0.1"))
    report = _check(port, "s3cret")
    assert report.auth_required is True and report.auth_ok is True and report.pjlink_class == 2
    assert report.identity == {"vendor": "ClassfleetSim", "model": "SimProjector-1", "serial": "SN-77",
                               "firmware": "2.0.1"}
    assert report.active_faults() == []
    assert report.poll_result(1).identity["serial"] == "SN-77"


def test_a_wrong_or_missing_password_is_its_own_reason(simulator):
    projector = SimProjector(password="s3cret")
    port = simulator.add(projector)
    wrong = _check(port, "guess")
    assert wrong.failure == "auth" and "ERRA" in (wrong.error or "")
    assert wrong.reachable is True and wrong.auth_ok is False  # it answered: not an unreachable projector
    assert _faults(wrong) == {"projector.unreachable": (False, None), "projector.auth_failed": (True, None)}
    missing = _check(port, None)
    assert missing.failure == "auth" and "none is configured" in (missing.error or "")
    assert missing.active_faults() == ["projector.auth_failed"]
    assert "s3cret" not in repr(wrong.to_dict()) + repr(missing.to_dict())


@pytest.mark.parametrize("level, severity", [("warning", "warning"), ("error", "critical")])
def test_every_error_flag_at_both_levels(simulator, level, severity):
    projectors = {}
    for category in ERST_CATEGORIES:
        projector = SimProjector()
        projector.set_error(category, level)
        projectors[category] = simulator.add(projector)
    for category, port in projectors.items():
        report = _check(port)
        assert report.errors is not None and report.errors[category] == level
        assert report.active_faults() == [f"projector.error.{category}"], category
        fault = next(f for f in report.faults if f.code == f"projector.error.{category}")
        assert (fault.severity, fault.detail) == (severity, {"level": level})


def test_all_flags_at_once_and_then_cleared(simulator):
    projector = SimProjector(errors={c: "error" for c in ERST_CATEGORIES})
    port = simulator.add(projector)
    assert sorted(_check(port).active_faults()) == sorted(f"projector.error.{c}" for c in ERST_CATEGORIES)
    projector.errors.clear()
    assert _check(port).active_faults() == []


def test_lamp_end_of_life_per_model_threshold_and_default(simulator):
    worn = simulator.add(SimProjector(lamp_hours=[3000]))  # SimProjector-1: 3000 h
    eco = simulator.add(SimProjector(model="SimProjector-2 Eco", lamp_hours=[3000]))  # 5000 h
    unknown = simulator.add(SimProjector(model="Brand-New X", lamp_hours=[3001]))  # the default, 3000 h
    dual = simulator.add(SimProjector(model="SimProjector-Dual", lamp_hours=[2100, 900], power="off"))
    laser = simulator.add(SimProjector(lamp_hours=[]))
    report = _check(worn)
    assert report.active_faults() == ["projector.lamp_end_of_life"]
    eol = next(f for f in report.faults if f.code == "projector.lamp_end_of_life")
    assert eol.detail == {"lamps": [{"index": 1, "hours": 3000}], "threshold_h": 3000}
    assert [c.status for c in report.components()] == ["end_of_life"]
    assert _check(eco).active_faults() == []
    assert _check(unknown).active_faults() == ["projector.lamp_end_of_life"]
    dual_report = _check(dual)
    assert [(lamp.index, lamp.hours, lamp.lit) for lamp in dual_report.lamps] == [(1, 2100, False), (2, 900, False)]
    assert [c.status for c in dual_report.components()] == ["end_of_life", "ok"]  # vendor+model: 2000 h
    assert dual_report.power == "off" and dual_report.input is None and dual_report.refused == {"INPT": "ERR3"}
    laser_report = _check(laser)
    assert laser_report.lamps == [] and laser_report.refused == {"LAMP": "ERR1"}
    assert ("projector.lamp_end_of_life", False) in [(f.code, f.active) for f in laser_report.faults]


def test_err1_to_err4_answers(simulator):
    old = simulator.add(SimProjector(unsupported=frozenset({"INF2", "INFO"})))  # ERR1: the firmware lacks them
    report = _check(old)
    assert report.refused == {"INF2": "ERR1", "INFO": "ERR1"} and "model" not in report.identity
    assert report.active_faults() == []
    out_of_range = simulator.add(SimProjector(replies={"POWR": "ERR2"}))
    report = _check(out_of_range)
    assert report.power is None and report.refused == {"POWR": "ERR2"} and report.active_faults() == []
    busy = simulator.add(SimProjector(replies={"ERST": "ERR3", "LAMP": "ERR3"}))
    report = _check(busy)
    assert report.errors is None and report.lamps is None and report.reachable
    assert {f.code for f in report.faults} == {"projector.unreachable", "projector.auth_failed"}  # nothing known
    broken = simulator.add(SimProjector(replies={"LAMP": "ERR4"}))
    report = _check(broken)
    assert report.active_faults() == ["projector.error.other"]
    other = next(f for f in report.faults if f.code == "projector.error.other")
    assert other.severity == "critical" and other.detail == {"err4": ["LAMP"]}
    garbled = simulator.add(SimProjector(replies={"ERST": "0x0000"}))
    assert _check(garbled).refused == {"ERST": "malformed"}


def test_unreachable_silent_and_mute_projectors(simulator):
    dead = simulator.add(SimProjector(), listening=False)
    silent = simulator.add(SimProjector(mode="silent"))
    mute = simulator.add(SimProjector(mode="mute"))
    report = _check(dead)
    assert (report.reachable, report.failure) == (False, "unreachable")
    assert report.active_faults() == ["projector.unreachable"]
    for port in (silent, mute):
        report = _check(port)
        assert (report.reachable, report.failure) == (False, "timeout"), port
        assert report.active_faults() == ["projector.unreachable"]
        assert report.elapsed_s < FAST.read_timeout_s + 0.5


def test_a_projector_that_never_answers_delays_nobody(simulator):
    silent = [simulator.add(SimProjector(mode="silent")) for _ in range(3)]
    healthy = [simulator.add(SimProjector(serial=f"H{i}", pjlink_class=2)) for i in range(20)]
    # order, not a wall-clock bound, proves it: a loaded CI runner may take over a second for the healthy ones
    settings = CheckSettings(connect_timeout_s=1.0, read_timeout_s=5.0, check_timeout_s=10.0, max_concurrency=8)

    async def run() -> dict[int, tuple[float, object]]:
        checker = ProjectorChecker(settings)
        started, done = time.monotonic(), {}
        targets = [ProjectorTarget("127.0.0.1", p) for p in silent + healthy]
        async for target, report in checker.check_many(targets):
            done[target.port] = (time.monotonic() - started, report)
        return done

    done = asyncio.run(run())
    first_timeout = min(done[p][0] for p in silent)
    assert first_timeout >= settings.read_timeout_s - 0.1
    assert max(done[p][0] for p in healthy) < first_timeout  # all done before the silent ones time out
    assert all(done[p][1].active_faults() == [] for p in healthy)
    assert all(done[p][1].failure == "timeout" for p in silent)
    assert max(done[p][0] for p in silent) < settings.read_timeout_s + 1.5


def test_power_states_and_inputs(simulator):
    projector = SimProjector(power="warming", input="51")
    port = simulator.add(projector)
    report = _check(port)
    assert report.power == "warming" and report.lamps[0].lit is True and report.refused == {"INPT": "ERR3"}
    projector.power = "on"
    assert _check(port).input == "51"
    projector.power = "cooling"
    assert _check(port).power == "cooling"


def test_a_projector_that_takes_one_command_per_connection(simulator):
    projector = SimProjector(password="s3cret", pjlink_class=2, one_command_per_connection=True, serial="ONE")
    port = simulator.add(projector)
    report = _check(port, "s3cret")
    assert report.failure is None and report.identity["serial"] == "ONE" and report.active_faults() == []
    assert report.reconnects == 10 and projector.connections == 11  # 11 questions, each authenticated anew
    quiet_after_greeting = simulator.add(SimProjector(one_command_per_connection=True, mode="mute"))
    assert _check(quiet_after_greeting).failure == "timeout"
