"""Turns fault observations into incidents: one open incident per (device, code) (DESIGN §5).

v1 rules: a ``raised`` event opens an incident or bumps the open one's count and ``last_seen``;
a ``cleared`` event resolves it. Flapping suppression, grace periods and root-cause suppression
build on this (see the incidents issue).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, update

from classfleet_wire import Event, lookup

from .store.models import Incident


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
