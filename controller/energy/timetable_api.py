"""REST API of school hours: a school's timetable, holidays, the timetable import, and recurring command schedules.

Scoped like every route: a user reads only their schools' timetables (and the district-wide and department-wide
holidays that apply to them) and changes only those of the schools they may act on; a district's or every
school's holiday needs write access to every school it covers. Every change goes to the audit log.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..api.deps import MAX_ID, IdPath, PrincipalDep, SessionDep, check_read, check_write
from ..auth import Principal
from ..commands import ACTIONS, actions_for_kind
from ..store.models import DEVICE_KINDS, AuditLog, CommandSchedule, District, Holiday, Room, School
from ..timetable import DAY_NAMES, TIME_RE, TimetableError, check_hours, parse_time
from .timetable_import import MAX_HOLIDAY_DAYS, import_timetable

router = APIRouter(prefix="/api/v1", tags=["school hours"])

DayName = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
HHMM = Annotated[str, Field(pattern=TIME_RE.pattern, examples=["07:00"])]
SchoolId = Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,64}$")]
SchoolQ = Annotated[str | None, Query(max_length=64)]
MAX_BODY = 5 * 1024 * 1024
FIRST_DAY, LAST_DAY = dt.date(2000, 1, 1), dt.date(2100, 12, 31)


class HolidayPublic(BaseModel):
    """Days off; ``school`` and ``district`` both null: every school."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    school: str | None = Field(validation_alias="school_id")
    district: str | None = Field(validation_alias="district_id")
    starts_on: dt.date
    ends_on: dt.date
    name: str


class TimetablePublic(BaseModel):
    """When a school is in session."""

    school: str
    timezone: str
    hours_start: str
    hours_end: str
    school_days: list[DayName]
    day_hours: dict[DayName, tuple[str, str]] = Field(description="weekdays with other hours than the usual")
    holidays: list[HolidayPublic] = Field(description="the school's, its district's and every school's")


class TimetableUpdate(BaseModel):
    """What to change; what is not given is kept. ``day_hours`` replaces the per-weekday hours as a whole."""

    timezone: str | None = Field(default=None, max_length=64)
    hours_start: HHMM | None = None
    hours_end: HHMM | None = None
    school_days: list[DayName] | None = Field(default=None, min_length=1, max_length=7)
    day_hours: dict[DayName, tuple[HHMM, HHMM]] | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("day_hours")
    @classmethod
    def _day_order(cls, value: dict[str, tuple[str, str]] | None) -> dict[str, tuple[str, str]] | None:
        for day, (start, end) in (value or {}).items():
            if end <= start:
                raise ValueError(f"{day}: the end must be after the start")
        return value


class HolidayCreate(BaseModel):
    """Days off for one school, one district's schools, or (neither given) every school."""

    school: SchoolId | None = None
    district: SchoolId | None = None
    starts_on: dt.date = Field(ge=FIRST_DAY, le=LAST_DAY)
    ends_on: dt.date | None = Field(default=None, ge=FIRST_DAY, le=LAST_DAY, description="inclusive; default: "
                                    "the start day")
    name: str = Field(min_length=1, max_length=200, examples=["Tết Nguyên Đán"])

    @model_validator(mode="after")
    def _check(self) -> HolidayCreate:
        if self.school and self.district:
            raise ValueError("give a school or a district, not both")
        ends = self.ends_on or self.starts_on
        if ends < self.starts_on or (ends - self.starts_on).days >= MAX_HOLIDAY_DAYS:
            raise ValueError(f"ends_on must be on or after starts_on, less than {MAX_HOLIDAY_DAYS} days later")
        return self


class SchedulePublic(BaseModel):
    """A recurring command and what its last occurrence did."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    school: str = Field(validation_alias="school_id")
    room_id: int | None
    kind: str | None
    action: str
    args: dict[str, Any]
    at_time: str
    school_days_only: bool
    expires_in_s: int
    enabled: bool
    name: str | None
    created_at: dt.datetime
    created_by: str | None
    last_occurrence: dt.datetime | None
    last_run_at: dt.datetime | None
    last_result: str | None


class ScheduleFields(BaseModel):
    """Fields a schedule's owner may set."""

    kind: str | None = Field(default=None, description=f"only devices of this kind: {', '.join(DEVICE_KINDS)}")
    action: str | None = Field(default=None, description="an allow-listed command action (see /api/v1/commands)")
    args: dict[str, Any] | None = None
    at_time: HHMM | None = Field(default=None, description="local time of day in the school's time zone")
    school_days_only: bool | None = Field(default=None, description="only on school days (timetable, holidays)")
    expires_in_s: int | None = Field(default=None, ge=10, le=30 * 86400,
                                     description="the commands expire this long after the time of day")
    enabled: bool | None = None
    name: str | None = Field(default=None, max_length=200)

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str | None) -> str | None:
        if value is not None and value not in DEVICE_KINDS:
            raise ValueError(f"kind must be one of: {', '.join(DEVICE_KINDS)}")
        return value

    @field_validator("action")
    @classmethod
    def _action(cls, value: str | None) -> str | None:
        if value is not None and value not in ACTIONS:
            raise ValueError(f"action must be one of: {', '.join(ACTIONS)}")
        return value


class ScheduleCreate(ScheduleFields):
    """A new schedule for a school's or a room's devices, e.g. shutdown of every ``pc`` at 17:30 on school days."""

    school: SchoolId | None = None
    room_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    action: str
    at_time: HHMM

    @model_validator(mode="after")
    def _one_target(self) -> ScheduleCreate:
        if (self.school is None) == (self.room_id is None):
            raise ValueError("give exactly one of school, room_id")
        check_action_suits_kind(self.action, self.kind)
        return self


def check_action_suits_kind(action: str, kind: str | None) -> None:
    """A schedule's action must be one its devices can carry out (no ``power_off`` for PCs)."""
    allowed = actions_for_kind(kind)
    if action not in allowed:
        raise ValueError(f"devices of kind {kind} cannot '{action}': use one of {', '.join(allowed) or 'none'}")


def _audit(session: Session, principal: Principal, action: str, target: str, detail: dict[str, Any]) -> None:
    session.add(AuditLog(at=dt.datetime.now(dt.UTC), actor=principal.name, action=action, target=target,
                         detail=detail))


def _holidays_of(session: Session, school: School) -> list[Holiday]:
    conditions = [Holiday.school_id == school.id, Holiday.school_id.is_(None) & Holiday.district_id.is_(None)]
    if school.district_id:
        conditions.append(Holiday.district_id == school.district_id)
    return list(session.scalars(select(Holiday).where(or_(*conditions)).order_by(Holiday.starts_on, Holiday.id)))


def _timetable(session: Session, school: School) -> TimetablePublic:
    days = school.school_days or "12345"
    return TimetablePublic(
        school=school.id, timezone=school.timezone, hours_start=school.hours_start, hours_end=school.hours_end,
        school_days=[DAY_NAMES[int(c) - 1] for c in days],  # type: ignore[misc]
        day_hours={DAY_NAMES[int(k) - 1]: (v[0], v[1]) for k, v in sorted((school.day_hours or {}).items())},
        holidays=[HolidayPublic.model_validate(h) for h in _holidays_of(session, school)])


def _school(session: Session, principal: Principal, school_id: str, write: bool) -> School:
    """The school the caller may read (or change); 404/403 otherwise, as check_read/check_write say."""
    school = session.get(School, school_id) if len(school_id) <= 64 else None
    (check_write if write else check_read)(principal, school.id if school else None, f"school {school_id}")
    assert school is not None
    return school


@router.get("/schools/{school_id}/timetable", response_model=TimetablePublic)
def read_timetable(school_id: str, session: SessionDep, principal: PrincipalDep) -> TimetablePublic:
    """School days, hours (and weekdays with other hours), time zone and the holidays that apply."""
    return _timetable(session, _school(session, principal, school_id, write=False))


@router.put("/schools/{school_id}/timetable", response_model=TimetablePublic)
def update_timetable(school_id: str, body: TimetableUpdate, request: Request,
                     principal: PrincipalDep) -> TimetablePublic:
    """Change a school's time zone, school days or hours (technicians and admins of the school)."""
    with request.app.state.sessions.begin() as session:
        school = _school(session, principal, school_id, write=True)
        wanted: dict[str, Any] = {}
        if body.timezone is not None:
            wanted["timezone"] = body.timezone
        if body.hours_start is not None:
            wanted["hours_start"] = body.hours_start
        if body.hours_end is not None:
            wanted["hours_end"] = body.hours_end
        if body.school_days is not None:
            wanted["school_days"] = "".join(sorted({str(DAY_NAMES.index(d) + 1) for d in body.school_days}))
        if body.day_hours is not None:
            wanted["day_hours"] = {str(DAY_NAMES.index(d) + 1): list(v) for d, v in body.day_hours.items()}
        try:
            check_hours(wanted.get("hours_start", school.hours_start), wanted.get("hours_end", school.hours_end))
        except TimetableError:
            raise HTTPException(422, detail="hours_end must be after hours_start") from None
        changed = {k: v for k, v in wanted.items() if getattr(school, k) != v}
        for k, v in changed.items():
            setattr(school, k, v)
        if changed:
            _audit(session, principal, "timetable.update", f"school:{school.id}", changed)
        session.flush()
        return _timetable(session, school)


async def _raw_body(request: Request) -> bytes:
    """The request body as sent (a CSV or XLSX file), bounded."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, detail=f"the file is larger than {MAX_BODY // (1024 * 1024)} MiB")
    return body


@router.post("/schools/{school_id}/timetable/import",
             responses={422: {"description": "the file has errors (by row and column); nothing was imported"}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "text/csv": {"schema": {"type": "string"}},
                 "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                     "schema": {"type": "string", "format": "binary"}}}}})
def import_school_timetable(school_id: str, request: Request, principal: PrincipalDep,
                            data: Annotated[bytes, Depends(_raw_body)],
                            format: Annotated[Literal["csv", "xlsx"], Query()] = "csv",  # noqa: A002
                            lang: Annotated[str, Query(pattern="^(vi|en)$")] = "vi") -> Any:
    """A timetable file (docs/timetable-import.md) holding only this school's rows; all or nothing."""
    with request.app.state.sessions() as session:
        _school(session, principal, school_id, write=True)
    with request.app.state.sessions() as session:
        result = import_timetable(session, f"upload.{format}", data, actor=principal.name, only_school=school_id)
    return JSONResponse(result.as_dict(lang), status_code=200 if result.ok else 422)


def _visible_holidays(session: Session, principal: Principal, school: str | None) -> list[Holiday]:
    if school is not None:
        found = session.get(School, school) if len(school) <= 64 else None
        if found is None or not principal.can_read(found.id):
            return []
        return _holidays_of(session, found)
    query = select(Holiday).order_by(Holiday.starts_on, Holiday.id)
    if principal.schools is not None:
        districts = select(School.district_id).where(principal.scope(School.id))
        query = query.where(or_(principal.scope(Holiday.school_id), Holiday.district_id.in_(districts),
                                Holiday.school_id.is_(None) & Holiday.district_id.is_(None)))
    return list(session.scalars(query))


@router.get("/holidays", response_model=list[HolidayPublic])
def read_holidays(session: SessionDep, principal: PrincipalDep, school: SchoolQ = None) -> list[HolidayPublic]:
    """The holidays that apply to the caller's schools (or to one school)."""
    return [HolidayPublic.model_validate(h) for h in _visible_holidays(session, principal, school)]


def _check_holiday_write(session: Session, principal: Principal, school: str | None, district: str | None) -> None:
    """A school's holiday: write access to it; a district's: to all its schools; every school's: everywhere."""
    if school is not None:
        found = session.get(School, school)
        check_write(principal, found.id if found else None, f"school {school}")
        return
    if district is not None:
        known = session.get(District, district)
        schools = list(session.scalars(select(School.id).where(School.district_id == district))) if known else []
        if not schools or not any(principal.can_read(s) for s in schools):
            raise HTTPException(404, detail=f"district {district} not found")
        if not all(principal.can_write(s) for s in schools):
            raise HTTPException(403, detail="a district's holiday needs write access to all its schools")
        return
    if not (principal.everywhere and principal.role in ("admin", "technician")):
        raise HTTPException(403, detail="a holiday of every school needs a department-wide technician or admin")


@router.post("/holidays", response_model=HolidayPublic, status_code=201)
def create_holiday(body: HolidayCreate, request: Request, principal: PrincipalDep) -> HolidayPublic:
    """Add days off (e.g. Tết Nguyên Đán) for a school, a district or every school."""
    with request.app.state.sessions.begin() as session:
        _check_holiday_write(session, principal, body.school, body.district)
        holiday = Holiday(school_id=body.school, district_id=body.district, starts_on=body.starts_on,
                          ends_on=body.ends_on or body.starts_on, name=body.name)
        session.add(holiday)
        session.flush()
        _audit(session, principal, "holiday.create", f"holiday:{holiday.id}",
               {"school": body.school, "district": body.district, "starts_on": body.starts_on.isoformat(),
                "ends_on": holiday.ends_on.isoformat(), "name": body.name})
        return HolidayPublic.model_validate(holiday)


@router.delete("/holidays/{holiday_id}", status_code=204, response_model=None)
def delete_holiday(holiday_id: IdPath, request: Request, principal: PrincipalDep) -> None:
    """Remove a holiday."""
    with request.app.state.sessions.begin() as session:
        holiday = _writable_holiday(session, principal, holiday_id)
        _audit(session, principal, "holiday.delete", f"holiday:{holiday.id}",
               {"school": holiday.school_id, "district": holiday.district_id, "name": holiday.name,
                "starts_on": holiday.starts_on.isoformat()})
        session.delete(holiday)


def _can_see(session: Session, principal: Principal, holiday: Holiday) -> bool:
    """A school's holiday is seen by that school's readers, a district's by its schools', every school's by all."""
    if holiday.school_id is not None:
        return principal.can_read(holiday.school_id)
    if holiday.district_id is None or principal.schools is None:
        return True
    return any(principal.can_read(s) for s in session.scalars(
        select(School.id).where(School.district_id == holiday.district_id)))


def _writable_holiday(session: Session, principal: Principal, holiday_id: int) -> Holiday:
    """The holiday the caller may remove: 404 where they cannot see it, 403 where they may not change it.

    Shared with the console's form, whose path id is not bounded: an id past MAX_ID is not found."""
    holiday = session.get(Holiday, holiday_id) if 0 < holiday_id <= MAX_ID else None
    if holiday is None or not _can_see(session, principal, holiday):
        raise HTTPException(404, detail=f"holiday {holiday_id} not found")
    _check_holiday_write(session, principal, holiday.school_id, holiday.district_id)
    return holiday


def _schedule(session: Session, principal: Principal, schedule_id: int, write: bool) -> CommandSchedule:
    """The schedule the caller may read (or change); an id past MAX_ID (the console's unbounded path) is not found."""
    schedule = session.get(CommandSchedule, schedule_id) if 0 < schedule_id <= MAX_ID else None
    (check_write if write else check_read)(principal, schedule.school_id if schedule else None,
                                           f"schedule {schedule_id}")
    assert schedule is not None
    return schedule


@router.get("/schedules", response_model=list[SchedulePublic])
def read_schedules(session: SessionDep, principal: PrincipalDep, school: SchoolQ = None) -> list[CommandSchedule]:
    """Recurring commands of the caller's schools (or of one school)."""
    query = select(CommandSchedule).where(principal.scope(CommandSchedule.school_id)).order_by(
        CommandSchedule.school_id, CommandSchedule.at_time, CommandSchedule.id)
    if school is not None:
        query = query.where(CommandSchedule.school_id == school)
    return list(session.scalars(query))


@router.post("/schedules", response_model=SchedulePublic, status_code=201)
def create_schedule(body: ScheduleCreate, request: Request, principal: PrincipalDep) -> CommandSchedule:
    """A recurring command, e.g. ``{"school": "x", "kind": "pc", "action": "shutdown", "at_time": "17:30"}``."""
    with request.app.state.sessions.begin() as session:
        if body.room_id is not None:
            room = session.get(Room, body.room_id)
            check_write(principal, room.school_id if room else None, f"room {body.room_id}")
            assert room is not None
            school_id = room.school_id
        else:
            assert body.school is not None
            _school(session, principal, body.school, write=True)
            school_id = body.school
        parse_time(body.at_time)
        schedule = CommandSchedule(
            school_id=school_id, room_id=body.room_id, kind=body.kind, action=body.action, args=body.args or {},
            at_time=body.at_time, school_days_only=True if body.school_days_only is None else body.school_days_only,
            expires_in_s=body.expires_in_s or 3600, enabled=True if body.enabled is None else body.enabled,
            name=body.name, created_at=dt.datetime.now(dt.UTC), created_by=principal.name)
        session.add(schedule)
        session.flush()
        _audit(session, principal, "schedule.create", f"schedule:{schedule.id}",
               body.model_dump(mode="json", exclude_none=True))
        return schedule


@router.patch("/schedules/{schedule_id}", response_model=SchedulePublic)
def update_schedule(schedule_id: IdPath, body: ScheduleFields, request: Request,
                    principal: PrincipalDep) -> CommandSchedule:
    """Change a schedule (e.g. ``{"enabled": false}`` over the summer)."""
    with request.app.state.sessions.begin() as session:
        schedule = _schedule(session, principal, schedule_id, write=True)
        changed = body.model_dump(exclude_none=True)
        try:
            check_action_suits_kind(changed.get("action", schedule.action), changed.get("kind", schedule.kind))
        except ValueError as exc:
            raise HTTPException(422, detail=str(exc)) from None
        for k, v in changed.items():
            setattr(schedule, k, v)
        if changed:
            _audit(session, principal, "schedule.update", f"schedule:{schedule.id}",
                   body.model_dump(mode="json", exclude_none=True))
        session.flush()
        return schedule


@router.delete("/schedules/{schedule_id}", status_code=204, response_model=None)
def delete_schedule(schedule_id: IdPath, request: Request, principal: PrincipalDep) -> None:
    """Remove a schedule (commands it already created stay in the ledger)."""
    with request.app.state.sessions.begin() as session:
        schedule = _schedule(session, principal, schedule_id, write=True)
        _audit(session, principal, "schedule.delete", f"schedule:{schedule.id}",
               {"school": schedule.school_id, "action": schedule.action, "at_time": schedule.at_time})
        session.delete(schedule)
