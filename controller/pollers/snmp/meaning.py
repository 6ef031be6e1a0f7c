"""Meaning: successive snapshots of one device → rates, port states, uplink, reboot and reachability faults.

Pure and clock-injected: a ``DeviceTracker`` keeps what one device's previous poll said, and
``observe``/``failed`` turn the next poll into a ``controller.store.polls.PollResult``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ...store.polls import ComponentStatus, FaultCheck, PollResult
from .decode import Interface, Snapshot

UPTIME_WRAP_S = 2**32 / 100.0  # sysUpTime is TimeTicks: it wraps after ~497 days
MAX_RATE_BPS = 1.6e12  # faster than any port we watch: a rate above it is a counter discontinuity
SWITCH_KINDS = frozenset({"switch", "access_point"})


def counter_delta(previous: int | None, current: int | None, bits: int) -> int | None:
    """Increase of a counter between two reads: one 32-bit wrap is allowed; a 64-bit counter going
    back is a reset (reboot, or a counter cleared), not a wrap, so there is no delta."""
    if previous is None or current is None:
        return None
    if current >= previous:
        return current - previous
    if bits == 32:
        return current + 2**32 - previous
    return None


def rate(previous: int | None, current: int | None, bits: int, elapsed_s: float,
         limit_per_s: float | None = None) -> float | None:
    """Per-second rate of a counter, or ``None`` when it cannot be trusted (no interval, a reset, or a
    value no link could carry, which is what a discontinuity looks like)."""
    if elapsed_s <= 0:
        return None
    delta = counter_delta(previous, current, bits)
    if delta is None:
        return None
    value = delta / elapsed_s
    ceiling = MAX_RATE_BPS / 8 if limit_per_s is None else limit_per_s
    if value > ceiling:
        return None
    return value


def rebooted(previous_uptime_s: float | None, current_uptime_s: float | None, elapsed_s: float,
             slack_s: float = 5.0) -> bool:
    """sysUpTime went back: the device restarted (a TimeTicks wrap after ~497 days is not a reboot)."""
    if previous_uptime_s is None or current_uptime_s is None:
        return False
    if current_uptime_s + slack_s >= previous_uptime_s:
        return False
    wrapped_expected = previous_uptime_s + elapsed_s - UPTIME_WRAP_S
    return not (previous_uptime_s + elapsed_s + slack_s >= UPTIME_WRAP_S
                and abs(current_uptime_s - wrapped_expected) <= slack_s + 0.01 * elapsed_s)


def unreachable_code(kind: str) -> str:
    """The fault code for "does not answer": ``switch.unreachable`` for switches and access points,
    else the kind's own (``projector.unreachable`` is registered; others fall back to generic texts)."""
    if kind in SWITCH_KINDS or not kind:
        return "switch.unreachable"
    return f"{kind}.unreachable"


@dataclass(slots=True)
class Uplink:
    """Which port is the device's uplink and how that was decided (``configured``, ``lldp``, ``speed``)."""

    index: int
    name: str
    how: str


@dataclass(slots=True)
class DeviceTracker:
    """What one device's earlier polls said: counters for rates, uptime for reboots, failure streak."""

    device_id: int
    kind: str = "switch"
    is_school_uplink: bool = False
    configured_uplink: str | None = None
    fail_threshold: int = 3
    reboot_hold_s: float = 3600.0
    error_rate_threshold: float = 1.0
    last_at: dt.datetime | None = None
    last_uptime_s: float | None = None
    counters: dict[int, tuple[int | None, int | None, int | None, int]] = field(default_factory=dict)
    failures: int = 0
    last_reason: str | None = None
    uplink: Uplink | None = None
    rebooted_at: dt.datetime | None = None

    @property
    def unreachable_code(self) -> str:
        """The fault code raised when this device stops answering."""
        return unreachable_code(self.kind)

    def failed(self, at: dt.datetime, reason: str, detail: str) -> PollResult:
        """A poll that got no usable answer: unreachable from the ``fail_threshold``-th in a row."""
        self.failures += 1
        self.last_reason = reason
        active = self.failures >= self.fail_threshold
        checks = [FaultCheck(self.unreachable_code, active,
                             detail={"reason": reason, "detail": detail, "failed_polls": self.failures})]
        if self.is_school_uplink:
            checks.append(FaultCheck("school.upstream_down", active, detail={"reason": reason}))
        return PollResult(device_id=self.device_id, at=at, reachable=False,
                          figures={"error": reason, "error_detail": detail[:300], "failed_polls": self.failures},
                          faults=tuple(checks))

    def observe(self, snap: Snapshot, at: dt.datetime) -> PollResult:
        """A successful poll: rates against the previous one, port components, and fault checks."""
        elapsed = (at - self.last_at).total_seconds() if self.last_at else 0.0
        reboot = rebooted(self.last_uptime_s, snap.uptime_s, elapsed)
        if reboot:
            self.rebooted_at = at
            self.counters.clear()  # counters restarted with the device: no rate this round
        figures: dict[str, Any] = {"uptime_s": snap.uptime_s, "interfaces": len(snap.interfaces),
                                   "interfaces_up": sum(1 for i in snap.interfaces if i.oper == "up")}
        components: list[ComponentStatus] = []
        error_ports: list[dict[str, Any]] = []
        self._choose_uplink(snap)
        for iface in snap.interfaces:
            data = self._port_data(iface, elapsed)
            if data.get("errors_per_s", 0.0) > self.error_rate_threshold:
                error_ports.append({"port": iface.name, "errors_per_s": round(data["errors_per_s"], 3)})
            if self.uplink and iface.index == self.uplink.index:
                data["uplink"] = self.uplink.how
            if iface.physical:
                components.append(ComponentStatus(kind="port", index=iface.index, status=_port_status(iface),
                                                  name=iface.name[:200], data=data))
        rated = [c.data for c in components if "in_bps" in c.data or "out_bps" in c.data]
        if rated:  # the device's total traffic, for history (ports' own rates live in their components)
            figures["in_bps"] = round(sum(d.get("in_bps", 0.0) for d in rated), 1)
            figures["out_bps"] = round(sum(d.get("out_bps", 0.0) for d in rated), 1)
        if snap.ups is not None:
            figures["ups"] = {k: v for k, v in (("battery_status", snap.ups.battery_status),
                                                ("charge_pct", snap.ups.charge_pct),
                                                ("runtime_s", snap.ups.runtime_s),
                                                ("on_battery", snap.ups.on_battery)) if v is not None}
        if snap.poe_supplies:
            figures["poe_w"] = sum(p.consumption_w or 0 for p in snap.poe_supplies)
        checks = [FaultCheck(self.unreachable_code, False)]
        if self.kind in SWITCH_KINDS:
            recent = self.rebooted_at is not None and (at - self.rebooted_at).total_seconds() < self.reboot_hold_s
            checks.append(FaultCheck("switch.rebooted", recent,
                                     detail={"uptime_s": snap.uptime_s} if recent else {}))
            uplink_iface = next((i for i in snap.interfaces if self.uplink and i.index == self.uplink.index), None)
            down = uplink_iface is not None and uplink_iface.oper != "up"
            checks.append(FaultCheck("switch.uplink_down", down, detail={
                "port": uplink_iface.name, "status": uplink_iface.oper, "how": self.uplink.how}
                if down and uplink_iface and self.uplink else {}))
            checks.append(FaultCheck("switch.port_errors", bool(error_ports), detail={"ports": error_ports[:20]}))
            if self.is_school_uplink:
                checks.append(FaultCheck("school.upstream_down", down, detail={"uplink_down": True} if down else {}))
        if snap.ups is not None:
            checks += ups_checks(snap)
        if self.uplink:
            figures["uplink"] = {"port": self.uplink.name, "how": self.uplink.how}
        self.failures, self.last_reason = 0, None
        self.last_at, self.last_uptime_s = at, snap.uptime_s
        return PollResult(device_id=self.device_id, at=at, reachable=True, figures=figures,
                          identity=snap.identity(), faults=tuple(checks), components=tuple(components))

    def _port_data(self, iface: Interface, elapsed: float) -> dict[str, Any]:
        """Speed, traffic rates and error rate of one port; remembers its counters for the next round."""
        data: dict[str, Any] = {"oper": iface.oper}
        if iface.admin:
            data["admin"] = iface.admin
        if iface.speed_bps:
            data["speed_bps"] = iface.speed_bps
        if iface.alias:
            data["alias"] = iface.alias[:120]
        errors = None
        if iface.in_errors is not None or iface.out_errors is not None:
            errors = (iface.in_errors or 0) + (iface.out_errors or 0)
        previous = self.counters.get(iface.index)
        # a port's ceiling: its speed with headroom, in bytes per second
        limit = iface.speed_bps / 8 * 1.2 if iface.speed_bps else None
        if previous is not None and previous[3] == iface.counter_bits and elapsed > 0:
            in_rate = rate(previous[0], iface.in_octets, iface.counter_bits, elapsed, limit)
            out_rate = rate(previous[1], iface.out_octets, iface.counter_bits, elapsed, limit)
            if in_rate is not None:
                data["in_bps"] = round(in_rate * 8, 1)
            if out_rate is not None:
                data["out_bps"] = round(out_rate * 8, 1)
            err_rate = rate(previous[2], errors, 32, elapsed, 1e7)
            if err_rate is not None:
                data["errors_per_s"] = err_rate
        self.counters[iface.index] = (iface.in_octets, iface.out_octets, errors, iface.counter_bits)
        return data

    def _choose_uplink(self, snap: Snapshot) -> None:
        """Configured port; else keep the one chosen before; else infer from LLDP, then the fastest trunk."""
        if self.configured_uplink:
            wanted = self.configured_uplink
            for iface in snap.interfaces:
                if wanted in (iface.name, iface.descr, str(iface.index)):
                    self.uplink = Uplink(iface.index, iface.name, "configured")
                    return
        if self.uplink is not None and any(i.index == self.uplink.index for i in snap.interfaces):
            return
        self.uplink = infer_uplink(snap)


def infer_uplink(snap: Snapshot) -> Uplink | None:
    """The uplink when the device does not say: the fastest up port with an LLDP neighbour, else the one
    up port faster than every access port. Ambiguous (all ports alike) → none: guessing would mislead."""
    ports = [i for i in snap.interfaces if i.physical and i.oper == "up"]
    if not ports:
        return None
    with_neighbour = {n.local_port for n in snap.neighbours if n.local_port is not None}
    lldp = [i for i in ports if i.index in with_neighbour]
    if lldp:
        best = max(lldp, key=lambda i: (i.speed_bps or 0, i.index))
        return Uplink(best.index, best.name, "lldp")
    speeds = sorted({i.speed_bps or 0 for i in ports})
    if len(speeds) < 2 or speeds[-1] == 0:
        return None
    fastest = [i for i in ports if (i.speed_bps or 0) == speeds[-1]]
    if len(fastest) * 2 > len(ports):
        return None  # most ports are this fast: no trunk stands out
    best = max(fastest, key=lambda i: i.index)
    return Uplink(best.index, best.name, "speed")


def ups_checks(snap: Snapshot) -> list[FaultCheck]:
    """A UPS on battery, with a low battery, or asking for a new one (codes not in the registry yet:
    they carry their own severity until classfleet_wire.faults registers them)."""
    ups = snap.ups
    if ups is None:
        return []
    detail = {k: v for k, v in (("charge_pct", ups.charge_pct), ("runtime_s", ups.runtime_s)) if v is not None}
    checks = []
    if ups.on_battery is not None:
        checks.append(FaultCheck("ups.on_battery", ups.on_battery, "warning", detail if ups.on_battery else {}))
    if ups.battery_status is not None:
        low = ups.battery_status in ("low", "depleted", "fault")
        checks.append(FaultCheck("ups.battery_low", low, "critical",
                                 {**detail, "battery": ups.battery_status} if low else {}))
    if ups.replace_battery is not None:
        checks.append(FaultCheck("ups.replace_battery", ups.replace_battery, "warning"))
    return checks


def _port_status(iface: Interface) -> str:
    """The component status: ``up``, ``down``, ``disabled`` (admin down) or the oper status."""
    if iface.admin == "down":
        return "disabled"
    return iface.oper if iface.oper in ("up", "down") else (iface.oper[:16] or "unknown")
