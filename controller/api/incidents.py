"""Incidents API: list and read, acknowledge, assign, comment, resolve; maintenance windows and
notification routes. Each caller sees and changes only their schools' (auditors only read)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from classfleet_wire import lookup

from .. import incidents as workflow
from ..store.models import INCIDENT_STATES, Incident, IncidentComment, MaintenanceWindow, NotificationRoute, School
from .deps import IdPath, IdQuery, NowDep, Offset, PrincipalDep, SessionDep, check_read, check_write
from .schemas import ListPublic

router = APIRouter(prefix="/api/v1", tags=["incidents"])


class CommentPublic(BaseModel):
    """A note on an incident."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    at: dt.datetime
    author: str
    text: str


class IncidentFull(BaseModel):
    """An incident with its workflow fields and the fault's text."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    device_id: int
    school_id: str
    code: str
    severity: str
    state: str
    count: int
    flapping: bool
    opened_at: dt.datetime
    last_seen: dt.datetime
    resolved_at: dt.datetime | None
    assignee: str | None
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    resolved_by: str | None
    notified_at: dt.datetime | None
    detail: dict[str, Any]
    text: str = ""
    comments: list[CommentPublic] = []


class AcknowledgeBody(BaseModel):
    """Optionally take it at the same time."""

    assignee: str | None = Field(default=None, max_length=120)


class CommentBody(BaseModel):
    """The note."""

    text: str = Field(min_length=1, max_length=4000)


class WindowBody(BaseModel):
    """A maintenance window (times with a zone)."""

    school: str = Field(pattern=r"^[a-z0-9_-]{1,64}$")
    starts_at: dt.datetime
    ends_at: dt.datetime
    reason: str | None = Field(default=None, max_length=200)


class WindowPublic(BaseModel):
    """A school's maintenance window."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    school: str = Field(validation_alias="school_id")
    starts_at: dt.datetime
    ends_at: dt.datetime
    reason: str | None


class RouteBody(BaseModel):
    """Where to send a school's new incidents (no school: every school)."""

    school: str | None = Field(default=None, pattern=r"^[a-z0-9_-]{1,64}$")
    channel: str = Field(pattern="^(email|webhook)$")
    target: str = Field(min_length=3, max_length=500)
    min_severity: str = Field(default="warning", pattern="^(info|warning|critical)$")
    lang: str = Field(default="vi", pattern="^(vi|en)$")


def _full(incident: Incident, lang: str, comments: list[IncidentComment] | None = None) -> IncidentFull:
    out = IncidentFull.model_validate(incident)
    out.text = lookup(incident.code).text(lang)
    out.comments = [CommentPublic.model_validate(c) for c in comments or []]
    return out


@router.get("/incidents", response_model=ListPublic[IncidentFull])
def read_incidents(session: SessionDep, principal: PrincipalDep, school: str | None = None, state: str | None = None,
                   code: str | None = None, device_id: IdQuery = None,
                   lang: Annotated[str, Query(pattern="^(vi|en)$")] = "vi",
                   limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                   offset: Offset = 0) -> dict[str, Any]:
    """Incidents, newest first; ``state=active`` means open or acknowledged."""
    query = (select(Incident).where(principal.scope(Incident.school_id))
             .order_by(Incident.last_seen.desc(), Incident.id.desc()))
    if state == "active":
        query = query.where(Incident.state != "resolved")
    elif state is not None:
        if state not in INCIDENT_STATES:
            raise HTTPException(422, detail=f"state must be active or one of: {', '.join(INCIDENT_STATES)}")
        query = query.where(Incident.state == state)
    for column, value in ((Incident.school_id, school), (Incident.code, code), (Incident.device_id, device_id)):
        if value is not None:
            query = query.where(column == value)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    items = [_full(i, lang) for i in session.scalars(query.limit(limit).offset(offset))]
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/incidents/{incident_id}", response_model=IncidentFull, responses={404: {}})
def read_incident(incident_id: IdPath, session: SessionDep, principal: PrincipalDep,
                  lang: Annotated[str, Query(pattern="^(vi|en)$")] = "vi") -> IncidentFull:
    """One incident with its comments."""
    incident = session.get(Incident, incident_id)
    check_read(principal, incident.school_id if incident else None, f"incident {incident_id}")
    assert incident is not None
    comments = session.scalars(select(IncidentComment).where(IncidentComment.incident_id == incident_id)
                               .order_by(IncidentComment.at)).all()
    return _full(incident, lang, list(comments))


def _change(request: Request, principal: Any, incident_id: int | None, fn: Any, *args: Any) -> Any:
    with request.app.state.sessions.begin() as session:
        if incident_id is not None:
            incident = session.get(Incident, incident_id)
            check_write(principal, incident.school_id if incident else None, f"incident {incident_id}")
        try:
            result = fn(session, *args)
        except LookupError as exc:
            raise HTTPException(404, detail=str(exc)) from None
        except workflow.WorkflowError as exc:
            raise HTTPException(409, detail=str(exc)) from None
        session.flush()
        return result


@router.post("/incidents/{incident_id}/acknowledge", response_model=IncidentFull)
def acknowledge_incident(incident_id: IdPath, body: AcknowledgeBody, request: Request, principal: PrincipalDep) -> Any:
    """Seen (and maybe taken) by a technician."""
    return _full(_change(request, principal, incident_id, workflow.acknowledge, incident_id, principal.name,
                         body.assignee), "vi")


@router.post("/incidents/{incident_id}/resolve", response_model=IncidentFull)
def resolve_incident(incident_id: IdPath, request: Request, principal: PrincipalDep) -> Any:
    """Closed by hand."""
    return _full(_change(request, principal, incident_id, workflow.resolve, incident_id, principal.name), "vi")


@router.post("/incidents/{incident_id}/assign", response_model=IncidentFull)
def assign_incident(incident_id: IdPath, body: AcknowledgeBody, request: Request, principal: PrincipalDep) -> Any:
    """Give it to someone (or nobody)."""
    return _full(_change(request, principal, incident_id, workflow.assign, incident_id, principal.name,
                         body.assignee), "vi")


@router.post("/incidents/{incident_id}/comments", response_model=CommentPublic, status_code=201)
def comment_incident(incident_id: IdPath, body: CommentBody, request: Request, principal: PrincipalDep) -> Any:
    """Add a note."""
    return _change(request, principal, incident_id, workflow.comment, incident_id, principal.name, body.text)


@router.post("/maintenance-windows", status_code=201)
def create_window(body: WindowBody, request: Request, principal: PrincipalDep) -> dict[str, Any]:
    """Plan a quiet time for a school: incidents are recorded, not notified."""
    if body.starts_at.tzinfo is None or body.ends_at.tzinfo is None:
        raise HTTPException(422, detail="times need a zone, e.g. 2027-02-05T00:00:00+07:00")
    check_write(principal, body.school, f"school {body.school}")
    window = _change(request, principal, None, workflow.add_maintenance_window, body.school, body.starts_at,
                     body.ends_at, body.reason, principal.name)
    return {"id": window.id, "school": window.school_id, "starts_at": window.starts_at, "ends_at": window.ends_at}


@router.get("/maintenance-windows", response_model=ListPublic[WindowPublic])
def read_windows(session: SessionDep, principal: PrincipalDep, now: NowDep,
                 school: Annotated[str | None, Query(pattern=r"^[a-z0-9_-]{1,64}$")] = None,
                 upcoming: Annotated[bool, Query(description="only windows not over yet (current or planned)")] = False,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Offset = 0) -> dict[str, Any]:
    """The maintenance windows of the caller's schools, earliest first."""
    query = (select(MaintenanceWindow).where(principal.scope(MaintenanceWindow.school_id))
             .order_by(MaintenanceWindow.starts_at, MaintenanceWindow.id))
    if school is not None:
        query = query.where(MaintenanceWindow.school_id == school)
    if upcoming:
        query = query.where(MaintenanceWindow.ends_at > now)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    items = [WindowPublic.model_validate(w) for w in session.scalars(query.limit(limit).offset(offset))]
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.delete("/maintenance-windows/{window_id}", status_code=204, response_model=None,
               responses={404: {"description": "no such window in the caller's schools"}})
def delete_window(window_id: IdPath, request: Request, principal: PrincipalDep) -> None:
    """Cancel a planned quiet time, or end the current one (what it held back stays recorded); audit-logged."""
    with request.app.state.sessions.begin() as session:
        window = session.get(MaintenanceWindow, window_id)
        check_write(principal, window.school_id if window else None, f"maintenance window {window_id}")
        workflow.remove_maintenance_window(session, window_id, principal.name)


@router.post("/notification-routes", status_code=201)
def create_route(body: RouteBody, request: Request, principal: PrincipalDep) -> dict[str, Any]:
    """Add a notification route (admins; a route for every school needs a department-wide admin)."""
    if body.school is None and not principal.everywhere:
        raise HTTPException(403, detail="only a department-wide admin may route every school")
    if principal.role != "admin":
        raise HTTPException(403, detail="only admins manage notification routes")
    with request.app.state.sessions.begin() as session:
        if body.school is not None:
            known = session.get(School, body.school)
            check_write(principal, known.id if known else None, f"school {body.school}")
        route = NotificationRoute(school_id=body.school, channel=body.channel, target=body.target,
                                  min_severity=body.min_severity, lang=body.lang, enabled=True)
        session.add(route)
        session.flush()
        return {"id": route.id, "school": route.school_id, "channel": route.channel}
