"""Timetable import (issue 9): school days and hours, per-weekday hours, holidays, from CSV or XLSX.

One flat table with a ``record`` column (docs/timetable-import.md): ``school`` rows set a school's time zone,
school days and daily hours; ``day`` rows give one weekday other hours (Saturday mornings); ``holiday`` rows add
days off for a school, a district's schools, or (neither named) every school. Like the inventory import: every
row is checked first and errors are given by row and column in the user's language; a file with any error
imports nothing; a clean file is applied in one transaction, so importing it again changes nothing. Blank
optional cells keep what is stored.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit.tabular import Table
from ..audit.validation import (
    ImportResult,
    Progress,
    RowError,
    check_columns,
    check_id,
    check_timezone,
    load_table,
    parse_date,
    validate_row,
)
from ..store.models import AuditLog, District, Holiday, School
from ..timetable import TimetableError, check_hours, parse_days, parse_time

RECORDS = ("school", "day", "holiday")
COLUMNS = ("record", "school", "district", "timezone", "days", "day", "hours_start", "hours_end", "starts_on",
           "ends_on", "name")
REQUIRED_COLUMNS = ("record", "school")
MAX_HOLIDAY_DAYS = 366

Id = Annotated[str, AfterValidator(check_id)]
Day = Annotated[dt.date, BeforeValidator(parse_date)]
Short = Annotated[str, Field(max_length=40)]


class SchoolRow(BaseModel):
    """A school's zone, school days and daily hours."""

    school: Id
    timezone: Annotated[str, AfterValidator(check_timezone)] | None = None
    days: Short | None = None
    hours_start: Short | None = None
    hours_end: Short | None = None


class DayRow(BaseModel):
    """One weekday's own hours at a school."""

    school: Id
    day: Short
    hours_start: Short
    hours_end: Short


class HolidayRow(BaseModel):
    """Days off: a school's, a district's, or every school's."""

    school: Id | None = None
    district: Id | None = None
    starts_on: Day
    ends_on: Day | None = None
    name: Annotated[str, Field(max_length=200)]


MODELS: dict[str, type[BaseModel]] = {"school": SchoolRow, "day": DayRow, "holiday": HolidayRow}


def _hours(row: int, start: str | None, end: str | None, errors: list[RowError]) -> tuple[str, str] | None:
    """Both times or neither; each a valid HH:MM; the end after the start."""
    if start is None and end is None:
        return None
    if start is None or end is None:
        errors.append(RowError(row, "hours_start" if start is None else "hours_end", "hours_pair"))
        return None
    bad = False
    for column, value in (("hours_start", start), ("hours_end", end)):
        try:
            parse_time(value)
        except TimetableError as exc:
            errors.append(RowError(row, column, exc.code, dict(exc.values)))
            bad = True
    if bad:
        return None
    try:
        check_hours(start, end)
    except TimetableError as exc:
        errors.append(RowError(row, "hours_end", exc.code, dict(exc.values)))
        return None
    return start, end


class Parsed:
    """Checked rows, ready to write."""

    def __init__(self) -> None:
        self.schools: dict[str, dict[str, Any]] = {}  # school -> {timezone, school_days, hours}
        self.days: dict[tuple[str, int], tuple[str, str]] = {}
        self.holidays: dict[tuple[str | None, str | None, dt.date, str], dt.date] = {}
        self.rows: dict[tuple[Any, ...], int] = {}


def _time_cell(value: Any) -> Any:
    """Spreadsheets give times as time cells or "7:00"/"07:00:00" text: make them "07:00"."""
    if isinstance(value, dt.datetime):
        value = value.time()
    if isinstance(value, dt.time):
        return value.strftime("%H:%M")
    if isinstance(value, str) and (m := re.fullmatch(r"(\d{1,2}):(\d{2})(?::00)?", value.strip())):
        return f"{int(m[1]):02d}:{m[2]}"
    return value


def _days(row: int, column: str, value: Any, errors: list[RowError], *, one: bool = False) -> str | None:
    """A list of days (``one``: a single day) as ISO digits, or None with an error."""
    if value is None:
        return None
    try:
        days = parse_days(str(value))
    except TimetableError:
        days = ""
    if not days or (one and len(days) != 1):
        errors.append(RowError(row, column, "days", {"value": value}))
        return None
    return days


def parse(table: Table, progress: Progress | None = None, *, only_school: str | None = None) -> tuple[Parsed,
                                                                                                      list[RowError]]:
    """Check every row (no store access); ``only_school`` limits the file to one school's rows. Every problem of a
    row is reported, not only the first."""
    errors = check_columns(table, REQUIRED_COLUMNS, COLUMNS)
    parsed = Parsed()
    if errors:
        return parsed, errors
    total = len(table.rows)
    for i, (row, raw) in enumerate(table.rows, start=1):
        if progress and (i % 500 == 0 or i == total):
            progress(i, total)
        record = str(raw.get("record") or "").lower()
        if record not in RECORDS:
            errors.append(RowError(row, "record", "missing" if not record else "choice",
                                   {"value": raw.get("record"), "choices": ", ".join(RECORDS)}))
            continue
        cells = {k: _time_cell(v) if k in ("hours_start", "hours_end") else v for k, v in raw.items()}
        before = len(errors)
        obj, row_errors = validate_row(MODELS[record], row, cells, record, fallback_column="name")
        errors += row_errors
        bad_cells = {e.column for e in row_errors}
        school = cells.get("school")
        if only_school is not None and record in RECORDS:
            if school is None:
                errors.append(RowError(row, "district" if cells.get("district") else "school", "shared_holiday"))
            elif school != only_school:
                errors.append(RowError(row, "school", "other_school", {"value": school, "school": only_school}))
        key: tuple[Any, ...] | None = None
        if record in ("school", "day"):
            days = None if "days" in bad_cells else _days(row, "days", cells.get("days"), errors)
            day = None if "day" in bad_cells else _days(row, "day", cells.get("day"), errors, one=True)
            hours = None if bad_cells & {"hours_start", "hours_end"} else _hours(
                row, cells.get("hours_start"), cells.get("hours_end"), errors)
            if obj is not None and len(errors) == before:
                if isinstance(obj, SchoolRow):
                    key = ("school", obj.school)
                    parsed.schools[obj.school] = {"timezone": obj.timezone, "school_days": days, "hours": hours}
                elif isinstance(obj, DayRow) and day is not None and hours is not None:
                    key = ("day", obj.school, int(day))
                    parsed.days[(obj.school, int(day))] = hours
        elif isinstance(obj, HolidayRow):
            ends = obj.ends_on or obj.starts_on
            if obj.school and obj.district:
                errors.append(RowError(row, "district", "holiday_scope"))
            elif ends < obj.starts_on:
                errors.append(RowError(row, "ends_on", "holiday_order",
                                       {"start": obj.starts_on.isoformat(), "end": ends.isoformat()}))
            elif (ends - obj.starts_on).days >= MAX_HOLIDAY_DAYS:
                errors.append(RowError(row, "ends_on", "holiday_too_long", {"days": MAX_HOLIDAY_DAYS}))
            elif len(errors) == before:
                key = ("holiday", obj.school, obj.district, obj.starts_on, obj.name)
                parsed.holidays[(obj.school, obj.district, obj.starts_on, obj.name)] = ends
        if key is None:
            continue
        if key in parsed.rows:
            errors.append(RowError(row, "record", "duplicate", {"other": parsed.rows[key]}))
        else:
            parsed.rows[key] = row
    return parsed, errors


def check_references(session: Session, table: Table, parsed: Parsed) -> list[RowError]:
    """Every school and district named must be registered."""
    schools = set(session.scalars(select(School.id)))
    districts = set(session.scalars(select(District.id)))
    errors = []
    for row, cells in table.rows:
        if cells.get("school") and cells["school"] not in schools and str(cells.get("record")).lower() in RECORDS:
            errors.append(RowError(row, "school", "unknown_school", {"value": cells["school"]}))
        if cells.get("district") and cells["district"] not in districts and str(cells.get("record")).lower() == \
                "holiday":
            errors.append(RowError(row, "district", "unknown_district", {"value": cells["district"]}))
    return errors


def write(session: Session, parsed: Parsed, result: ImportResult) -> None:
    """Apply the checked rows in the caller's transaction, counting what changed."""
    result.created = {"holidays": 0}
    result.updated = {"schools": 0, "holidays": 0}
    touched = set(parsed.schools) | {s for s, _ in parsed.days}
    stored = {s.id: s for s in session.scalars(select(School).where(School.id.in_(sorted(touched))))}
    for school_id in sorted(touched):
        school = stored[school_id]
        values = parsed.schools.get(school_id, {})
        wanted: dict[str, Any] = {}
        if values.get("timezone"):
            wanted["timezone"] = values["timezone"]
        if values.get("school_days"):
            wanted["school_days"] = values["school_days"]
        if values.get("hours"):
            wanted["hours_start"], wanted["hours_end"] = values["hours"]
        day_hours = dict(school.day_hours or {})
        for (s, day), hours in parsed.days.items():
            if s == school_id:
                day_hours[str(day)] = list(hours)
        if day_hours != (school.day_hours or {}):
            wanted["day_hours"] = day_hours
        changed = {k: v for k, v in wanted.items() if getattr(school, k) != v}
        for k, v in changed.items():
            setattr(school, k, v)
        if changed:
            result.updated["schools"] += 1
        else:  # counted in rows, like the holidays: the school's row and its weekday rows
            result.unchanged += (school_id in parsed.schools) + sum(1 for s, _ in parsed.days if s == school_id)
    existing = {(h.school_id, h.district_id, h.starts_on, h.name): h for h in session.scalars(select(Holiday))}
    for key, ends in parsed.holidays.items():
        holiday = existing.get(key)
        if holiday is None:
            session.add(Holiday(school_id=key[0], district_id=key[1], starts_on=key[2], ends_on=ends, name=key[3]))
            result.created["holidays"] += 1
        elif holiday.ends_on != ends:
            holiday.ends_on = ends
            result.updated["holidays"] += 1
        else:
            result.unchanged += 1


def import_timetable(session: Session, path: Path | str, data: bytes | None = None, *, actor: str = "import",
                     progress: Progress | None = None, only_school: str | None = None) -> ImportResult:
    """Check the whole file, then apply it in one transaction; with any error nothing is written."""
    result = ImportResult()
    if (table := load_table(path, data, result)) is None:
        return result
    parsed, errors = parse(table, progress, only_school=only_school)
    with session.begin():
        errors += check_references(session, table, parsed)
        if errors:
            result.errors = sorted(errors, key=lambda e: (e.row or 0, e.column or "", e.code))
            return result
        write(session, parsed, result)
        if result.changed:
            session.add(AuditLog(actor=actor, action="timetable.import", target=f"file:{Path(path).name}",
                                 detail={"rows": result.rows, "created": result.created, "updated": result.updated,
                                         "school": only_school}))
    return result



EXAMPLE: list[dict[str, Any]] = [
    {"record": "school", "school": "thcs-le-loi", "timezone": "Asia/Ho_Chi_Minh", "days": "t2-t7",
     "hours_start": "07:00", "hours_end": "17:00"},
    {"record": "day", "school": "thcs-le-loi", "day": "t7", "hours_start": "07:00", "hours_end": "11:30"},
    {"record": "holiday", "starts_on": "2027-02-05", "ends_on": "2027-02-13", "name": "Tết Nguyên Đán"},
    {"record": "holiday", "district": "q1", "starts_on": "30/04/2027", "ends_on": "01/05/2027",
     "name": "Giải phóng miền Nam và Quốc tế Lao động"},
    {"record": "holiday", "school": "thcs-le-loi", "starts_on": "2026-11-20", "name": "Ngày Nhà giáo Việt Nam"},
]


def write_templates(directory: Path) -> list[Path]:
    """docs/templates/timetable-template.{csv,xlsx}: ``python -m controller.energy.timetable_import docs/templates``."""
    from ..audit.template_files import write_template

    return write_template(directory, "timetable-template", COLUMNS, EXAMPLE)


if __name__ == "__main__":
    import sys

    for written_path in write_templates(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/templates")):
        print(written_path)
