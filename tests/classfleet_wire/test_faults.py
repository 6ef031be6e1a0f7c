"""The fault-code registry (DESIGN §5) and the package's public surface."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import FrozenInstanceError

import pytest

import classfleet_wire
from classfleet_wire import REGISTRY, FaultCode, MessageKind, build_topic, decode, lookup
from classfleet_wire.faults import _CODES, SEVERITY_ORDER
from classfleet_wire.models import FAULT_CODE_PATTERN

CODES = sorted(REGISTRY)
SEVERITIES = {"info", "warning", "critical"}
CLEARED_BY = {"event", "poll", "heartbeat", "manual"}
# The codes DESIGN §5 names explicitly.
DESIGN_CODES = [
    "disk.low", "cpu.overheat", "display.missing", "touch.missing", "agent.offline", "switch.unreachable",
    "switch.uplink_down", "camera.unreachable", "camera.auth_failed", "camera.time_drift", "camera.no_stream",
]


def test_registry_has_no_duplicates_and_is_keyed_by_code() -> None:
    assert len(_CODES) == len(REGISTRY) > 0
    assert all(key == entry.code for key, entry in REGISTRY.items())


@pytest.mark.parametrize("code", DESIGN_CODES)
def test_design_codes_are_registered(code: str) -> None:
    assert code in REGISTRY


@pytest.mark.parametrize("code", CODES)
def test_every_code_is_namespaced_and_fits_an_event(code: str) -> None:
    assert re.fullmatch(FAULT_CODE_PATTERN, code)
    area, _, condition = code.partition(".")
    assert area and condition
    assert len(code) <= 64


@pytest.mark.parametrize("code", CODES)
def test_every_code_has_vi_and_en_text_a_severity_and_a_clearing(code: str) -> None:
    entry = REGISTRY[code]
    assert entry.severity in SEVERITIES
    assert entry.cleared_by in CLEARED_BY
    for text in (entry.text_vi, entry.text_en):
        assert text and text == text.strip()
    assert entry.text_vi != entry.text_en
    assert entry.text_en.isascii()
    assert entry.text("vi") == entry.text_vi
    assert entry.text("en") == entry.text_en


@pytest.mark.parametrize("code", CODES)
def test_every_registered_code_can_travel_in_an_event(code: str) -> None:
    entry = REGISTRY[code]
    raw = json.dumps({"v": 1, "session": 1, "seq": 1, "ts": 1.0, "code": code, "severity": entry.severity,
                      "state": "raised"}).encode()
    payload = decode(build_topic("s1", "d1", MessageKind.EVENT), raw).payload
    assert payload.code == code  # type: ignore[union-attr]


def test_vietnamese_text_is_vietnamese() -> None:
    assert REGISTRY["disk.low"].text("vi") == "Ổ đĩa sắp đầy"
    assert REGISTRY["agent.offline"].text("en") == "Agent offline"
    assert sum(not e.text_vi.isascii() for e in REGISTRY.values()) == len(REGISTRY)


@pytest.mark.parametrize(("lang", "expected"), [("vi", "vi"), ("vi-VN", "vi"), ("vi_VN", "vi"), ("en", "en"),
                                                ("en-US", "en"), ("fr", "en"), ("", "en"), ("VI", "en")])
def test_text_language_choice(lang: str, expected: str) -> None:
    entry = FaultCode("x.y", "info", "tiếng Việt", "English", "event")
    assert entry.text(lang) == ("tiếng Việt" if expected == "vi" else "English")


def test_severity_order() -> None:
    assert set(SEVERITY_ORDER) == SEVERITIES
    assert SEVERITY_ORDER["info"] < SEVERITY_ORDER["warning"] < SEVERITY_ORDER["critical"]


@pytest.mark.parametrize("code", CODES)
def test_lookup_of_a_known_code_is_the_registered_entry(code: str) -> None:
    assert lookup(code) is REGISTRY[code]
    assert lookup(code, "info") is REGISTRY[code]  # the registry's severity wins


@pytest.mark.parametrize("severity", [None, "info", "warning", "critical"])
def test_lookup_of_an_unknown_code_is_generic(severity: str | None) -> None:
    entry = lookup("printer.jammed", severity)  # type: ignore[arg-type]
    assert isinstance(entry, FaultCode)
    assert entry.code == "printer.jammed"
    assert entry.severity == (severity or "warning")
    assert entry.cleared_by == "event"
    assert "printer.jammed" in entry.text("vi") and "printer.jammed" in entry.text("en")
    assert entry.text("vi") != entry.text("en")
    assert entry.text("en") == "Unregistered fault: printer.jammed"
    assert "printer.jammed" not in REGISTRY  # looking up does not register


def test_fault_code_is_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        REGISTRY["disk.low"].severity = "info"  # type: ignore[misc]


def test_public_names_are_exported() -> None:
    for name in classfleet_wire.__all__:
        assert getattr(classfleet_wire, name) is not None, name
    assert classfleet_wire.SCHEMA_VERSION == 1
    assert classfleet_wire.MAX_PAYLOAD_BYTES == 64 * 1024


def test_contract_imports_neither_side_nor_io_libraries() -> None:
    code = (
        "import sys, classfleet_wire\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'controller', 'agents', 'sqlalchemy', 'fastapi', 'paho', 'psutil', 'httpx', 'requests'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == ""
