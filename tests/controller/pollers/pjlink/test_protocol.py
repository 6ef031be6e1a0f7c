"""The PJLink parsers, the hash and the fault judgement, without a network: fast unit tests."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from controller.pollers.pjlink.check import CheckReport, Lamp, LampLife, ProjectorTarget, judge
from controller.pollers.pjlink.protocol import (
    PJLinkProtocolError,
    auth_digest,
    input_name,
    parse_errors,
    parse_input,
    parse_lamps,
    parse_power,
    parse_reply,
)

AT = dt.datetime(2026, 11, 29, 8, 0, tzinfo=dt.UTC)


def test_auth_digest_is_md5_of_random_then_password():
    # the worked example of the PJLink specification: random 498e4a67, password JBMIAProjectorLink
    assert auth_digest("498e4a67", "JBMIAProjectorLink") == "5d8409bc1c3fa39749434aa3a5c38682"
    assert auth_digest("abc", "pw") == hashlib.md5(b"abcpw").hexdigest()


def test_parse_reply_values_errors_and_mismatches():
    assert parse_reply("%1POWR=1", "POWR").value == "1"
    assert parse_reply("%2SNUM=ABC 123", "SNUM", 2).value == "ABC 123"
    assert parse_reply("%1INF2=", "INF2").value == ""
    for code in ("ERR1", "ERR2", "ERR3", "ERR4"):
        reply = parse_reply(f"%1LAMP={code}", "LAMP")
        assert (reply.ok, reply.error, reply.value) == (False, code, None)
    with pytest.raises(PJLinkProtocolError):
        parse_reply("%1INPT=31", "POWR")  # an answer to something else
    with pytest.raises(PJLinkProtocolError):
        parse_reply("%2SNUM=X", "SNUM", 1)  # the wrong class


def test_parsers_accept_the_spec_and_refuse_the_rest():
    assert [parse_power(v) for v in "0123"] == ["off", "on", "cooling", "warming"]
    assert parse_input("31") == "31" and parse_input("6A") == "6A" and input_name("31") == "digital 1"
    assert parse_lamps("1200 1") == [(1200, True)]
    assert parse_lamps("99999 0 12 1") == [(99999, False), (12, True)]
    assert parse_errors("012000") == {"fan": "ok", "lamp": "warning", "temperature": "error", "cover": "ok",
                                      "filter": "ok", "other": "ok"}
    for parse, bad in ((parse_power, "5"), (parse_input, "71"), (parse_input, "3"), (parse_lamps, "12"),
                       (parse_lamps, "12 2"), (parse_lamps, ""), (parse_errors, "00000"), (parse_errors, "000300")):
        with pytest.raises(PJLinkProtocolError):
            parse(bad)


def test_target_parse():
    assert ProjectorTarget.parse("10.0.0.5") == ProjectorTarget("10.0.0.5", 4352)
    assert ProjectorTarget.parse("10.0.0.5:4353", "pw", 7) == ProjectorTarget("10.0.0.5", 4353, "pw", 7)
    assert ProjectorTarget.parse("[fe80::1]:4352").host == "fe80::1"
    assert "pw" not in repr(ProjectorTarget.parse("h", "pw"))
    for bad in ("", "h:x", "h:0", "h:70000"):
        with pytest.raises(ValueError):
            ProjectorTarget.parse(bad)


def test_lamp_life_thresholds_from_the_data_file(tmp_path):
    life = LampLife.load()
    assert life.default_hours == 3000
    assert life.threshold("Whoever", "Unknown-9000") == 3000
    assert life.threshold("X", "simprojector-2 eco") == 5000  # case-insensitive model
    assert life.threshold("ClassfleetSim", "SimProjector-Dual") == 2000  # vendor + model
    custom = tmp_path / "life.toml"
    custom.write_text('default_hours = 4500\n[models]\n"EB-X1" = 6000\n')
    assert LampLife.load(custom).threshold(None, "EB-X1") == 6000
    assert LampLife.load(custom).threshold(None, None) == 4500
    broken = tmp_path / "broken.toml"
    broken.write_text("default_hours = [")
    assert LampLife.load(broken) == LampLife()


def test_judge_maps_levels_to_severities_and_err4_to_other():
    report = CheckReport("h", 4352, AT, reachable=True, auth_ok=True,
                         errors={"fan": "warning", "lamp": "error", "temperature": "ok", "cover": "ok",
                                 "filter": "ok", "other": "ok"},
                         lamps=[Lamp(1, 10, True, 3000)], refused={"INPT": "ERR4"})
    checks = {c.code: c for c in judge(report)}
    assert (checks["projector.error.fan"].active, checks["projector.error.fan"].severity) == (True, "warning")
    assert (checks["projector.error.lamp"].active, checks["projector.error.lamp"].severity) == (True, "critical")
    assert checks["projector.error.temperature"].active is False
    assert checks["projector.error.other"].active and checks["projector.error.other"].detail == {"err4": ["INPT"]}
    assert checks["projector.lamp_end_of_life"].active is False
    assert checks["projector.unreachable"].active is False and checks["projector.auth_failed"].active is False


def test_judge_says_nothing_about_what_it_could_not_ask():
    unreachable = judge(CheckReport("h", 4352, AT, failure="timeout", error="no answer"))
    assert [(c.code, c.active) for c in unreachable] == [("projector.unreachable", True)]
    refused = judge(CheckReport("h", 4352, AT, reachable=True, auth_ok=False, failure="auth", error="ERRA"))
    assert [(c.code, c.active) for c in refused] == [("projector.unreachable", False), ("projector.auth_failed", True)]
    unknown = judge(CheckReport("h", 4352, AT, reachable=True, auth_ok=True, refused={"ERST": "ERR3",
                                                                                     "LAMP": "ERR3"}))
    assert {c.code for c in unknown} == {"projector.unreachable", "projector.auth_failed"}
