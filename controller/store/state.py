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
from dataclasses import dataclass, fields, replace

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
        return tuple(f.name for f in fields(cls))

    def as_dict(self) -> dict[str, object]:
        """Column → value, for an UPDATE."""
        return {name: getattr(self, name) for name in self.columns()}


def _from_ts(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def merge(row: StateRow, items: list[tuple[Message, dt.datetime]]) -> StateRow:
    """Apply messages (in arrival order, each with its receive time) to ``row``."""
    for message, received_at in items:
        row = _apply(row, message, received_at)
    return row


def _apply(row: StateRow, message: Message, received_at: dt.datetime) -> StateRow:
    payload = message.payload
    if isinstance(payload, Status):
        return _apply_status(row, payload, received_at)
    session = getattr(payload, "session", None)
    seq = getattr(payload, "seq", None)
    if session is None or seq is None:
        return row
    changes: dict[str, object] = {}
    if not getattr(payload, "replayed", False):
        if (session, seq) > (row.session, row.seq):
            changes.update(session=session, seq=seq)
        if row.last_seen is None or received_at > row.last_seen:
            changes["last_seen"] = received_at
        if session > row.status_session:
            changes.update(online=True, status_session=session, status_changed_at=received_at)
    if isinstance(payload, Heartbeat) and (session, seq) > (row.hb_session, row.hb_seq):
        disks = [d.used_pct for d in payload.disk]
        changes.update(
            hb_session=session, hb_seq=seq, hb_ts=_from_ts(payload.ts), uptime_s=payload.uptime_s,
            cpu_pct=payload.cpu_pct, mem_pct=payload.mem_pct, temp_c=payload.temp_c,
            disk_max_pct=max(disks) if disks else None,
        )
        if not payload.replayed:
            changes["clock_skew_s"] = round(payload.ts - received_at.timestamp(), 3)
    return replace(row, **changes) if changes else row  # type: ignore[arg-type]


def _apply_status(row: StateRow, status: Status, received_at: dt.datetime) -> StateRow:
    if status.session < row.status_session or status.session < row.session:
        return row  # a Will or a retained status from an older session: stale
    online = status.state == "online"
    changes: dict[str, object] = {"online": online, "status_session": status.session}
    if online != row.online or row.status_changed_at is None:
        changes["status_changed_at"] = received_at
    if online:
        changes.update(agent_version=status.agent, profile=status.profile)
        if row.last_seen is None or received_at > row.last_seen:
            changes["last_seen"] = received_at
    return replace(row, **changes)  # type: ignore[arg-type]
