"""Spool bounds, detector hysteresis and the config file, without a broker."""

from __future__ import annotations

import time

import pytest

from agents.config import AgentConfigError, Thresholds, load_config, write_config
from agents.detectors import Detectors, build_rules
from agents.spool import Spool, next_session


def test_spool_sheds_heartbeats_first_and_keeps_events(tmp_path):
    spool = Spool(tmp_path / "spool.db", max_rows=100, max_age_s=3600)
    now = time.time()
    for i in range(10):
        spool.add("t/event", "event", {"i": i}, now=now)
    for i in range(200):
        spool.add("t/heartbeat", "heartbeat", {"i": i}, now=now)
    kinds = [m.kind for m in spool.pending(limit=1000)]
    assert len(kinds) == 100 and kinds.count("event") == 10
    assert spool.dropped == 110
    hb = [m.payload["i"] for m in spool.pending(limit=1000) if m.kind == "heartbeat"]
    assert hb == list(range(110, 200))  # the oldest heartbeats went


def test_spool_drops_by_age_events_last(tmp_path):
    spool = Spool(tmp_path / "spool.db", max_rows=10_000, max_age_s=100)
    old = time.time() - 200
    spool.add("t/heartbeat", "heartbeat", {}, now=old)
    spool.add("t/event", "event", {}, now=old)
    for _ in range(499):
        spool.add("t/heartbeat", "heartbeat", {})  # the 500th insert triggers a clean-up
    kinds = {m.kind for m in spool.pending(limit=1000)}
    assert "event" in kinds and len(spool) == 500


def test_spool_survives_a_restart_and_the_ledger_remembers_commands(tmp_path):
    spool = Spool(tmp_path / "spool.db")
    spool.add("t/heartbeat", "heartbeat", {"seq": 1})
    assert spool.mark_command("cmd-00000001", time.time()) is True
    spool.close()
    again = Spool(tmp_path / "spool.db")
    assert [m.payload for m in again.pending()] == [{"seq": 1}]
    assert again.mark_command("cmd-00000001", time.time()) is False
    assert next_session(tmp_path) == 1 and next_session(tmp_path) == 2


def test_detectors_raise_once_and_clear_once_with_hysteresis():
    detectors = Detectors(build_rules(Thresholds(disk_low_pct=90, hysteresis=5), "pc", []))
    disk = lambda pct: {"disk": [{"mount": "/", "total_bytes": 1, "used_pct": pct}]}  # noqa: E731
    seen = [c.state for pct in (80, 91, 95, 89, 86, 84, 84, 92) for c in detectors.check(disk(pct))]
    assert seen == ["raised", "cleared", "raised"]


def test_smart_board_watches_display_touch_and_services():
    detectors = Detectors(build_rules(Thresholds(), "smart_board", ["veyon", "sshd"]))
    changes = detectors.check({"displays": 0, "touch": 1, "services": {"veyon": False, "sshd": True}})
    assert {(c.code, c.state) for c in changes} == {("display.missing", "raised"), ("service.down", "raised")}
    assert next(c for c in changes if c.code == "service.down").detail == {"down": ["veyon"]}
    changes = detectors.check({"displays": None, "touch": 1, "services": {"veyon": True, "sshd": True}})
    assert [(c.code, c.state) for c in changes] == [("service.down", "cleared")]  # displays unknown: kept
    pc = Detectors(build_rules(Thresholds(), "pc", []))
    assert pc.check({"displays": 0, "touch": 0}) == []


def test_config_file_round_trip_and_errors(tmp_path):
    path = tmp_path / "agent.toml"
    write_config(path, {"school": "s1", "device": "pc-1", "broker": {"url": "mqtts://s1.pc-1@b.example"},
                        "agent": {"profile": "laptop"}, "thresholds": {"disk_low_pct": 80.0}})
    cfg = load_config(path)
    assert (cfg.host, cfg.port, cfg.username, cfg.profile) == ("b.example", 8883, "s1.pc-1", "laptop")
    assert cfg.thresholds.disk_low_pct == 80.0
    write_config(path, {"school": "S 1", "device": "pc-1"})
    with pytest.raises(AgentConfigError, match="school"):
        load_config(path)
    with pytest.raises(AgentConfigError, match="enroll"):
        load_config(tmp_path / "missing.toml")
