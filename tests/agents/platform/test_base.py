"""The shared part: power and notice commands (dry run only), and the helpers both platforms lean on."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from agents.platform import Platform, PlatformError, PsutilPlatform
from agents.platform import base as base_module
from agents.platform.base import budget_software, clean_notice, health_pct, is_hardware_mac, normalize_mac
from agents.platform.linux import LinuxPlatform
from agents.platform.windows import WindowsPlatform

from .fakes import FakePsutil, RecordedReader


@pytest.fixture(autouse=True)
def nothing_runs(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Any attempt to start a process in these tests fails loudly: dry run must not touch the machine."""
    calls: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        calls.append(args)
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    return calls


def linux(tmp_path: Path) -> LinuxPlatform:
    """A Linux platform over an empty tree."""
    return LinuxPlatform(root=tmp_path, ps=FakePsutil())


def windows() -> WindowsPlatform:
    """A Windows platform over the recorded laptop."""
    return WindowsPlatform(RecordedReader("laptop"), ps=FakePsutil())


def test_both_platforms_satisfy_the_interface(tmp_path: Path) -> None:
    assert isinstance(linux(tmp_path), Platform)
    assert isinstance(windows(), Platform)
    assert isinstance(PsutilPlatform(FakePsutil()), Platform)


@pytest.mark.parametrize(("action", "delay", "notice", "argv"), [
    ("reboot", 300, "Máy sẽ khởi động lại sau 5 phút", ["shutdown", "-r", "+5", "Máy sẽ khởi động lại sau 5 phút"]),
    ("reboot", 0, None, ["shutdown", "-r", "now"]),
    ("shutdown", 90, "Tắt máy phòng Lab 1", ["shutdown", "-P", "+2", "Tắt máy phòng Lab 1"]),  # minutes, rounded up
    ("shutdown", 60, "--help me\n", ["shutdown", "-P", "+1", "help me"]),  # never an option
    ("cancel", 0, None, ["shutdown", "-c"]),
])
def test_linux_power_dry_run(tmp_path: Path, action: str, delay: int, notice: str | None, argv: list[str]) -> None:
    platform = linux(tmp_path)
    assert platform.power_argv(action, delay, notice) == argv
    result = platform.power(action, delay, notice, dry_run=True)
    assert result.startswith("dry run: shutdown")
    assert platform.dry_run_log == [argv]


@pytest.mark.parametrize(("action", "delay", "notice", "argv"), [
    ("reboot", 300, 'Lưu bài "ngay"', ["shutdown", "/r", "/t", "300", "/c", "Lưu bài 'ngay'"]),
    ("shutdown", 0, None, ["shutdown", "/s", "/t", "0"]),
    ("cancel", 0, "ignored", ["shutdown", "/a"]),
])
def test_windows_power_dry_run(action: str, delay: int, notice: str | None, argv: list[str]) -> None:
    platform = windows()
    assert platform.power_argv(action, delay, notice) == argv
    platform.power(action, delay, notice, dry_run=True)
    assert platform.dry_run_log == [argv]


def test_notify_dry_run(tmp_path: Path) -> None:
    platform = linux(tmp_path)
    # Two arguments: wall reads a single argument that names a file as that file (e.g. etc/shadow).
    assert platform.notify("etc/shadow", dry_run=True) == "dry run: wall '[classfleet]' etc/shadow"
    assert platform.dry_run_log == [["wall", "[classfleet]", "etc/shadow"]]
    win = windows()
    assert win.notify("Hết giờ thực hành,\nlưu bài!", dry_run=True) == "dry run: msg '*' 'Hết giờ thực hành, lưu bài!'"
    assert win.dry_run_log == [["msg", "*", "Hết giờ thực hành, lưu bài!"]]


def test_bad_requests_are_refused_before_anything_runs(tmp_path: Path) -> None:
    platform = linux(tmp_path)
    with pytest.raises(ValueError):
        platform.power("format", 0, None, dry_run=True)
    with pytest.raises(ValueError):
        platform.power("reboot", -5, None, dry_run=True)
    with pytest.raises(ValueError):
        platform.notify("  \n ", dry_run=True)
    with pytest.raises(PlatformError):
        PsutilPlatform(FakePsutil()).power("reboot", 0, None, dry_run=True)
    assert platform.dry_run_log == []


def test_a_real_run_goes_through_run_action(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []
    monkeypatch.setattr(base_module, "run_action", lambda argv, timeout=0: ran.append(list(argv)))
    assert linux(tmp_path).power("reboot", 120, "bye", dry_run=False) == "ran: shutdown -r +2 bye"
    assert ran == [["shutdown", "-r", "+2", "bye"]]


def test_run_action_failure_is_a_platform_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1, b"", b"denied"))
    with pytest.raises(PlatformError, match="denied"):
        base_module.run_action(["shutdown", "-c"])


# ---- helpers -------------------------------------------------------------------------------------------


def test_macs() -> None:
    assert normalize_mac("B0-7B-25-1A-2C-3D") == "b0:7b:25:1a:2c:3d"
    assert normalize_mac("b07b.251a.2c3d") == "b0:7b:25:1a:2c:3d"
    assert normalize_mac("b0:7b:25:1a:2c") is None
    assert normalize_mac(None) is None
    assert is_hardware_mac("b0:7b:25:1a:2c:3d")
    for bad in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "02:42:ac:11:00:02", "01:00:5e:00:00:fb", "junk"):
        assert not is_hardware_mac(bad), bad


def test_notice_cleaning() -> None:
    assert clean_notice(" -r now\x07") == "r now"
    assert clean_notice("a" * 1000) == "a" * 250
    assert clean_notice("\n\t") is None


def test_health() -> None:
    assert health_pct(38.0, 50.0) == 76.0
    assert health_pct(None, 50.0) is None
    assert health_pct(38.0, 0) is None
    assert health_pct(500.0, 50.0) is None  # a firmware bug, not a 1000% battery


def test_software_budget() -> None:
    entries = [{"name": f"pkg{i:04d}", "version": "1.0"} for i in range(100)] + [{"name": "pkg0001", "version": "1.0"},
                                                                                  {"name": "", "version": "x"}]
    kept, total = budget_software(entries, budget_bytes=1000)
    assert total == 100
    assert 0 < len(kept) < 100
    assert kept[0] == {"name": "pkg0000", "version": "1.0"}
    kept, total = budget_software(entries, max_count=10)
    assert (len(kept), total) == (10, 100)
