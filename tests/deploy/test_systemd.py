"""deploy/systemd: both units pass ``systemd-analyze verify`` (which also reports unknown directives and bad
values), keep their hardening, and keep what the agent's allow-listed commands need.

``verify`` works without systemd as PID 1, but insists that ExecStart binaries exist: each unit is copied
with its ``/opt/...`` install prefix pointed at stub executables in a temp dir.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
SCRIPTS = tuple(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])
PREFIXES = ("/opt/classfleet/bin/", "/opt/classfleet-agent/bin/")
COMMON_HARDENING = {
    "NoNewPrivileges": "true", "ProtectSystem": "strict", "ProtectHome": "true", "PrivateTmp": "true",
    "ProtectKernelTunables": "true", "ProtectKernelModules": "true", "ProtectControlGroups": "true",
    "RestrictNamespaces": "true", "RestrictSUIDSGID": "true", "LockPersonality": "true",
    "SystemCallArchitectures": "native", "SystemCallFilter": "@system-service",
}


def _analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is not installed: apt-get install -y systemd (.ci/install-test-deps does this)")
    return path


def _directives(text: str) -> dict[str, str]:
    """Key=value lines of a unit (the last one wins, as systemd reads most of them)."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z]+)=(.*)$", line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def verify(text: str, name: str, tmp_path: Path) -> list[str]:
    """Run ``systemd-analyze verify`` on a unit's text; the problems it reports about that unit."""
    stubs = tmp_path / "bin"
    stubs.mkdir(parents=True, exist_ok=True)
    for binary in SCRIPTS:  # what 'pip install classfleet' puts in the venv's bin/
        stub = stubs / binary
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    for prefix in PREFIXES:
        text = text.replace(prefix, f"{stubs}/")
    unit = tmp_path / name
    unit.write_text(text)
    done = subprocess.run([_analyze(), "verify", "--man=no", str(unit)], capture_output=True, text=True,
                          timeout=60, check=False)
    problems = [line for line in (done.stdout + done.stderr).splitlines() if name in line]
    if done.returncode != 0 and not problems:
        problems = [f"exit {done.returncode}: {done.stderr.strip()}"]
    return problems


@pytest.mark.parametrize("name", ["classfleet-controller.service", "classfleet-agent.service"])
def test_unit_verifies_cleanly(name: str, tmp_path: Path) -> None:
    assert verify((UNITS / name).read_text(), name, tmp_path) == []


@pytest.mark.parametrize("broken", [
    "ProtectHomme=true",                 # a typo'd directive
    "ProtectSystem=maybe",               # a bad value
    "SystemCallFilter=@no-such-group",   # an unknown syscall group
    "ExecStartPost=/opt/classfleet/bin/classfleet-missing",  # a binary that is not there
])
def test_verify_catches_mistakes(broken: str, tmp_path: Path) -> None:
    """The check above is meaningful: mistakes that systemd would ignore with a warning are reported, on their line."""
    lines = (UNITS / "classfleet-controller.service").read_text().splitlines()
    at = lines.index("[Install]") - 1
    lines.insert(at, broken)
    problems = verify("\n".join(lines) + "\n", "broken.service", tmp_path / "unit")
    assert problems, f"systemd-analyze verify accepted {broken!r}"
    if "missing" not in broken:
        assert any(f"broken.service:{at + 1}:" in p for p in problems), problems


@pytest.mark.parametrize("name", ["classfleet-controller.service", "classfleet-agent.service"])
def test_unit_is_hardened(name: str) -> None:
    directives = _directives((UNITS / name).read_text())
    missing = {k: v for k, v in COMMON_HARDENING.items() if directives.get(k) != v}
    assert not missing, f"{name} lost hardening: {missing}"
    state = directives["StateDirectory"]
    assert directives["ReadWritePaths"] == f"/var/lib/{state}"


def test_controller_has_no_capabilities() -> None:
    directives = _directives((UNITS / "classfleet-controller.service").read_text())
    assert directives["CapabilityBoundingSet"] == "" and directives["User"] == "classfleet"
    assert directives["PrivateDevices"] == "true"


def test_agent_keeps_what_its_commands_need() -> None:
    """shutdown asks logind over D-Bus (CAP_SYS_BOOT, AF_UNIX); wall writes users' /dev/pts (CAP_DAC_OVERRIDE)."""
    from agents.platform.linux import LinuxPlatform

    platform = LinuxPlatform()
    commands = {platform.power_argv("reboot", 60, None)[0], platform.notify_argv("x")[0]}
    assert commands == {"shutdown", "wall"}, "the agent runs new commands: review deploy/systemd/classfleet-agent"
    directives = _directives((UNITS / "classfleet-agent.service").read_text())
    assert "User" not in directives  # root: DMI serials are 0400 root
    assert set(directives["CapabilityBoundingSet"].split()) == {"CAP_SYS_BOOT", "CAP_DAC_OVERRIDE"}
    assert {"AF_UNIX", "AF_NETLINK", "AF_INET", "AF_INET6"} <= set(directives["RestrictAddressFamilies"].split())
    assert "PrivateDevices" not in directives and "ProtectProc" not in directives
