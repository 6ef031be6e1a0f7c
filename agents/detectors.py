"""Local fault detectors with hysteresis: raise once when a figure crosses its threshold, clear
once when it is back past a margin, so a value hovering at the threshold is not a storm.

Detectors read one dict of facts: the heartbeat's wire fields plus live facts from the platform
layer (``battery_health_pct``, ``displays``, ``touch``, ``services``). A fact that is None is
unknown on this machine and neither raises nor clears anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from classfleet_wire import lookup

from .config import Thresholds


@dataclass(frozen=True, slots=True)
class Rule:
    """A fault with its raise and clear tests over the facts."""

    code: str
    raise_when: Callable[[dict[str, Any]], bool | None]
    clear_when: Callable[[dict[str, Any]], bool | None]
    detail: Callable[[dict[str, Any]], dict[str, Any]] = lambda facts: {}


def _max_disk(facts: dict[str, Any]) -> float | None:
    disks = facts.get("disk") or []
    return max((d["used_pct"] for d in disks), default=None)


def _above(read: Callable[[dict[str, Any]], float | None], at: float) -> Callable[[dict[str, Any]], bool | None]:
    def test(facts: dict[str, Any]) -> bool | None:
        value = read(facts)
        return None if value is None else value >= at
    return test


def _below(read: Callable[[dict[str, Any]], float | None], at: float) -> Callable[[dict[str, Any]], bool | None]:
    def test(facts: dict[str, Any]) -> bool | None:
        value = read(facts)
        return None if value is None else value < at
    return test


def _count_is_zero(key: str) -> Callable[[dict[str, Any]], bool | None]:
    def test(facts: dict[str, Any]) -> bool | None:
        value = facts.get(key)
        return None if value is None else value == 0
    return test


def _count_positive(key: str) -> Callable[[dict[str, Any]], bool | None]:
    def test(facts: dict[str, Any]) -> bool | None:
        value = facts.get(key)
        return None if value is None else value > 0
    return test


def build_rules(t: Thresholds, profile: str, services: list[str]) -> list[Rule]:
    """The rules for this profile with these thresholds (rebuilt on a config reload)."""
    h = t.hysteresis
    mem = lambda f: f.get("mem_pct")  # noqa: E731
    temp = lambda f: f.get("temp_c")  # noqa: E731
    battery = lambda f: f.get("battery_health_pct")  # noqa: E731
    rules = [
        Rule("disk.low", _above(_max_disk, t.disk_low_pct), _below(_max_disk, t.disk_low_pct - h),
             lambda f: {"used_pct": _max_disk(f), "threshold_pct": t.disk_low_pct}),
        Rule("mem.high", _above(mem, t.mem_high_pct), _below(mem, t.mem_high_pct - h),
             lambda f: {"mem_pct": f.get("mem_pct"), "threshold_pct": t.mem_high_pct}),
        Rule("cpu.overheat", _above(temp, t.cpu_overheat_c), _below(temp, t.cpu_overheat_c - h),
             lambda f: {"temp_c": f.get("temp_c"), "threshold_c": t.cpu_overheat_c}),
        Rule("battery.worn", _below(battery, t.battery_worn_pct), _above(battery, t.battery_worn_pct + h),
             lambda f: {"health_pct": f.get("battery_health_pct"), "threshold_pct": t.battery_worn_pct}),
    ]
    if profile == "smart_board":
        rules += [
            Rule("display.missing", _count_is_zero("displays"), _count_positive("displays")),
            Rule("touch.missing", _count_is_zero("touch"), _count_positive("touch")),
        ]
    if services:
        # One fault for the machine: raised while any watched service is down, cleared when all run.
        rules.append(Rule("service.down", lambda f: bool(_down(f, services)), lambda f: _all_up(f, services),
                          lambda f: {"down": _down(f, services)}))
    return rules


def _down(facts: dict[str, Any], services: list[str]) -> list[str]:
    states = facts.get("services") or {}
    return [name for name in services if states.get(name) is False]


def _all_up(facts: dict[str, Any], services: list[str]) -> bool | None:
    states = facts.get("services") or {}
    known = [states.get(name) for name in services if states.get(name) is not None]
    return None if not known else all(known)


@dataclass(frozen=True, slots=True)
class FaultChange:
    """A raise or a clear to publish as an ``event``."""

    code: str
    severity: str
    state: str
    detail: dict[str, Any]


@dataclass
class Detectors:
    """Holds which faults are raised; ``check`` returns only the transitions."""

    rules: list[Rule] = field(default_factory=lambda: build_rules(Thresholds(), "pc", []))
    active: set[str] = field(default_factory=set)

    def check(self, facts: dict[str, Any]) -> list[FaultChange]:
        """Compare one round of facts with the rules."""
        changes = []
        for rule in self.rules:
            if rule.code not in self.active and rule.raise_when(facts):
                self.active.add(rule.code)
                changes.append(FaultChange(rule.code, lookup(rule.code).severity, "raised", rule.detail(facts)))
            elif rule.code in self.active and rule.clear_when(facts):
                self.active.discard(rule.code)
                changes.append(FaultChange(rule.code, lookup(rule.code).severity, "cleared", rule.detail(facts)))
        return changes

    def replace_rules(self, rules: list[Rule]) -> list[FaultChange]:
        """Swap in new rules (a config reload); faults whose rule is gone are cleared."""
        keep = {r.code for r in rules}
        gone = sorted(code for code in self.active if code not in keep)
        self.rules = rules
        changes = []
        for code in gone:
            self.active.discard(code)
            changes.append(FaultChange(code, lookup(code).severity, "cleared", {"reason": "rule removed"}))
        return changes
