"""Availability over time: the share of school hours each device was working, per school and room kind,
with incidents per device and mean time to repair, from the history the store keeps.

A device counts as working from each sign of life it gave (a live heartbeat or status, or a poll
that reached it) for ``offline_after`` seconds, the same rule the live health uses. School hours
are the school's daily hours on Monday to Friday in the school's own time zone.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from ..store.models import Device, Incident, Observation, Room, School
from ..store.queries import in_scope

Interval = tuple[float, float]


class AvailabilityRow(BaseModel):
    """One school × room kind."""

    school: str
    room_kind: str
    devices: int
    school_hours: float
    availability: float  # 0..1, mean over the devices
    incidents: int
    incidents_per_device: float
    mttr_hours: float | None


class AvailabilityReport(BaseModel):
    """The period and its rows."""

    start: dt.datetime
    end: dt.datetime
    rows: list[AvailabilityRow]


def school_hours(school: School, start: dt.datetime, end: dt.datetime) -> list[Interval]:
    """Monday–Friday school hours between ``start`` and ``end``, as UTC epoch intervals."""
    zone = ZoneInfo(school.timezone)
    opens = dt.time.fromisoformat(school.hours_start)
    closes = dt.time.fromisoformat(school.hours_end)
    day = start.astimezone(zone).date() - dt.timedelta(days=1)
    out = []
    while day <= end.astimezone(zone).date():
        if day.weekday() < 5:
            a = dt.datetime.combine(day, opens, zone).timestamp()
            b = dt.datetime.combine(day, closes, zone).timestamp()
            a, b = max(a, start.timestamp()), min(b, end.timestamp())
            if b > a:
                out.append((a, b))
        day += dt.timedelta(days=1)
    return out


def _merge(intervals: list[Interval]) -> list[Interval]:
    merged: list[list[float]] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def _overlap(xs: list[Interval], ys: list[Interval]) -> float:
    """Total length of the intersection of two sorted, merged interval lists."""
    total, i, j = 0.0, 0, 0
    while i < len(xs) and j < len(ys):
        a, b = max(xs[i][0], ys[j][0]), min(xs[i][1], ys[j][1])
        if b > a:
            total += b - a
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return total


def build_availability(session: Session, start: dt.datetime, end: dt.datetime, offline_after_s: float, *,
                       school: str | None = None, visible: frozenset[str] | None = None) -> AvailabilityReport:
    """The report for ``[start, end)``."""
    schools = {s.id: s for s in session.scalars(select(School).where(in_scope(School.id, visible)))}
    if school is not None:
        schools = {k: v for k, v in schools.items() if k == school}
    devices = session.execute(
        select(Device.id, Device.school_id, func.coalesce(Room.kind, "unassigned"))
        .outerjoin(Room, Room.id == Device.room_id)
        .where(Device.school_id.in_(list(schools)), Device.lifecycle == "active")
    ).all()
    live = or_(and_(Observation.kind != "poll", Observation.replayed.is_(False)),
               and_(Observation.kind == "poll", Observation.data["reachable"].as_boolean().is_(True)))
    signs: dict[int, list[Interval]] = defaultdict(list)
    for device_id, at in session.execute(
        select(Observation.device_id, Observation.received_at)
        .where(Observation.device_id.in_([d[0] for d in devices]), live,
               Observation.received_at >= start - dt.timedelta(seconds=offline_after_s),
               Observation.received_at < end)
    ):
        t = at.timestamp()
        signs[device_id].append((t, t + offline_after_s))
    incidents = session.execute(
        select(Incident.device_id, Incident.opened_at, Incident.resolved_at)
        .where(Incident.device_id.in_([d[0] for d in devices]), Incident.opened_at >= start, Incident.opened_at < end)
    ).all()
    by_device_incidents: dict[int, list[tuple[dt.datetime, dt.datetime | None]]] = defaultdict(list)
    for device_id, opened, resolved in incidents:
        by_device_incidents[device_id].append((opened, resolved))
    hours = {sid: school_hours(s, start, end) for sid, s in schools.items()}
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for device_id, school_id, room_kind in devices:
        groups[(school_id, room_kind)].append(device_id)
    rows = []
    for (school_id, room_kind), ids in sorted(groups.items()):
        window = hours[school_id]
        total = sum(b - a for a, b in window)
        shares = [(_overlap(_merge(signs[i]), window) / total) if total else 0.0 for i in ids]
        found = [x for i in ids for x in by_device_incidents[i]]
        repairs = [(r - o).total_seconds() / 3600 for o, r in found if r is not None]
        rows.append(AvailabilityRow(
            school=school_id, room_kind=room_kind, devices=len(ids), school_hours=round(total / 3600, 4),
            availability=round(sum(shares) / len(ids), 6), incidents=len(found),
            incidents_per_device=round(len(found) / len(ids), 6),
            mttr_hours=round(sum(repairs) / len(repairs), 4) if repairs else None))
    return AvailabilityReport(start=start, end=end, rows=rows)
