"""Turns fault observations into incidents: one open incident per (device, code) (DESIGN §5).

v1 rules: a ``raised`` event opens an incident or bumps the open one's count and ``last_seen``;
a ``cleared`` event resolves it. Flapping suppression, grace periods and root-cause suppression
build on this (see the incidents issue).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select, update

from classfleet_wire import Event, lookup

from .store.models import Incident

if TYPE_CHECKING:
    from .store.polls import FaultCheck


def apply_events(conn: Connection, events: list[tuple[int, str, Event, dt.datetime]]) -> None:
    """Apply new (never seen before) events in arrival order: (device id, school id, event, received_at)."""
    for device_id, school_id, event, received_at in events:
        open_incident = (Incident.device_id == device_id) & (Incident.code == event.code) & (
            Incident.state != "resolved"
        )
        if event.state == "cleared":
            conn.execute(update(Incident).where(open_incident).values(state="resolved", resolved_at=received_at))
            continue
        severity = event.severity or lookup(event.code).severity
        bumped = conn.execute(
            update(Incident).where(open_incident)
            .values(count=Incident.count + 1, last_seen=received_at, severity=severity, detail=event.detail)
        )
        if bumped.rowcount == 0:
            conn.execute(Incident.__table__.insert().values(
                device_id=device_id, school_id=school_id, code=event.code, severity=severity, state="open",
                count=1, opened_at=received_at, last_seen=received_at, flapping=False, detail=event.detail,
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
            conn.execute(update(Incident).where(where).values(last_seen=at, detail=check.detail))
        elif is_open:
            conn.execute(update(Incident).where(where).values(state="resolved", resolved_at=at))
