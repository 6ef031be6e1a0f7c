"""Console drill-down pages: school → room → device, incidents, and the activity (audit) log.

Every query is limited to the principal's schools and every id is checked with ``check_read``,
so a user of school A gets a 404 for anything of school B, whatever id is in the URL.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from classfleet_wire import lookup

from ..api.deps import NowDep, SessionDep, SettingsDep, check_read
from ..commands import ACTIONS
from ..store import queries
from ..store.models import (
    HEALTH_STATES,
    INCIDENT_STATES,
    AuditLog,
    Command,
    Device,
    DeviceInventory,
    Incident,
    IncidentComment,
    Observation,
    Room,
    School,
)
from .common import LangDep, render
from .login import ConsolePrincipal

router = APIRouter(include_in_schema=False)
SPARK_POINTS = 60
SPARK_W, SPARK_H = 300, 48
MAX_ROWS = 200
LOG_SCAN = 5000  # audit rows examined for a school-scoped reader before giving up


def sparkline(values: list[float]) -> str:
    """SVG polyline points for percentages (oldest first): a tiny chart that needs no script or library."""
    if not values:
        return ""
    step = SPARK_W / max(len(values) - 1, 1)
    return " ".join(f"{i * step:.1f},{SPARK_H - min(max(v, 0.0), 100.0) / 100 * (SPARK_H - 2) - 1:.1f}"
                    for i, v in enumerate(values))


def _fault_rows(incidents: list[Incident], lang: str) -> list[dict[str, Any]]:
    return [{"i": i, "text": lookup(i.code).text(lang)} for i in incidents]


@router.get("/console/schools/{school_id}", response_class=HTMLResponse)
def school_page(school_id: str, request: Request, session: SessionDep, settings: SettingsDep, now: NowDep,
                principal: ConsolePrincipal, lang: LangDep) -> Any:
    """A school's rooms with their devices counted by health, and its unassigned devices."""
    school = session.get(School, school_id)
    check_read(principal, school.id if school else None, f"school {school_id}")
    assert school is not None
    rows = queries.list_devices(session, now, settings.offline_after_s,
                                queries.DeviceFilter(school=school.id, scope=principal.schools), 100_000, 0).items
    counts: dict[int | None, dict[str, int]] = defaultdict(dict)
    unassigned = []
    for device, state, health in rows:
        counts[device.room_id][health] = counts[device.room_id].get(health, 0) + 1
        if device.room_id is None:
            unassigned.append((device, state, health))
    rooms = session.scalars(select(Room).where(Room.school_id == school.id).order_by(Room.code)).all()
    open_count = session.scalar(select(func.count()).select_from(Incident).where(
        Incident.school_id == school.id, Incident.state != "resolved")) or 0
    return render(request, "school.html", lang, principal, school=school, healths=HEALTH_STATES,
                  rooms=[(r, counts.get(r.id, {})) for r in rooms], unassigned=unassigned[:MAX_ROWS],
                  open_count=open_count)


@router.get("/console/rooms/{room_id}", response_class=HTMLResponse)
def room_page(room_id: int, request: Request, session: SessionDep, settings: SettingsDep, now: NowDep,
              principal: ConsolePrincipal, lang: LangDep) -> Any:
    """A room's devices with their health and open faults, and the form to send them a command."""
    room = session.get(Room, room_id)
    check_read(principal, room.school_id if room else None, f"room {room_id}")
    assert room is not None
    rows = queries.list_devices(session, now, settings.offline_after_s,
                                queries.DeviceFilter(room=room.id, scope=principal.schools), MAX_ROWS, 0).items
    ids = [d.id for d, _, _ in rows]
    faults: dict[int, list[str]] = defaultdict(list)
    if ids:
        for device_id, code in session.execute(select(Incident.device_id, Incident.code).where(
                Incident.device_id.in_(ids), Incident.state != "resolved")):
            faults[device_id].append(lookup(code).text(lang))
    return render(request, "room.html", lang, principal, room=room, school=session.get(School, room.school_id),
                  devices=[{"d": d, "state": st, "health": h, "faults": faults.get(d.id, [])} for d, st, h in rows],
                  can_send=principal.can_write(room.school_id), actions=ACTIONS, target_type="room",
                  target_id=room.id)


@router.get("/console/devices/{device_id}", response_class=HTMLResponse)
def device_page(device_id: int, request: Request, session: SessionDep, settings: SettingsDep, now: NowDep,
                principal: ConsolePrincipal, lang: LangDep) -> Any:
    """Everything about one device: facts, latest state, CPU sparkline, inventory, incidents, commands."""
    row = queries.get_device(session, now, settings.offline_after_s, device_id)
    check_read(principal, row[0].school_id if row else None, f"device {device_id}")
    assert row is not None
    device, state, health = row
    beats = session.execute(
        select(Observation.data).where(Observation.device_id == device.id, Observation.kind == "heartbeat")
        .order_by(Observation.ts.desc()).limit(SPARK_POINTS)).scalars().all()
    cpu = [float(d["cpu_pct"]) for d in reversed(beats) if isinstance(d, dict) and d.get("cpu_pct") is not None]
    inventory = session.get(DeviceInventory, device.id)
    hardware = []
    if inventory is not None:
        hardware = [(k, v) for k, v in sorted(inventory.hardware.items())
                    if isinstance(v, str | int | float | bool)][:20]
    commands = session.scalars(select(Command).where(Command.device_id == device.id)
                               .order_by(Command.created_at.desc()).limit(20)).all()
    room = session.get(Room, device.room_id) if device.room_id else None
    return render(request, "device.html", lang, principal, device=device, state=state, health=health, room=room,
                  school=session.get(School, device.school_id), cpu=cpu, spark=sparkline(cpu),
                  spark_w=SPARK_W, spark_h=SPARK_H, inventory=inventory, hardware=hardware,
                  incidents=_fault_rows(list(queries.open_incidents(session, device.id)), lang),
                  commands=commands, can_send=principal.can_write(device.school_id), actions=ACTIONS,
                  target_type="device", target_id=device.id)


@router.get("/console/incidents", response_class=HTMLResponse)
def incidents_page(request: Request, session: SessionDep, principal: ConsolePrincipal, lang: LangDep,
                   school: Annotated[str | None, Query(max_length=64)] = None,
                   state: Annotated[str, Query(pattern="^(|active|open|acknowledged|resolved)$")] = "active",
                   code: Annotated[str | None, Query(max_length=64)] = None) -> Any:
    """Incidents of the principal's schools, newest first, filtered by school, state and fault code."""
    query = (select(Incident, Device.uid).join(Device, Device.id == Incident.device_id)
             .where(principal.scope(Incident.school_id)).order_by(Incident.last_seen.desc(), Incident.id.desc()))
    if state == "active":
        query = query.where(Incident.state != "resolved")
    elif state:
        query = query.where(Incident.state == state)
    if school:
        query = query.where(Incident.school_id == school)
    if code:
        query = query.where(Incident.code == code)
    rows = session.execute(query.limit(MAX_ROWS)).all()
    schools = session.scalars(select(School).where(principal.scope(School.id)).order_by(School.id)).all()
    codes = session.scalars(select(Incident.code).where(principal.scope(Incident.school_id)).distinct()
                            .order_by(Incident.code)).all()
    return render(request, "incidents.html", lang, principal, schools=schools, states=("active", *INCIDENT_STATES),
                  codes=[(c, lookup(c).text(lang)) for c in codes], sel_school=school or "", sel_state=state,
                  sel_code=code or "", next_url=str(request.url.path) + (f"?{request.url.query}"
                                                                          if request.url.query else ""),
                  rows=[{"i": i, "uid": uid, "text": lookup(i.code).text(lang),
                         "can_write": principal.can_write(i.school_id)} for i, uid in rows])


@router.get("/console/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(incident_id: int, request: Request, session: SessionDep, principal: ConsolePrincipal,
                  lang: LangDep) -> Any:
    """One incident with its comments and the forms to act on it."""
    incident = session.get(Incident, incident_id)
    check_read(principal, incident.school_id if incident else None, f"incident {incident_id}")
    assert incident is not None
    comments = session.scalars(select(IncidentComment).where(IncidentComment.incident_id == incident.id)
                               .order_by(IncidentComment.at)).all()
    return render(request, "incident.html", lang, principal, i=incident, text=lookup(incident.code).text(lang),
                  device=session.get(Device, incident.device_id), comments=comments,
                  can_write=principal.can_write(incident.school_id), next_url=request.url.path)


def _target_school(session: Session, target: str, cache: dict[str, str | None]) -> str | None:
    """The school an audit row's target belongs to, if it names one (``school:``, ``room:``, ``device:``,
    ``incident:``); None for targets outside any school (users, tokens)."""
    if target in cache:
        return cache[target]
    kind, _, rest = target.partition(":")
    school: str | None = None
    if kind in ("school", "room"):
        school = rest.split("/", 1)[0] or None
    elif kind in ("device", "incident") and rest.isdigit():
        model = Device if kind == "device" else Incident
        school = session.scalar(select(model.school_id).where(model.id == int(rest)))
    cache[target] = school
    return school


@router.get("/console/log", response_class=HTMLResponse)
def audit_log_page(request: Request, session: SessionDep, principal: ConsolePrincipal, lang: LangDep) -> Any:
    """Who changed what, newest first: for admins and auditors; a school-scoped reader sees only rows
    whose target lies in their schools."""
    if principal.role not in ("admin", "auditor"):
        raise HTTPException(403, detail="the activity log is for admins and auditors")
    shown: list[AuditLog] = []
    if principal.everywhere:
        shown = list(session.scalars(select(AuditLog).order_by(AuditLog.at.desc(), AuditLog.id.desc())
                                     .limit(MAX_ROWS)))
    else:
        cache: dict[str, str | None] = {}
        scanned = session.scalars(select(AuditLog).order_by(AuditLog.at.desc(), AuditLog.id.desc())
                                  .limit(LOG_SCAN)).all()
        for entry in scanned:
            if principal.can_read(_target_school(session, entry.target, cache)):
                shown.append(entry)
                if len(shown) >= MAX_ROWS:
                    break
    return render(request, "log.html", lang, principal, entries=shown, scoped=not principal.everywhere)
