"""Local fault detectors with hysteresis: raise once when a figure crosses its threshold, clear
once when it falls back below a lower one, so a value hovering at the threshold is not a storm."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from classfleet_wire import lookup


@dataclass(frozen=True, slots=True)
class Threshold:
    """Raise at ``raise_at`` or above, clear below ``clear_below``."""

    code: str
    raise_at: float
    clear_below: float
    read: Callable[[dict[str, Any]], float | None]


def _max_disk(hb: dict[str, Any]) -> float | None:
    disks = hb.get("disk") or []
    return max((d["used_pct"] for d in disks), default=None)


DEFAULT_THRESHOLDS: tuple[Threshold, ...] = (
    Threshold("disk.low", 90.0, 85.0, _max_disk),
    Threshold("mem.high", 95.0, 85.0, lambda hb: hb.get("mem_pct")),
    Threshold("cpu.overheat", 85.0, 75.0, lambda hb: hb.get("temp_c")),
)


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

    thresholds: tuple[Threshold, ...] = DEFAULT_THRESHOLDS
    active: set[str] = field(default_factory=set)

    def check(self, heartbeat: dict[str, Any]) -> list[FaultChange]:
        """Compare one heartbeat's figures with the thresholds."""
        changes = []
        for t in self.thresholds:
            value = t.read(heartbeat)
            if value is None:
                continue
            if t.code not in self.active and value >= t.raise_at:
                self.active.add(t.code)
                changes.append(FaultChange(t.code, lookup(t.code).severity, "raised",
                                           {"value": value, "threshold": t.raise_at}))
            elif t.code in self.active and value < t.clear_below:
                self.active.discard(t.code)
                changes.append(FaultChange(t.code, lookup(t.code).severity, "cleared", {"value": value}))
        return changes
