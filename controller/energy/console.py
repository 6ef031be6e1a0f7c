"""Console pages of issue 9: the after-hours energy report (/console/energy) and a school's timetable
(/console/schools/{id}/timetable) with its holidays and recurring commands, editable by the school's technicians.

Forms check the session's CSRF token, then the same scope rules as the API (``timetable_api``), and write the
same audit log.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from ..api.deps import SessionDep, SettingsDep
from ..commands import AGENT_ACTIONS, PLUG_ACTIONS, actions_for_kind
from ..console.common import LangDep, check_csrf, flash, render
from ..console.i18n import translator
from ..console.login import ConsolePrincipal
from ..store.models import DEVICE_KINDS, CommandSchedule, Holiday, Room, School
from ..timetable import DAY_NAMES, TimetableError, check_hours, day_names, parse_days, parse_time
from .api import energy_report
from .timetable_api import _audit, _check_holiday_write, _holidays_of, _schedule, _school, _writable_holiday

router = APIRouter(include_in_schema=False)
Csrf = Annotated[str | None, Form(max_length=100)]
VN = ZoneInfo("Asia/Ho_Chi_Minh")
DAY_LINE = re.compile(r"^\s*(\S+)\s+(\d{2}:\d{2})\s*[-–]\s*(\d{2}:\d{2})\s*$")
# A recurring command from the console takes no arguments, so an agent's ``message`` (it needs its text) is left
# to the API.
AGENT_SCHEDULE_ACTIONS = tuple(a for a in AGENT_ACTIONS if a != "message")


def schedule_actions(kind: str | None) -> tuple[str, ...]:
    """The actions a schedule for devices of ``kind`` (None: any kind) may take from the console."""
    return tuple(a for a in actions_for_kind(kind) if a in AGENT_SCHEDULE_ACTIONS or a in PLUG_ACTIONS)


def _day(value: str | None, default: dt.date) -> dt.date:
    try:
        return dt.date.fromisoformat(value) if value else default
    except ValueError:
        return default


@router.get("/console/energy", response_class=HTMLResponse)
def energy_page(request: Request, session: SessionDep, settings: SettingsDep, principal: ConsolePrincipal,
                lang: LangDep, start: Annotated[str | None, Query(max_length=10)] = None,
                end: Annotated[str | None, Query(max_length=10)] = None,
                school: Annotated[str | None, Query(max_length=64)] = None) -> Any:
    """The report for a period (default: the last seven days), grouped by school and room, with downloads."""
    today = dt.datetime.now(VN).date()
    first, last = _day(start, today - dt.timedelta(days=7)), _day(end, today)
    school = school or None
    error = None
    report = None
    try:
        report = energy_report(session, settings, principal, dt.datetime.combine(first, dt.time(), VN),
                               dt.datetime.combine(last, dt.time(), VN), school)
    except HTTPException:
        error = "energy.bad_period"
    schools = session.scalars(select(School).where(principal.scope(School.id)).order_by(School.id)).all()
    query = urlencode({k: v for k, v in {"start": dt.datetime.combine(first, dt.time(), VN).isoformat(),
                                         "end": dt.datetime.combine(last, dt.time(), VN).isoformat(),
                                         "school": school, "lang": lang}.items() if v})
    rooms: dict[tuple[str, str | None], list[Any]] = {}
    for row in report.rows if report else []:
        rooms.setdefault((row.school, row.room), []).append(row)
    return render(request, "energy.html", lang, principal, report=report, error=error, first=first.isoformat(),
                  last=last.isoformat(), schools=schools, selected=school or "", query=query, rooms=rooms,
                  room_totals={(r.school, r.room): r for r in (report.rooms if report else [])},
                  names={s.id: s.name for s in schools})


@router.get("/console/schools/{school_id}/timetable", response_class=HTMLResponse)
def timetable_page(school_id: str, request: Request, session: SessionDep, principal: ConsolePrincipal,
                   lang: LangDep) -> Any:
    """School days, hours, holidays and recurring commands; forms for those who may change them."""
    school = _school(session, principal, school_id, write=False)
    schedules = session.scalars(select(CommandSchedule).where(CommandSchedule.school_id == school.id)
                                .order_by(CommandSchedule.at_time, CommandSchedule.id)).all()
    rooms = {r.id: r for r in session.scalars(select(Room).where(Room.school_id == school.id).order_by(Room.code))}
    day_lines = "\n".join(f"{DAY_NAMES[int(k) - 1]} {v[0]}-{v[1]}" for k, v in sorted((school.day_hours or {}).items()))
    return render(request, "timetable.html", lang, principal, page_zone=school.timezone, school=school,
                  days=", ".join(day_names(school.school_days or "12345")), day_lines=day_lines,
                  holidays=_holidays_of(session, school), schedules=schedules, rooms=rooms,
                  can_write=principal.can_write(school.id), schedule_actions=schedule_actions(None),
                  schedule_kinds=[k for k in DEVICE_KINDS if schedule_actions(k)])


def _back(school_id: str) -> RedirectResponse:
    return RedirectResponse(f"/console/schools/{school_id}/timetable", status_code=303)


@router.post("/console/schools/{school_id}/timetable")
def timetable_form(school_id: str, request: Request, principal: ConsolePrincipal,
                   timezone: Annotated[str, Form(max_length=64)], days: Annotated[str, Form(max_length=100)],
                   hours_start: Annotated[str, Form(max_length=5)], hours_end: Annotated[str, Form(max_length=5)],
                   day_hours: Annotated[str, Form(max_length=1000)] = "", csrf: Csrf = None) -> Any:
    """Save the zone, the school days, the hours and the days with other hours."""
    check_csrf(request, csrf)
    with request.app.state.sessions.begin() as session:
        school = _school(session, principal, school_id, write=True)
        try:
            ZoneInfo(timezone)
            check_hours(hours_start, hours_end)
            wanted: dict[str, Any] = {"timezone": timezone, "school_days": parse_days(days),
                                      "hours_start": hours_start, "hours_end": hours_end, "day_hours": {}}
            for line in filter(str.strip, day_hours.splitlines()):
                m = DAY_LINE.match(line)
                if not m or len(parse_days(m[1])) != 1:
                    raise TimetableError("days", value=line)
                check_hours(m[2], m[3])
                wanted["day_hours"][parse_days(m[1])] = [m[2], m[3]]
        except (TimetableError, ZoneInfoNotFoundError, ValueError) as exc:
            flash(request, "tt.invalid", error=str(exc))
            return _back(school_id)
        changed = {k: v for k, v in wanted.items() if getattr(school, k) != v}
        for k, v in changed.items():
            setattr(school, k, v)
        if changed:
            _audit(session, principal, "timetable.update", f"school:{school.id}", changed)
    flash(request, "tt.saved")
    return _back(school_id)


@router.post("/console/schools/{school_id}/holidays")
def holiday_form(school_id: str, request: Request, principal: ConsolePrincipal,
                 name: Annotated[str, Form(min_length=1, max_length=200)],
                 starts_on: Annotated[dt.date, Form()], ends_on: Annotated[dt.date | None, Form()] = None,
                 scope: Annotated[str, Form(pattern="^(school|district|all)$")] = "school", csrf: Csrf = None) -> Any:
    """Add a holiday for this school, its district or every school."""
    check_csrf(request, csrf)
    ends = ends_on or starts_on
    if ends < starts_on or (ends - starts_on).days > 366:
        flash(request, "tt.invalid", error=f"{starts_on} – {ends}")
        return _back(school_id)
    with request.app.state.sessions.begin() as session:
        school = _school(session, principal, school_id, write=False)
        target_school = school.id if scope == "school" else None
        district = school.district_id if scope == "district" else None
        if scope == "district" and district is None:
            raise HTTPException(422, detail="this school has no district")
        _check_holiday_write(session, principal, target_school, district)
        holiday = Holiday(school_id=target_school, district_id=district, starts_on=starts_on, ends_on=ends, name=name)
        session.add(holiday)
        session.flush()
        _audit(session, principal, "holiday.create", f"holiday:{holiday.id}",
               {"school": target_school, "district": district, "starts_on": starts_on.isoformat(),
                "ends_on": ends.isoformat(), "name": name})
    flash(request, "tt.holiday.added")
    return _back(school_id)


@router.post("/console/schools/{school_id}/holidays/{holiday_id}/delete")
def holiday_delete_form(school_id: str, holiday_id: int, request: Request, principal: ConsolePrincipal,
                        csrf: Csrf = None) -> Any:
    """Remove a holiday."""
    check_csrf(request, csrf)
    with request.app.state.sessions.begin() as session:
        holiday = _writable_holiday(session, principal, holiday_id)
        _audit(session, principal, "holiday.delete", f"holiday:{holiday.id}",
               {"school": holiday.school_id, "district": holiday.district_id, "name": holiday.name})
        session.delete(holiday)
    flash(request, "tt.holiday.deleted")
    return _back(school_id)


@router.post("/console/schedules/{schedule_id}/toggle")
def schedule_toggle_form(schedule_id: int, request: Request, principal: ConsolePrincipal, csrf: Csrf = None) -> Any:
    """Enable or disable a recurring command (over the summer, say)."""
    check_csrf(request, csrf)
    with request.app.state.sessions.begin() as session:
        schedule = _schedule(session, principal, schedule_id, write=True)
        schedule.enabled = not schedule.enabled
        _audit(session, principal, "schedule.update", f"schedule:{schedule.id}", {"enabled": schedule.enabled})
        school_id = schedule.school_id
    flash(request, "tt.schedule.toggled")
    return _back(school_id)


@router.post("/console/schools/{school_id}/schedules")
def schedule_form(school_id: str, request: Request, principal: ConsolePrincipal, lang: LangDep,
                  action: Annotated[str, Form(max_length=32)], at_time: Annotated[str, Form(max_length=5)],
                  room_id: Annotated[str, Form(max_length=12)] = "", kind: Annotated[str, Form(max_length=32)] = "",
                  school_days_only: Annotated[str | None, Form(max_length=8)] = None,
                  enabled: Annotated[str | None, Form(max_length=8)] = None,
                  name: Annotated[str, Form(max_length=200)] = "", csrf: Csrf = None) -> Any:
    """Add a recurring command for the school's or one of its rooms' devices (optionally one kind): an action valid
    for that kind, at a local time of day; the same checks and audit entry as ``POST /api/v1/schedules``."""
    check_csrf(request, csrf)
    t = translator(lang)
    with request.app.state.sessions.begin() as session:
        school = _school(session, principal, school_id, write=True)
        room = None
        if room_id:
            room = session.get(Room, int(room_id)) if room_id.isdigit() and 0 < int(room_id) < 2**31 else None
            if room is None or room.school_id != school.id:
                raise HTTPException(404, detail=f"room {room_id} not found in school {school.id}")
        if kind and kind not in DEVICE_KINDS:
            flash(request, "tt.invalid", error=kind)
            return _back(school.id)
        if action not in schedule_actions(kind or None):
            flash(request, "tt.schedule.bad_action", action=t.get(f"action.{action}", action),
                  kind=t.get(f"devkind.{kind}", kind) if kind else t["send.all_kinds"])
            return _back(school.id)
        try:
            parse_time(at_time)
        except TimetableError:
            flash(request, "tt.invalid", error=at_time)
            return _back(school.id)
        schedule = CommandSchedule(
            school_id=school.id, room_id=room.id if room else None, kind=kind or None, action=action, args={},
            at_time=at_time, school_days_only=school_days_only is not None, expires_in_s=3600,
            enabled=enabled is not None, name=name.strip() or None, created_at=dt.datetime.now(dt.UTC),
            created_by=principal.name)
        session.add(schedule)
        session.flush()
        _audit(session, principal, "schedule.create", f"schedule:{schedule.id}",
               {"school": school.id, "room_id": schedule.room_id, "kind": schedule.kind, "action": action,
                "at_time": at_time, "school_days_only": schedule.school_days_only, "enabled": schedule.enabled,
                "name": schedule.name})
    flash(request, "tt.schedule.added")
    return _back(school_id)


@router.post("/console/schedules/{schedule_id}/delete")
def schedule_delete_form(schedule_id: int, request: Request, principal: ConsolePrincipal, csrf: Csrf = None) -> Any:
    """Remove a recurring command (the commands it already created stay in the ledger)."""
    check_csrf(request, csrf)
    with request.app.state.sessions.begin() as session:
        schedule = _schedule(session, principal, schedule_id, write=True)
        school_id = schedule.school_id
        _audit(session, principal, "schedule.delete", f"schedule:{schedule.id}",
               {"school": school_id, "action": schedule.action, "at_time": schedule.at_time})
        session.delete(schedule)
    flash(request, "tt.schedule.deleted")
    return _back(school_id)
