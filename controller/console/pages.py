"""Console drill-down pages: school → room → device, incidents, and the activity (audit) log.

Every query is limited to the principal's schools and every id is checked with ``check_read``,
so a user of school A gets a 404 for anything of school B, whatever id is in the URL.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from classfleet_wire import lookup

from ..api.deps import NowDep, SessionDep, SettingsDep, check_read
from ..api.schemas import PollReading
from ..commands import ACTIONS
from ..incidents import opened_in_maintenance as in_maintenance
from ..store import queries
from ..store.models import (
    COMMAND_STATES,
    DEVICE_KINDS,
    HEALTH_STATES,
    INCIDENT_STATES,
    AuditLog,
    Command,
    Device,
    DeviceInventory,
    Incident,
    IncidentComment,
    MaintenanceWindow,
    Observation,
    Room,
    School,
)
from .common import LangDep, render, school_zones, viewer_zone
from .login import ConsolePrincipal

router = APIRouter(include_in_schema=False)
SPARK_POINTS = 60
SPARK_W, SPARK_H = 300, 48
MAX_ROWS = 200
LOG_SCAN = 5000  # audit rows examined for a school-scoped reader before giving up
LEDGER_ROWS = 20
LIFECYCLE = ("pending", "sent", "accepted", "done")  # the happy path; failed | rejected | expired end it early
MAX_WINDOWS = 100


def sparkline(values: list[float]) -> str:
    """SVG polyline points for percentages (oldest first): a tiny chart that needs no script or library."""
    if not values:
        return ""
    step = SPARK_W / max(len(values) - 1, 1)
    return " ".join(f"{i * step:.1f},{SPARK_H - min(max(v, 0.0), 100.0) / 100 * (SPARK_H - 2) - 1:.1f}"
                    for i, v in enumerate(values))


def _fault_rows(session: Session, incidents: list[Incident], lang: str) -> list[dict[str, Any]]:
    quiet = in_maintenance(session, incidents)
    return [{"i": i, "text": lookup(i.code).text(lang), "maintenance": i.id in quiet} for i in incidents]


def lifecycle_steps(state: str) -> list[tuple[str, str]]:
    """A command's lifecycle as (state, how it stands: past | now | later) steps; an early end replaces the
    steps it never reached (e.g. pending → expired)."""
    if state in LIFECYCLE:
        at = LIFECYCLE.index(state)
        return [(s, "past" if n < at else "now" if n == at else "later") for n, s in enumerate(LIFECYCLE)]
    reached = {"rejected": 2, "failed": 3, "expired": 1}.get(state, 1)
    return [*((s, "past") for s in LIFECYCLE[:reached]), (state, "now")]


def _ledger(session: Session, device_ids: Sequence[int] | None = None, room_id: int | None = None
            ) -> list[dict[str, Any]]:
    """The newest commands of a device (or of a room's devices), each with its lifecycle steps."""
    query = (select(Command, Device.uid).join(Device, Device.id == Command.device_id)
             .order_by(Command.created_at.desc(), Command.id).limit(LEDGER_ROWS))
    if device_ids is not None:
        query = query.where(Command.device_id.in_(device_ids))
    if room_id is not None:
        query = query.where(Device.room_id == room_id)
    return [{"c": c, "uid": uid, "steps": lifecycle_steps(c.state)} for c, uid in session.execute(query)]


def command_scopes(lang: str, device: Device | None, room: Room | None, school: School) -> list[dict[str, Any]]:
    """The targets a page's command form offers: this device, its room, its school (widest last)."""
    scopes = []
    if device is not None:
        scopes.append({"type": "device", "id": device.id, "key": "scope.device", "name": device.name or device.uid})
    if room is not None:
        scopes.append({"type": "room", "id": room.id, "key": "scope.room", "name": room.name})
    scopes.append({"type": "school", "id": school.id, "key": "scope.school", "name": school.name})
    return scopes


def _command_form(lang: str, principal: Any, school: School, device: Device | None = None,
                  room: Room | None = None) -> dict[str, Any]:
    """What ``_command_form.html`` needs."""
    return {"can_send": principal.can_write(school.id), "actions": ACTIONS, "kinds": DEVICE_KINDS,
            "scopes": command_scopes(lang, device, room, school), "form_zone": school.timezone}


def current_window(session: Session, school_id: str, now: dt.datetime) -> MaintenanceWindow | None:
    """The maintenance window the school is in now, else its next one, else None."""
    return session.scalars(select(MaintenanceWindow).where(MaintenanceWindow.school_id == school_id,
                                                           MaintenanceWindow.ends_at > now)
                           .order_by(MaintenanceWindow.starts_at).limit(1)).first()


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
    return render(request, "school.html", lang, principal, page_zone=school.timezone, school=school,
                  healths=HEALTH_STATES, rooms=[(r, counts.get(r.id, {})) for r in rooms],
                  unassigned=unassigned[:MAX_ROWS], open_count=open_count,
                  window=current_window(session, school.id, now), now=now, **_command_form(lang, principal, school))


@router.get("/console/schools/{school_id}/maintenance", response_class=HTMLResponse)
def maintenance_page(school_id: str, request: Request, session: SessionDep, now: NowDep,
                     principal: ConsolePrincipal, lang: LangDep,
                     past: Annotated[bool, Query()] = False) -> Any:
    """A school's maintenance windows (upcoming and current; ``past=1`` for the ended ones too), with the forms
    to plan and remove them; times in the school's zone."""
    school = session.get(School, school_id)
    check_read(principal, school.id if school else None, f"school {school_id}")
    assert school is not None
    query = select(MaintenanceWindow).where(MaintenanceWindow.school_id == school.id)
    if not past:
        query = query.where(MaintenanceWindow.ends_at > now)
    windows = session.scalars(query.order_by(MaintenanceWindow.starts_at.desc() if past
                                             else MaintenanceWindow.starts_at).limit(MAX_WINDOWS)).all()
    return render(request, "maintenance.html", lang, principal, page_zone=school.timezone, school=school,
                  windows=[{"w": w, "now": w.starts_at <= now < w.ends_at, "ended": w.ends_at <= now}
                           for w in windows], past=past, can_write=principal.can_write(school.id),
                  form_zone=school.timezone)


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
    school = session.get(School, room.school_id)
    assert school is not None
    return render(request, "room.html", lang, principal, page_zone=school.timezone, room=room, school=school,
                  devices=[{"d": d, "state": st, "health": h, "faults": faults.get(d.id, [])} for d, st, h in rows],
                  ledger=_ledger(session, room_id=room.id), **_command_form(lang, principal, school, room=room))


@router.get("/console/devices/{device_id}", response_class=HTMLResponse)
def device_page(device_id: int, request: Request, session: SessionDep, settings: SettingsDep, now: NowDep,
                principal: ConsolePrincipal, lang: LangDep) -> Any:
    """Everything about one device: facts, latest state, latest poll reading, CPU sparkline, inventory, incidents,
    commands."""
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
    room = session.get(Room, device.room_id) if device.room_id else None
    school = session.get(School, device.school_id)
    assert school is not None
    poll = queries.latest_poll(session, device)
    reading = PollReading.of(poll.ts, poll.data or {}) if poll is not None else None
    return render(request, "device.html", lang, principal, page_zone=school.timezone, device=device, state=state,
                  health=health, reading=reading, room=room, school=school, cpu=cpu, spark=sparkline(cpu),
                  spark_w=SPARK_W, spark_h=SPARK_H, inventory=inventory, hardware=hardware,
                  incidents=_fault_rows(session, list(queries.open_incidents(session, device.id)), lang),
                  ledger=_ledger(session, device_ids=[device.id]), command_states=COMMAND_STATES,
                  **_command_form(lang, principal, school, device=device, room=room))


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
    quiet = in_maintenance(session, [i for i, _ in rows])
    zones = school_zones(session, principal)
    schools = session.scalars(select(School).where(principal.scope(School.id)).order_by(School.id)).all()
    codes = session.scalars(select(Incident.code).where(principal.scope(Incident.school_id)).distinct()
                            .order_by(Incident.code)).all()
    return render(request, "incidents.html", lang, principal, page_zone=viewer_zone(zones), zones=zones,
                  school_names={s.id: s.name for s in schools}, schools=schools, states=("active", *INCIDENT_STATES),
                  codes=[(c, lookup(c).text(lang)) for c in codes], sel_school=school or "", sel_state=state,
                  sel_code=code or "", next_url=str(request.url.path) + (f"?{request.url.query}"
                                                                          if request.url.query else ""),
                  rows=[{"i": i, "uid": uid, "text": lookup(i.code).text(lang), "maintenance": i.id in quiet,
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
    school = session.get(School, incident.school_id)
    return render(request, "incident.html", lang, principal, page_zone=school.timezone if school else None,
                  i=incident, text=lookup(incident.code).text(lang), school=school,
                  device=session.get(Device, incident.device_id), comments=comments,
                  maintenance=bool(in_maintenance(session, [incident])),
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
    zones = school_zones(session, principal)
    return render(request, "log.html", lang, principal, page_zone=viewer_zone(zones), entries=shown,
                  scoped=not principal.everywhere)
