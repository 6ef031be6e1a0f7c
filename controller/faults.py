"""Turns fault observations into incidents: one open incident per (device, code) (DESIGN §5).

- A ``raised`` event opens an incident or bumps the open one's count and ``last_seen``; a
  ``cleared`` event resolves it.
- Flapping: a fault raised again within ``flap_window`` of being cleared reopens the same
  incident; past ``flap_threshold`` raises in that window it is marked flapping and held open
  until it has stayed clear for a whole window (the sweeper resolves it then).
- The sweeper raises what no message says: ``agent.offline`` once a device has been silent past a
  grace period (a reboot is not an incident), ``time.skew`` from heartbeat timestamps; and it
  suppresses ``agent.offline`` in a school whose uplink switch is down (one school incident).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, and_, func, or_, select, update

from classfleet_wire import Event, lookup

from .periodic import PeriodicTask
from .store.health import UPSTREAM_CODES
from .store.models import Device, DeviceState, Incident

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .store.polls import FaultCheck


@dataclass(frozen=True, slots=True)
class FaultPolicy:
    """Tunables of the faults engine (from settings)."""

    flap_window: dt.timedelta = dt.timedelta(minutes=10)
    flap_threshold: int = 3
    offline_after: dt.timedelta = dt.timedelta(minutes=3)
    offline_grace: dt.timedelta = dt.timedelta(minutes=5)
    clock_skew_max_s: float = 120.0


PENDING_CLEAR = "clear_pending_since"


def apply_events(conn: Connection, events: list[tuple[int, str, Event, dt.datetime]],
                 policy: FaultPolicy | None = None) -> None:
    """Apply new (never seen before) events in arrival order: (device id, school id, event, received_at)."""
    policy = policy or FaultPolicy()
    for device_id, school_id, event, at in events:
        current = conn.execute(
            select(Incident.id, Incident.state, Incident.count, Incident.opened_at, Incident.resolved_at,
                   Incident.flapping, Incident.detail)
            .where(Incident.device_id == device_id, Incident.code == event.code)
            .order_by(Incident.id.desc()).limit(1)
        ).first()
        if event.state == "cleared":
            if current is None or current.state == "resolved":
                continue
            if current.flapping:  # held open until it has stayed clear for a whole window
                conn.execute(update(Incident).where(Incident.id == current.id)
                             .values(detail={**(current.detail or {}), PENDING_CLEAR: at.isoformat()}))
            else:
                conn.execute(update(Incident).where(Incident.id == current.id)
                             .values(state="resolved", resolved_at=at))
            continue
        severity = event.severity or lookup(event.code).severity
        detail = {k: v for k, v in event.detail.items() if k != PENDING_CLEAR}
        recent = current is not None and current.state == "resolved" and current.resolved_at is not None \
            and at - current.resolved_at <= policy.flap_window
        if current is not None and (current.state != "resolved" or recent):
            count = current.count + 1
            flapping = current.flapping or (recent or current.state != "resolved") and \
                count > policy.flap_threshold and at - current.opened_at <= policy.flap_window
            conn.execute(update(Incident).where(Incident.id == current.id).values(
                state="open" if current.state == "resolved" else current.state, resolved_at=None, count=count,
                last_seen=at, severity=severity, detail=detail, flapping=flapping))
        else:
            conn.execute(Incident.__table__.insert().values(
                device_id=device_id, school_id=school_id, code=event.code, severity=severity, state="open",
                count=1, opened_at=at, last_seen=at, flapping=False, detail=detail,
            ))


def apply_checks(conn: Connection, device_id: int, school_id: str, checks: tuple[FaultCheck, ...],
                 at: dt.datetime) -> None:
    """Apply a poller's view of fault conditions: open on the first active round, keep ``last_seen``
    fresh while it stays active (a poll repeating a fault is not a new occurrence), resolve when clear."""
    if not checks:
        return
    open_codes = set(conn.scalars(select(Incident.code).where(
        Incident.device_id == device_id, Incident.state != "resolved",
        Incident.code.in_([c.code for c in checks]))))
    for check in checks:
        is_open = check.code in open_codes
        where = (Incident.device_id == device_id) & (Incident.code == check.code) & (Incident.state != "resolved")
        if check.active and not is_open:
            conn.execute(Incident.__table__.insert().values(
                device_id=device_id, school_id=school_id, code=check.code,
                severity=check.severity or lookup(check.code).severity, state="open", count=1, opened_at=at,
                last_seen=at, flapping=False, detail=check.detail))
        elif check.active:
            values: dict[str, object] = {"last_seen": at, "detail": check.detail}
            if check.severity:  # a warning that became an error says so
                values["severity"] = check.severity
            conn.execute(update(Incident).where(where).values(**values))
        elif is_open:
            conn.execute(update(Incident).where(where).values(state="resolved", resolved_at=at))


def schools_with_uplink_down(conn: Connection) -> set[str]:
    """Schools whose flagged uplink switch has an open unreachable/upstream incident."""
    return set(conn.scalars(
        select(Device.school_id).join(Incident, Incident.device_id == Device.id)
        .where(Device.is_school_uplink.is_(True), Incident.state != "resolved", Incident.code.in_(UPSTREAM_CODES))
    ))


class FaultSweeper(PeriodicTask):
    """Periodically raises and resolves the incidents no message announces (offline, clock skew)."""

    name = "fault sweeper"

    def __init__(self, engine: Engine, policy: FaultPolicy, interval_s: float = 15.0) -> None:
        super().__init__(interval_s)
        self._engine = engine
        self.policy = policy

    def run_once(self) -> None:
        """One pass at the current time."""
        self.sweep_once(dt.datetime.now(dt.UTC))

    def sweep_once(self, now: dt.datetime) -> None:
        """One pass: agent.offline after the grace period, time.skew, and settled flapping clears."""
        p = self.policy
        with self._engine.begin() as conn:
            suppressed = schools_with_uplink_down(conn)
            silent_before = now - p.offline_after
            offline = or_(DeviceState.online.is_(False), DeviceState.last_seen < silent_before)
            # When it went quiet: the Will's time, or its last message plus the silence allowance.
            since = func.coalesce(DeviceState.status_changed_at, DeviceState.last_seen)
            gone = and_(DeviceState.last_seen.is_not(None), offline,
                        or_(and_(DeviceState.online.is_(False), since <= now - p.offline_grace),
                            DeviceState.last_seen <= silent_before - p.offline_grace))
            base = (select(Device.id, Device.school_id).join(DeviceState, DeviceState.device_id == Device.id)
                    .where(Device.watched_by == "mqtt", Device.lifecycle == "active"))
            down = {(i, s) for i, s in conn.execute(base.where(gone)) if s not in suppressed}
            self._reconcile(conn, "agent.offline", down, now)
            skewed = base.where(DeviceState.online.is_(True), DeviceState.last_seen >= silent_before,
                                func.abs(DeviceState.clock_skew_s) > p.clock_skew_max_s)
            self._reconcile(conn, "time.skew", set(conn.execute(skewed).tuples()), now, only_online=True)
            self._settle_flapping(conn, now)

    def _reconcile(self, conn: Connection, code: str, active: set[tuple[int, str]], now: dt.datetime,
                   only_online: bool = False) -> None:
        """Open ``code`` where active and not open; resolve it where open and no longer active."""
        open_ids = set(conn.scalars(select(Incident.device_id).where(Incident.code == code,
                                                                     Incident.state != "resolved")))
        for device_id, school_id in active:
            if device_id not in open_ids:
                conn.execute(Incident.__table__.insert().values(
                    device_id=device_id, school_id=school_id, code=code, severity=lookup(code).severity,
                    state="open", count=1, opened_at=now, last_seen=now, flapping=False, detail={}))
        still = {d for d, _ in active}
        if only_online:
            # time.skew is judged only on live devices: an offline one keeps its state until it is back.
            live = set(conn.scalars(select(DeviceState.device_id).where(DeviceState.online.is_(True))))
            gone_ids = [d for d in open_ids if d not in still and d in live]
        else:
            gone_ids = [d for d in open_ids if d not in still]
        if gone_ids:
            conn.execute(update(Incident).where(Incident.code == code, Incident.state != "resolved",
                                                Incident.device_id.in_(gone_ids))
                         .values(state="resolved", resolved_at=now))

    def _settle_flapping(self, conn: Connection, now: dt.datetime) -> None:
        rows = conn.execute(select(Incident.id, Incident.detail).where(Incident.flapping.is_(True),
                                                                       Incident.state != "resolved")).all()
        for incident_id, detail in rows:
            pending = (detail or {}).get(PENDING_CLEAR)
            if pending and now - dt.datetime.fromisoformat(pending) >= self.policy.flap_window:
                conn.execute(update(Incident).where(Incident.id == incident_id)
                             .values(state="resolved", resolved_at=now))
