"""Order-independent merge of a batch of messages into one device's latest state (DESIGN §4).

Pure functions, no I/O: the writer reads the current row (locked), merges, and writes it back.
Rules:
- the latest state is the one with the highest (session, seq); replayed messages never move
  ``last_seen``, ``session`` or ``seq``;
- heartbeat figures come from the heartbeat with the highest (session, seq), replayed or not;
- an ``offline`` Last Will applies only if its session is not older than the device's current one;
  an ``online`` status or a live message from a newer session marks the device online.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any

from classfleet_wire import Heartbeat, Message, Status


@dataclass(frozen=True, slots=True)
class StateRow:
    """The mutable columns of ``device_state`` (mirrors ``models.DeviceState``)."""

    device_id: int
    session: int = 0
    seq: int = -1
    last_seen: dt.datetime | None = None
    online: bool = False
    status_session: int = -1
    status_changed_at: dt.datetime | None = None
    agent_version: str | None = None
    profile: str | None = None
    hb_session: int = -1
    hb_seq: int = -1
    hb_ts: dt.datetime | None = None
    uptime_s: float | None = None
    cpu_pct: float | None = None
    mem_pct: float | None = None
    disk_max_pct: float | None = None
    temp_c: float | None = None
    clock_skew_s: float | None = None
    inventory_hash: str | None = None

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        """Column names, in declaration order."""
        return _COLUMNS

    def as_dict(self) -> dict[str, object]:
        """Column → value, for an UPDATE."""
        return {name: getattr(self, name) for name in _COLUMNS}


_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(StateRow))


def _from_ts(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def merge(row: StateRow, items: list[tuple[Message, dt.datetime]]) -> StateRow:
    """Apply messages (in arrival order, each with its receive time) to ``row``."""
    state = row.as_dict()  # mutated in place: one StateRow is built per device, not per message
    for message, received_at in items:
        payload = message.payload
        if isinstance(payload, Status):
            _apply_status(state, payload, received_at)
        else:
            _apply(state, payload, received_at)
    return StateRow(**state)  # type: ignore[arg-type]


def _apply(s: dict[str, Any], payload: Any, received_at: dt.datetime) -> None:
    session = getattr(payload, "session", None)
    seq = getattr(payload, "seq", None)
    if session is None or seq is None:
        return
    if not getattr(payload, "replayed", False):
        if (session, seq) > (s["session"], s["seq"]):
            s["session"], s["seq"] = session, seq
        if s["last_seen"] is None or received_at > s["last_seen"]:
            s["last_seen"] = received_at
        if session > s["status_session"]:
            s.update(online=True, status_session=session, status_changed_at=received_at)
    if isinstance(payload, Heartbeat) and (session, seq) > (s["hb_session"], s["hb_seq"]):
        disks = [d.used_pct for d in payload.disk]
        s.update(
            hb_session=session, hb_seq=seq, hb_ts=_from_ts(payload.ts), uptime_s=payload.uptime_s,
            cpu_pct=payload.cpu_pct, mem_pct=payload.mem_pct, temp_c=payload.temp_c,
            disk_max_pct=max(disks) if disks else None,
        )
        if not payload.replayed:
            s["clock_skew_s"] = round(payload.ts - received_at.timestamp(), 3)


def _apply_status(s: dict[str, Any], status: Status, received_at: dt.datetime) -> None:
    if status.session < s["status_session"] or status.session < s["session"]:
        return  # a Will or a retained status from an older session: stale
    online = status.state == "online"
    if online != s["online"] or s["status_changed_at"] is None:
        s["status_changed_at"] = received_at
    s["online"], s["status_session"] = online, status.session
    if online:
        s["agent_version"], s["profile"] = status.agent, status.profile
        if s["last_seen"] is None or received_at > s["last_seen"]:
            s["last_seen"] = received_at
