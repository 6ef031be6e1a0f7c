"""Remote commands from the controller (DESIGN §6): create, dispatch when due, expire.

Lifecycle ``pending → sent → accepted → done | failed | rejected | expired``. A command waits
in ``pending`` until its ``not_before`` has passed and its device is online (a command to an
offline device goes out when the device returns), and expires at ``expires`` whatever its state
short of an answer. The agent's acknowledgements move it on (``store.writer`` applies them).

Smart plugs (``watched_by`` a plug dialect, see ``controller.adapters``) take ``power_off`` and
``power_on`` instead of the agents' actions. A plug cannot acknowledge: once sent, its command is
``done`` when the plug reports the requested relay state (a poll row stored after it was sent),
``failed`` if it has not within ``plug_timeout_s``.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session

from classfleet_wire import Command as WireCommand
from classfleet_wire import MessageKind, build_topic
from classfleet_wire.models import CommandAction

from .adapters.registry import PLUG_WATCHERS, switch_messages
from .periodic import PeriodicTask
from .store.models import AuditLog, Command, Device, DeviceState, Observation, Room

log = logging.getLogger(__name__)

AGENT_ACTIONS: tuple[str, ...] = get_args(CommandAction)
PLUG_ACTIONS: dict[str, bool] = {"power_off": False, "power_on": True}  # action → the relay state it asks for
ACTIONS: tuple[str, ...] = AGENT_ACTIONS + tuple(PLUG_ACTIONS)
AGENT_KINDS = ("pc", "laptop", "smart_board", "other")  # what an agent's profile makes a device
PLUG_KINDS = ("air_conditioner",)  # what the smart plugs power


def actions_for_kind(kind: str | None) -> tuple[str, ...]:
    """The actions devices of ``kind`` can carry out; None (any kind): every action, matched per device."""
    if kind is None:
        return ACTIONS
    return (AGENT_ACTIONS if kind in AGENT_KINDS else ()) + (tuple(PLUG_ACTIONS) if kind in PLUG_KINDS else ())
MAX_TARGETS = 5000
PLUG_TIMEOUT_S = 60.0


class CommandError(ValueError):
    """A command request that cannot be accepted, with the reason."""


@dataclass(frozen=True, slots=True)
class Target:
    """Who a command is for: one device, every device of a room, or of a school (optionally one kind)."""

    device_id: int | None = None
    room_id: int | None = None
    school_id: str | None = None
    kind: str | None = None


def create_commands(session: Session, target: Target, action: str, args: dict[str, Any], *,
                    expires_in: dt.timedelta, not_before: dt.datetime | None = None, actor: str = "api",
                    now: dt.datetime | None = None) -> list[Command]:
    """One pending command per device of the target that can run it: agent actions go to agent-managed
    devices (validated against the wire contract), plug actions to smart plugs."""
    now = now or dt.datetime.now(dt.UTC)
    not_before = not_before.astimezone(dt.UTC) if not_before is not None else None
    if action not in ACTIONS:
        raise CommandError(f"action must be one of: {', '.join(ACTIONS)}")
    if not dt.timedelta(seconds=10) <= expires_in <= dt.timedelta(days=30):
        raise CommandError("expires_in must be between 10 seconds and 30 days")
    expires = (not_before or now) + expires_in
    plug = action in PLUG_ACTIONS
    if plug and args:
        raise CommandError(f"{action} takes no arguments")
    if not plug:  # validate the payload the agent will get, before anything is stored
        WireCommand(id=str(uuid.uuid4()), action=action, args=args,  # type: ignore[arg-type]
                    not_before=not_before.timestamp() if not_before else None, expires=expires.timestamp())
    watched = Device.watched_by.in_(PLUG_WATCHERS) if plug else Device.watched_by == "mqtt"
    query = select(Device.id, Device.school_id, Device.uid).where(watched, Device.lifecycle == "active")
    if target.device_id is not None:
        query = query.where(Device.id == target.device_id)
    elif target.room_id is not None:
        query = query.where(Device.room_id == target.room_id)
    elif target.school_id is not None:
        query = query.where(Device.school_id == target.school_id)
    else:
        raise CommandError("name a device, a room or a school")
    if target.kind:
        query = query.where(Device.kind == target.kind)
    devices = session.execute(query.limit(MAX_TARGETS + 1)).all()
    if not devices:
        if plug:
            raise CommandError(f"no smart-plug device (watched by {' or '.join(PLUG_WATCHERS)}) matches the target; "
                               f"{action} is for plugs only")
        if target.device_id is not None and session.scalar(select(Device.watched_by).where(
                Device.id == target.device_id)) in PLUG_WATCHERS:
            raise CommandError(f"device {target.device_id} is a smart plug: use {' or '.join(PLUG_ACTIONS)}")
        raise CommandError("no agent-managed device matches the target")
    if len(devices) > MAX_TARGETS:
        raise CommandError(f"more than {MAX_TARGETS} devices: narrow the target")
    commands = [Command(id=str(uuid.uuid4()), device_id=d.id, action=action, args=args, state="pending",
                        not_before=not_before, expires=expires, created_at=now, created_by=actor, updated_at=now)
                for d in devices]
    session.add_all(commands)
    session.add(AuditLog(at=now, actor=actor, action=f"command.{action}", target=_describe(target, session),
                         detail={"count": len(commands), "args": args,
                                 "not_before": not_before.isoformat() if not_before else None}))
    return commands


def _describe(target: Target, session: Session) -> str:
    if target.device_id is not None:
        return f"device:{target.device_id}"
    if target.room_id is not None:
        room = session.get(Room, target.room_id)
        return f"room:{room.school_id}/{room.code}" if room else f"room:{target.room_id}"
    return f"school:{target.school_id}" + (f"/{target.kind}" if target.kind else "")


class CommandDispatcher(PeriodicTask):
    """Every second: expire what is overdue, send what is due to devices that are online, settle plug commands."""

    name = "command dispatcher"

    def __init__(self, engine: Engine, publish: Callable[[str, bytes], bool], *, interval_s: float = 1.0,
                 clock: Callable[[], dt.datetime] | None = None, plug_timeout_s: float = PLUG_TIMEOUT_S) -> None:
        super().__init__(interval_s)
        self._engine = engine
        self._publish = publish
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._plug_timeout = dt.timedelta(seconds=plug_timeout_s)

    def run_once(self) -> int:
        """One round (see ``dispatch_once``)."""
        return self.dispatch_once()

    def dispatch_once(self) -> int:
        """One round; returns how many commands were sent."""
        now = self._clock()
        with self._engine.begin() as conn:
            conn.execute(update(Command).where(Command.state.in_(("pending", "sent", "accepted")),
                                               Command.expires <= now).values(state="expired", updated_at=now))
            due = conn.execute(
                select(Command.id, Command.action, Command.args, Command.not_before, Command.expires,
                       Device.school_id, Device.uid, Device.watched_by, Device.mgmt_address)
                .join(Device, Device.id == Command.device_id)
                .join(DeviceState, DeviceState.device_id == Device.id)
                .where(Command.state == "pending", DeviceState.online.is_(True),
                       or_(Command.not_before.is_(None), Command.not_before <= now))
                .order_by(Command.created_at).limit(1000)
            ).all()
        refused = {row.id for row in due if row.action in PLUG_ACTIONS
                   and (row.watched_by not in PLUG_WATCHERS or not row.mgmt_address)}  # re-registered since
        with self._engine.begin() as conn:
            if refused:
                conn.execute(update(Command).where(Command.id.in_(sorted(refused)), Command.state == "pending")
                             .values(state="rejected", updated_at=now, detail="the device is no longer a smart plug"))
            # Claim before publishing: only the rows this round moved pending → sent are ours to send, so two
            # replicas overlapping at a lease handover never send a command twice.
            wanted = [row.id for row in due if row.id not in refused]
            claimed: set[str] = set()
            for start in range(0, len(wanted), 500):
                claimed.update(conn.scalars(
                    update(Command).where(Command.id.in_(wanted[start:start + 500]), Command.state == "pending")
                    .values(state="sent", updated_at=now).returning(Command.id)))
        sent, unsent = [], []
        for row in due:
            if row.id not in claimed:
                continue
            if row.action in PLUG_ACTIONS:
                messages = switch_messages(row.watched_by, row.mgmt_address, PLUG_ACTIONS[row.action], row.id)
            else:
                payload = WireCommand(id=row.id, action=row.action, args=row.args or {},
                                      not_before=row.not_before.timestamp() if row.not_before else None,
                                      expires=row.expires.timestamp()).to_json()
                messages = [(build_topic(row.school_id, row.uid, MessageKind.CMD), payload)]
            (sent if all([self._publish(topic, payload) for topic, payload in messages]) else unsent).append(row.id)
        with self._engine.begin() as conn:
            if unsent:  # not handed to the broker: back to pending for the next round (no agent can have it)
                conn.execute(update(Command).where(Command.id.in_(unsent), Command.state == "sent")
                             .values(state="pending", updated_at=now))
            self._settle_plugs(conn, now)
        return len(sent)

    def _settle_plugs(self, conn: Any, now: dt.datetime) -> None:
        """Sent plug commands: ``done`` once the plug reported the requested state after it was sent,
        ``failed`` past the timeout (a plug cannot acknowledge; its report is the answer)."""
        waiting = conn.execute(select(Command.id, Command.device_id, Command.action, Command.updated_at)
                               .where(Command.state == "sent", Command.action.in_(tuple(PLUG_ACTIONS)))).all()
        if not waiting:
            return
        since = min(w.updated_at for w in waiting)
        reports: dict[int, list[tuple[dt.datetime, Any]]] = {}
        for device_id, ts, data in conn.execute(
                select(Observation.device_id, Observation.ts, Observation.data)
                .where(Observation.device_id.in_({w.device_id for w in waiting}), Observation.kind == "poll",
                       Observation.ts >= since)):
            reports.setdefault(device_id, []).append((ts, (data or {}).get("power_on")))
        for w in waiting:
            wanted = PLUG_ACTIONS[w.action]
            word = "on" if wanted else "off"
            if any(ts >= w.updated_at and state is wanted for ts, state in reports.get(w.device_id, ())):
                conn.execute(update(Command).where(Command.id == w.id, Command.state == "sent")
                             .values(state="done", updated_at=now, detail=f"the plug reported {word}"))
            elif now - w.updated_at >= self._plug_timeout:
                conn.execute(update(Command).where(Command.id == w.id, Command.state == "sent").values(
                    state="failed", updated_at=now,
                    detail=f"the plug did not report {word} within {self._plug_timeout.total_seconds():g} s"))
