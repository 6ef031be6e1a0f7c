"""The technician's incident workflow: ``open → acknowledged → resolved``, assignee and comments,
and maintenance windows. Every change is written to the audit log."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from .store.models import AuditLog, Incident, IncidentComment, MaintenanceWindow, School


class WorkflowError(ValueError):
    """A change the incident's state does not allow, with the reason."""


def _incident(session: Session, incident_id: int) -> Incident:
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise LookupError(f"incident {incident_id} not found")
    return incident


def _audit(session: Session, actor: str, action: str, incident: Incident, now: dt.datetime, **detail: object) -> None:
    session.add(AuditLog(at=now, actor=actor, action=action, target=f"incident:{incident.id}",
                         detail={"code": incident.code, "device_id": incident.device_id, **detail}))


def acknowledge(session: Session, incident_id: int, actor: str, assignee: str | None = None,
                now: dt.datetime | None = None) -> Incident:
    """A technician has seen it (and maybe takes it)."""
    now = now or dt.datetime.now(dt.UTC)
    incident = _incident(session, incident_id)
    if incident.state == "resolved":
        raise WorkflowError("a resolved incident cannot be acknowledged")
    incident.state, incident.acknowledged_at, incident.acknowledged_by = "acknowledged", now, actor
    if assignee is not None:
        incident.assignee = assignee
    _audit(session, actor, "incident.acknowledge", incident, now, assignee=assignee)
    return incident


def assign(session: Session, incident_id: int, actor: str, assignee: str | None,
           now: dt.datetime | None = None) -> Incident:
    """Give the incident to someone (None: nobody)."""
    now = now or dt.datetime.now(dt.UTC)
    incident = _incident(session, incident_id)
    incident.assignee = assignee
    _audit(session, actor, "incident.assign", incident, now, assignee=assignee)
    return incident


def resolve(session: Session, incident_id: int, actor: str, now: dt.datetime | None = None) -> Incident:
    """Close it by hand (a fixed cable that no poll will report, a replaced lamp)."""
    now = now or dt.datetime.now(dt.UTC)
    incident = _incident(session, incident_id)
    if incident.state == "resolved":
        raise WorkflowError("the incident is already resolved")
    incident.state, incident.resolved_at, incident.resolved_by = "resolved", now, actor
    _audit(session, actor, "incident.resolve", incident, now)
    return incident


def comment(session: Session, incident_id: int, actor: str, text: str,
            now: dt.datetime | None = None) -> IncidentComment:
    """Add a note."""
    now = now or dt.datetime.now(dt.UTC)
    incident = _incident(session, incident_id)
    text = text.strip()
    if not text:
        raise WorkflowError("a comment needs text")
    note = IncidentComment(incident_id=incident.id, at=now, author=actor, text=text[:4000])
    session.add(note)
    _audit(session, actor, "incident.comment", incident, now)
    return note


def add_maintenance_window(session: Session, school: str, starts_at: dt.datetime, ends_at: dt.datetime,
                           reason: str | None, actor: str) -> MaintenanceWindow:
    """Plan a quiet time for a school (incidents are still recorded, not notified)."""
    if session.get(School, school) is None:
        raise LookupError(f"school {school!r} not found")
    if ends_at <= starts_at:
        raise WorkflowError("a maintenance window must end after it starts")
    window = MaintenanceWindow(school_id=school, starts_at=starts_at, ends_at=ends_at, reason=reason)
    session.add(window)
    session.add(AuditLog(at=dt.datetime.now(dt.UTC), actor=actor, action="maintenance.add", target=f"school:{school}",
                         detail={"starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat(),
                                 "reason": reason}))
    return window


def remove_maintenance_window(session: Session, window_id: int, actor: str,
                              now: dt.datetime | None = None) -> MaintenanceWindow:
    """Cancel a planned (or end a current) quiet time; what it held back stays recorded as it was."""
    window = session.get(MaintenanceWindow, window_id)
    if window is None:
        raise LookupError(f"maintenance window {window_id} not found")
    session.delete(window)
    session.add(AuditLog(at=now or dt.datetime.now(dt.UTC), actor=actor, action="maintenance.remove",
                         target=f"school:{window.school_id}",
                         detail={"window_id": window.id, "starts_at": window.starts_at.isoformat(),
                                 "ends_at": window.ends_at.isoformat(), "reason": window.reason}))
    return window


def opened_in_maintenance(session: Session, incidents: Sequence[Incident]) -> set[int]:
    """The incidents opened inside a maintenance window of their school: recorded, never notified, and shown
    as such. Judged by when the incident opened, not when the notifier looks, so a burst just before a window
    is still sent and one at its very end is not."""
    if not incidents:
        return set()
    first, last = min(i.opened_at for i in incidents), max(i.opened_at for i in incidents)
    windows: dict[str, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for school_id, starts, ends in session.execute(
            select(MaintenanceWindow.school_id, MaintenanceWindow.starts_at, MaintenanceWindow.ends_at)
            .where(MaintenanceWindow.school_id.in_({i.school_id for i in incidents}),
                   MaintenanceWindow.starts_at <= last, MaintenanceWindow.ends_at > first)):
        windows[school_id].append((starts, ends))
    return {i.id for i in incidents if any(s <= i.opened_at < e for s, e in windows.get(i.school_id, ()))}
