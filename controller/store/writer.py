"""Writes one batch of validated messages and dead letters in a single transaction.

Idempotency: every sequenced message is inserted into ``observations`` keyed by
(device, session, seq) with ON CONFLICT DO NOTHING; only the rows that were really new have
effects (incidents, commands, inventory), so a redelivered message is never applied twice.
Latest state is merged per device (see ``state.merge``) under a row lock.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from classfleet_wire import CommandAck, Event, Inventory, Message, Status
from classfleet_wire.topics import TOPIC_ROOT

from .. import faults
from . import fastio
from .models import PROFILE_TO_KIND, Command, DeadLetter, Device, DeviceInventory, DeviceState, School
from .state import StateRow, merge

log = logging.getLogger(__name__)

DEAD_LETTER_PREVIEW_BYTES = 64 * 1024
ACK_ORDER = {"pending": 0, "sent": 1, "accepted": 2, "done": 3, "failed": 3, "rejected": 3, "expired": 3}


@dataclass(frozen=True, slots=True)
class Accepted:
    """A message that passed the wire contract."""

    message: Message
    received_at: dt.datetime
    raw: bytes = b""

    @property
    def topic(self) -> str:
        """The topic it came on (rebuilt from its identity)."""
        m = self.message
        return f"{TOPIC_ROOT}/{m.school}/{m.device}/{m.kind.value}"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message rejected at the edge, bound for the dead-letter table."""

    topic: str
    reason: str
    detail: str
    payload: bytes
    received_at: dt.datetime


@dataclass(slots=True)
class BatchOutcome:
    """What one committed batch did, for metrics and tests."""

    applied: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    registered: int = 0

    def merged(self, other: BatchOutcome) -> BatchOutcome:
        """The sum of two outcomes (a batch committed in parts)."""
        out = BatchOutcome(duplicates=self.duplicates + other.duplicates,
                           registered=self.registered + other.registered)
        for src in (self, other):
            for k, n in src.applied.items():
                out.applied[k] += n
            for k, n in src.rejected.items():
                out.rejected[k] += n
        return out


def insert_for(conn: Connection, table: Any) -> Any:
    """The dialect's INSERT, which has ON CONFLICT on both SQLite and PostgreSQL."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


class BatchWriter:
    """Commits batches; caches school and device ids (safe: ids are never reused)."""

    def __init__(self, engine: Engine, policy: faults.FaultPolicy | None = None) -> None:
        self._engine = engine
        self._policy = policy or faults.FaultPolicy()
        self._schools: set[str] = set()
        self._devices: dict[tuple[str, str], int] = {}
        self._with_state: set[int] = set()  # devices known to have a device_state row

    def write(self, accepted: list[Accepted], rejected: list[Rejected]) -> BatchOutcome:
        """Apply the batch in one transaction; raises (and writes nothing) on a database error."""
        try:
            return self._write_once(accepted, rejected)
        except IntegrityError:
            # A device or school deleted since we cached it: forget the caches and try once more.
            self._schools.clear()
            self._devices.clear()
            self._with_state.clear()
            return self._write_once(accepted, rejected)

    def _write_once(self, accepted: list[Accepted], rejected: list[Rejected]) -> BatchOutcome:
        outcome = BatchOutcome()
        dead = list(rejected)
        with self._engine.begin() as conn:
            known = self._known_schools(conn, {a.message.school for a in accepted})
            keep: list[Accepted] = []
            for item in accepted:
                msg = item.message
                if msg.school in known:
                    keep.append(item)
                else:
                    dead.append(Rejected(item.topic, "unknown_school", f"school {msg.school!r} is not registered",
                                         item.raw or msg.payload.to_json(), item.received_at))
            ids = self._device_ids(conn, keep, outcome)
            new_keys = self._insert_history(conn, keep, ids)
            fresh: list[Accepted] = []
            for item in keep:
                key = _key(item, ids)
                if key is None:
                    fresh.append(item)
                elif key in new_keys:
                    new_keys.discard(key)  # the first copy in the batch is the new one; later copies are not
                    fresh.append(item)
                else:
                    outcome.duplicates += 1
            self._apply_effects(conn, fresh, ids)
            self._merge_states(conn, keep, ids)
            if dead:
                conn.execute(insert_for(conn, DeadLetter), [_dead_row(r) for r in dead])
        for item in keep:
            outcome.applied[item.message.kind.value] += 1
        for r in dead:
            outcome.rejected[r.reason] += 1
        return outcome

    def _known_schools(self, conn: Connection, wanted: set[str]) -> set[str]:
        if wanted - self._schools:
            self._schools = set(conn.scalars(select(School.id)))
        return self._schools

    def _device_ids(self, conn: Connection, items: list[Accepted], outcome: BatchOutcome) -> dict[tuple[str, str], int]:
        wanted: dict[tuple[str, str], str] = {}
        for item in items:
            key = (item.message.school, item.message.device)
            if key in self._devices:
                continue
            payload = item.message.payload
            kind = PROFILE_TO_KIND.get(getattr(payload, "profile", None) or "", "other")
            if wanted.get(key, "other") == "other":
                wanted[key] = kind
        if wanted:
            self._load_devices(conn, list(wanted))
            missing = [k for k in wanted if k not in self._devices]
            if missing:
                # Unknown device of a known school: register it, unassigned (no room).
                conn.execute(
                    insert_for(conn, Device).on_conflict_do_nothing(index_elements=["school_id", "uid"]),
                    [{"school_id": s, "uid": d, "kind": wanted[(s, d)], "watched_by": "mqtt",
                      "lifecycle": "active", "is_school_uplink": False, "created_at": dt.datetime.now(dt.UTC)}
                     for s, d in missing],
                )
                self._load_devices(conn, missing)
                outcome.registered = len(missing)
                log.info("registered %d new unassigned device(s)", len(missing))
        ids = {k: self._devices[k] for k in {(i.message.school, i.message.device) for i in items}}
        without_state = [i for i in ids.values() if i not in self._with_state]
        if without_state:  # make sure a state row exists, so the merge can lock and update it
            conn.execute(
                insert_for(conn, DeviceState).on_conflict_do_nothing(index_elements=["device_id"]),
                [{"device_id": i, **_STATE_DEFAULTS} for i in without_state],
            )
            self._with_state.update(without_state)
        return ids

    def _load_devices(self, conn: Connection, keys: list[tuple[str, str]]) -> None:
        for chunk in _chunks(keys, 400):
            rows = conn.execute(
                select(Device.school_id, Device.uid, Device.id).where(tuple_(Device.school_id, Device.uid).in_(chunk))
            )
            for school, uid, pk in rows:
                self._devices[(school, uid)] = pk

    def _insert_history(
        self, conn: Connection, items: list[Accepted], ids: dict[tuple[str, str], int]
    ) -> set[tuple[int, int, int]]:
        rows = []
        for item in items:
            key = _key(item, ids)
            if key is None:
                continue
            payload = item.message.payload
            rows.append((*key, item.message.kind.value, dt.datetime.fromtimestamp(payload.ts, dt.UTC),  # type: ignore[union-attr]
                         item.received_at, bool(getattr(payload, "replayed", False)), _history_json(item)))
        return fastio.insert_history(conn, rows)

    def _apply_effects(self, conn: Connection, fresh: list[Accepted], ids: dict[tuple[str, str], int]) -> None:
        events = [(ids[(a.message.school, a.message.device)], a.message.school, a.message.payload, a.received_at)
                  for a in fresh if isinstance(a.message.payload, Event)]
        if events:
            faults.apply_events(conn, events, self._policy)  # type: ignore[arg-type]
        for a in fresh:
            payload = a.message.payload
            device_id = ids[(a.message.school, a.message.device)]
            if isinstance(payload, Inventory):
                _apply_inventory(conn, device_id, payload, a.received_at)
            elif isinstance(payload, CommandAck):
                _apply_ack(conn, device_id, payload, a.received_at)

    def _merge_states(self, conn: Connection, items: list[Accepted], ids: dict[tuple[str, str], int]) -> None:
        by_device: dict[int, list[tuple[Message, dt.datetime]]] = defaultdict(list)
        for item in items:
            by_device[ids[(item.message.school, item.message.device)]].append((item.message, item.received_at))
        changed = []
        for current in fastio.read_states(conn, list(by_device)):
            merged = merge(current, by_device[current.device_id])
            if merged != current:
                changed.append(merged)
        fastio.write_states(conn, changed)


_STATE_DEFAULTS = {c: v for c, v in StateRow(device_id=0).as_dict().items() if c != "device_id"}


def _key(item: Accepted, ids: dict[tuple[str, str], int]) -> tuple[int, int, int] | None:
    payload = item.message.payload
    session, seq = getattr(payload, "session", None), getattr(payload, "seq", None)
    if session is None or seq is None or isinstance(payload, Status):
        return None
    return (ids[(item.message.school, item.message.device)], session, seq)


HISTORY_SKIP = frozenset({"v", "session", "seq", "ts", "replayed", "school", "device"})


def _history_json(item: Accepted) -> str:
    """What history keeps of a message: its fields minus the key, as JSON (from the raw bytes: fast)."""
    payload = item.message.payload
    fields = type(payload).model_fields
    if item.raw:
        data = {k: v for k, v in orjson.loads(item.raw).items() if k in fields and k not in HISTORY_SKIP
                and v is not None}
    else:
        data = payload.model_dump(mode="json", exclude=set(HISTORY_SKIP), exclude_none=True)
    if isinstance(payload, Inventory):
        data.pop("software", None)  # kept in full only as the latest inventory, not per observation
        data["software_count"] = len(payload.software)
    return orjson.dumps(data).decode()


def _apply_inventory(conn: Connection, device_id: int, inv: Inventory, received_at: dt.datetime) -> None:
    hw = inv.hardware
    facts = {k: str(hw[k])[:120] for k in ("vendor", "model", "serial") if hw.get(k)}
    if facts:
        conn.execute(update(Device).where(Device.id == device_id).values(**facts))
    stmt = insert_for(conn, DeviceInventory).values(
        device_id=device_id, hash=inv.hash, hardware=inv.hardware, software=inv.software, session=inv.session,
        seq=inv.seq, updated_at=received_at)
    newer = tuple_(DeviceInventory.session, DeviceInventory.seq) < tuple_(stmt.excluded.session, stmt.excluded.seq)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["device_id"], where=newer,
        set_={c: getattr(stmt.excluded, c) for c in ("hash", "hardware", "software", "session", "seq", "updated_at")},
    ))
    conn.execute(update(DeviceState).where(DeviceState.device_id == device_id).values(inventory_hash=inv.hash))


def _apply_ack(conn: Connection, device_id: int, ack: CommandAck, received_at: dt.datetime) -> None:
    current = conn.scalar(select(Command.state).where(Command.id == ack.id, Command.device_id == device_id))
    if current is None:
        log.info("ack for unknown command %s from device %d", ack.id, device_id)
        return
    if ACK_ORDER[ack.state] > ACK_ORDER.get(current, 0):
        detail = ack.detail if isinstance(ack.detail, str) or ack.detail is None else str(ack.detail)
        conn.execute(update(Command).where(Command.id == ack.id)
                     .values(state=ack.state, updated_at=received_at, detail=detail))


def _dead_row(r: Rejected) -> dict[str, Any]:
    return {"received_at": r.received_at, "topic": r.topic[:1024], "reason": r.reason, "detail": r.detail[:2000],
            "payload": r.payload[:DEAD_LETTER_PREVIEW_BYTES], "payload_size": len(r.payload)}


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]

