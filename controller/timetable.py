"""School hours: a school's timetable (school days, daily hours, per-weekday exceptions, holidays) in its own
time zone, turned into UTC intervals. The one place that knows when a school is in session: the availability
report, the after-hours energy report and the end-of-day command schedules all ask here.

Weekdays are ISO numbers (Monday 1 … Sunday 7). Vietnamese write them "thứ 2" … "thứ 7" and "chủ nhật" (CN),
so ``parse_days`` reads ``t2-t6`` as well as ``mon-fri``. A holiday covers whole local days, ``ends_on``
included; a day that is not a school day, or is a holiday, is after-hours from midnight to midnight.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from .store.models import Holiday, School

Interval = tuple[float, float]  # UTC epoch seconds, [start, end)

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # ISO 1..7
VI_DAY_NAMES = ("t2", "t3", "t4", "t5", "t6", "t7", "cn")
DEFAULT_DAYS = "12345"
TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MAX_DAYS = 400  # longest period a timetable is expanded over (reports are bounded the same way)


class TimetableError(ValueError):
    """A timetable value that cannot be used; ``code`` is an i18n key, ``values`` fill its text."""

    def __init__(self, code: str, **values: object) -> None:
        super().__init__(f"{code}: {values}")
        self.code = code
        self.values = values


def _day_number(token: str) -> int:
    if token in DAY_NAMES:
        return DAY_NAMES.index(token) + 1
    if token in VI_DAY_NAMES:
        return VI_DAY_NAMES.index(token) + 1
    raise TimetableError("days", value=token)


def parse_days(text: str) -> str:
    """``mon-fri``, ``T2-T7``, ``thứ 2 - thứ 6``, ``mon,tue,sat`` → sorted ISO digits (``12345``). Bare numbers
    are refused: "2" is Monday to a Vietnamese reader and Tuesday to ISO."""
    norm = text.strip().lower().replace("thứ", "t").replace("chủ nhật", "cn").replace("chu nhat", "cn")
    norm = re.sub(r"\s+", "", norm)
    days: set[int] = set()
    for part in filter(None, re.split(r"[,;]", norm)):
        if "-" in part:
            first, last = (_day_number(x) for x in part.split("-", 1))
            if last < first:
                raise TimetableError("days", value=text)
            days.update(range(first, last + 1))
        else:
            days.add(_day_number(part))
    if not days:
        raise TimetableError("days", value=text)
    return "".join(str(d) for d in sorted(days))


def day_names(days: str) -> list[str]:
    """ISO digits → ``["mon", …]`` (how the API shows them)."""
    return [DAY_NAMES[int(c) - 1] for c in days]


def parse_time(text: str) -> dt.time:
    """``HH:MM`` (24 h)."""
    if not TIME_RE.fullmatch(text or ""):
        raise TimetableError("time", value=text)
    return dt.time.fromisoformat(text)


def check_hours(start: str, end: str) -> tuple[dt.time, dt.time]:
    """A day's opening and closing time; school does not run past midnight."""
    a, b = parse_time(start), parse_time(end)
    if b <= a:
        raise TimetableError("hours_order", start=start, end=end)
    return a, b


@dataclass(frozen=True)
class HolidaySpan:
    """Whole local days off, ``ends_on`` included."""

    starts_on: dt.date
    ends_on: dt.date
    name: str


@dataclass(frozen=True)
class Timetable:
    """When one school is in session."""

    zone: ZoneInfo
    hours: tuple[dt.time, dt.time]
    days: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    day_hours: Mapping[int, tuple[dt.time, dt.time]] = field(default_factory=dict)
    holidays: tuple[HolidaySpan, ...] = ()

    @classmethod
    def of(cls, school: School, holidays: Iterable[HolidaySpan] = ()) -> Timetable:
        """The timetable stored for ``school`` (with the holidays that apply to it)."""
        overrides = {int(k): check_hours(*v) for k, v in (school.day_hours or {}).items()}
        return cls(ZoneInfo(school.timezone), check_hours(school.hours_start, school.hours_end),
                   frozenset(int(c) for c in (school.school_days or DEFAULT_DAYS)), overrides,
                   tuple(sorted(holidays, key=lambda h: h.starts_on)))

    def holiday(self, day: dt.date) -> str | None:
        """The name of the holiday on ``day``, if any."""
        for h in self.holidays:
            if h.starts_on <= day <= h.ends_on:
                return h.name
        return None

    def is_school_day(self, day: dt.date) -> bool:
        """A teaching weekday that is no holiday."""
        return day.isoweekday() in self.days and self.holiday(day) is None

    def hours_on(self, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        """School hours of a local day as aware datetimes, or None on a day off."""
        if not self.is_school_day(day):
            return None
        opens, closes = self.day_hours.get(day.isoweekday(), self.hours)
        return dt.datetime.combine(day, opens, self.zone), dt.datetime.combine(day, closes, self.zone)

    def school_hours(self, start: dt.datetime, end: dt.datetime) -> list[Interval]:
        """School-hours intervals within ``[start, end)``, sorted, in UTC epoch seconds."""
        if end - start > dt.timedelta(days=MAX_DAYS):
            raise TimetableError("period_too_long", days=MAX_DAYS)
        lo, hi = start.timestamp(), end.timestamp()
        day = start.astimezone(self.zone).date() - dt.timedelta(days=1)
        last = end.astimezone(self.zone).date()
        out: list[Interval] = []
        while day <= last:
            hours = self.hours_on(day)
            if hours is not None:
                a, b = max(hours[0].timestamp(), lo), min(hours[1].timestamp(), hi)
                if b > a:
                    out.append((a, b))
            day += dt.timedelta(days=1)
        return out

    def after_hours(self, start: dt.datetime, end: dt.datetime) -> list[Interval]:
        """Everything in ``[start, end)`` that is not school hours (nights, days off, holidays)."""
        return subtract([(start.timestamp(), end.timestamp())], self.school_hours(start, end))


def holidays_for(session: Session, schools: Sequence[School]) -> dict[str, list[HolidaySpan]]:
    """The holidays of each school: its own, its district's and every school's."""
    districts = {s.district_id for s in schools if s.district_id}
    rows = session.execute(select(Holiday.school_id, Holiday.district_id, Holiday.starts_on, Holiday.ends_on,
                                  Holiday.name).where(or_(
        Holiday.school_id.in_([s.id for s in schools]), Holiday.district_id.in_(sorted(districts)),
        Holiday.school_id.is_(None) & Holiday.district_id.is_(None)))).all()
    out: dict[str, list[HolidaySpan]] = {s.id: [] for s in schools}
    for s in schools:
        for r in rows:
            if r.school_id == s.id or (r.district_id is not None and r.district_id == s.district_id) or (
                    r.school_id is None and r.district_id is None):
                out[s.id].append(HolidaySpan(r.starts_on, r.ends_on, r.name))
    return out


def load_timetables(session: Session, schools: Sequence[School]) -> dict[str, Timetable]:
    """Each school's timetable, holidays included, by school id."""
    holidays = holidays_for(session, schools)
    return {s.id: Timetable.of(s, holidays[s.id]) for s in schools}


# --- interval arithmetic on sorted lists of [start, end) ---

def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with overlapping or touching intervals joined."""
    merged: list[list[float]] = []
    for a, b in sorted(intervals):
        if b <= a:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def intersect(xs: Sequence[Interval], ys: Sequence[Interval]) -> list[Interval]:
    """The intersection of two merged lists."""
    out: list[Interval] = []
    i = j = 0
    while i < len(xs) and j < len(ys):
        a, b = max(xs[i][0], ys[j][0]), min(xs[i][1], ys[j][1])
        if b > a:
            out.append((a, b))
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return out


def subtract(xs: Sequence[Interval], ys: Sequence[Interval]) -> list[Interval]:
    """``xs`` without ``ys`` (both merged)."""
    out: list[Interval] = []
    for a, b in xs:
        cursor = a
        for c, d in ys:
            if d <= cursor or c >= b:
                continue
            if c > cursor:
                out.append((cursor, c))
            cursor = max(cursor, d)
        if cursor < b:
            out.append((cursor, b))
    return out


def total(intervals: Iterable[Interval]) -> float:
    """Summed length in seconds."""
    return sum(b - a for a, b in intervals)
