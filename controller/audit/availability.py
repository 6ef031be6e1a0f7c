"""Availability over time: the share of school hours each device was working, per school and room kind,
with incidents per device and mean time to repair, from the history the store keeps.

A device counts as working from each sign of life it gave (a live heartbeat or status, or a poll
that reached it) for ``offline_after`` seconds, the same rule the live health uses. School hours
come from the school's timetable (``controller.timetable``: school days, hours, holidays) in its own time zone.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from ..store.models import Device, Incident, Observation, Room, School
from ..store.queries import in_scope
from ..timetable import Interval, intersect, load_timetables, merge
from ..timetable import total as total_length


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


def working_intervals(session: Session, device_ids: Sequence[int], start: dt.datetime, end: dt.datetime,
                      offline_after_s: float) -> dict[int, list[Interval]]:
    """When each device was working within ``[start, end)``, merged: every sign of life it gave (a live heartbeat
    or status, or a poll that reached it) counts for ``offline_after_s`` seconds (the live health's rule)."""
    live = or_(and_(Observation.kind != "poll", Observation.replayed.is_(False)),
               and_(Observation.kind == "poll", Observation.data["reachable"].as_boolean().is_(True)))
    signs: dict[int, list[Interval]] = defaultdict(list)
    lo, hi = start.timestamp(), end.timestamp()
    for device_id, at in session.execute(
        select(Observation.device_id, Observation.received_at)
        .where(Observation.device_id.in_(list(device_ids)), live,
               Observation.received_at >= start - dt.timedelta(seconds=offline_after_s),
               Observation.received_at < end)
    ):
        t = at.timestamp()
        signs[device_id].append((max(t, lo), min(t + offline_after_s, hi)))
    return {device_id: merge(found) for device_id, found in signs.items()}


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
    working = working_intervals(session, [d[0] for d in devices], start, end, offline_after_s)
    incidents = session.execute(
        select(Incident.device_id, Incident.opened_at, Incident.resolved_at)
        .where(Incident.device_id.in_([d[0] for d in devices]), Incident.opened_at >= start, Incident.opened_at < end)
    ).all()
    by_device_incidents: dict[int, list[tuple[dt.datetime, dt.datetime | None]]] = defaultdict(list)
    for device_id, opened, resolved in incidents:
        by_device_incidents[device_id].append((opened, resolved))
    timetables = load_timetables(session, list(schools.values()))
    hours = {sid: timetables[sid].school_hours(start, end) for sid in schools}
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for device_id, school_id, room_kind in devices:
        groups[(school_id, room_kind)].append(device_id)
    rows = []
    for (school_id, room_kind), ids in sorted(groups.items()):
        window = hours[school_id]
        total = total_length(window)
        shares = [(total_length(intersect(working.get(i, []), window)) / total) if total else 0.0 for i in ids]
        found = [x for i in ids for x in by_device_incidents[i]]
        repairs = [(r - o).total_seconds() / 3600 for o, r in found if r is not None]
        rows.append(AvailabilityRow(
            school=school_id, room_kind=room_kind, devices=len(ids), school_hours=round(total / 3600, 4),
            availability=round(sum(shares) / len(ids), 6), incidents=len(found),
            incidents_per_device=round(len(found) / len(ids), 6),
            mttr_hours=round(sum(repairs) / len(repairs), 4) if repairs else None))
    return AvailabilityReport(start=start, end=end, rows=rows)
