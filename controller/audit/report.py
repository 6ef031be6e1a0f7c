"""The audit report (issue 7): the equipment plan against what is registered, seen and healthy.

Per school, per district and in total. A plan line is (school, room kind, device kind, planned); a device
counts on the line of its school, its room's kind and its kind. Devices with no room yet (unassigned) first
fill the shortfalls of their school's lines of the same device kind, in room-kind order; only what is left
is unplanned. Retired devices are not counted. A school's camera system (its NVRs and cameras together)
counts once: registered if any of them is, seen or healthy if any of them is.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, Field
from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from ..store.health import health_expr
from ..store.models import ROOM_KINDS, Device, DeviceState, District, EquipmentPlan, Room, School
from ..store.queries import in_scope

CAMERA_KINDS = ("nvr", "camera")
ROOM_ORDER = {k: i for i, k in enumerate(ROOM_KINDS)}


class KindCounts(BaseModel):
    """Planned, registered, seen and healthy for one reported kind (laptops, air conditioners, camera systems)."""

    planned: int = 0
    registered: int = 0
    seen: int = 0
    healthy: int = 0

    def add(self, other: KindCounts) -> None:
        """Accumulate a school's counts into a district's or the total."""
        self.planned += other.planned
        self.registered += other.registered
        self.seen += other.seen
        self.healthy += other.healthy


class Counts(BaseModel):
    """The figures of one scope: plan comparison, what the department reports, and trouble counts."""

    planned: int = 0
    registered: int = 0
    seen: int = Field(default=0, description="registered devices seen in the last N days")
    healthy: int = Field(default=0, description="registered devices whose health is ok now")
    missing: int = Field(default=0, description="sum over plan lines of planned minus registered, where positive")
    unplanned: int = Field(default=0, description="registered devices on no plan line")
    long_unseen: int = Field(default=0, description="seen once, but not in the last N days")
    never_seen: int = 0
    warranty_ending: int = 0
    smart_rooms_l1: int = 0
    smart_rooms_l2: int = 0
    online_meeting_rooms: int = 0
    laptops: KindCounts = Field(default_factory=KindCounts)
    air_conditioners: KindCounts = Field(default_factory=KindCounts)
    camera_systems: KindCounts = Field(default_factory=KindCounts)

    def add(self, other: Counts) -> None:
        """Accumulate a school's counts into a district's or the total."""
        for name in ("planned", "registered", "seen", "healthy", "missing", "unplanned", "long_unseen",
                     "never_seen", "warranty_ending", "smart_rooms_l1", "smart_rooms_l2", "online_meeting_rooms"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("laptops", "air_conditioners", "camera_systems"):
            getattr(self, name).add(getattr(other, name))


class PlanLine(BaseModel):
    """One school × room kind × device kind line; ``room_kind`` None is devices with no room left over."""

    room_kind: str | None
    device_kind: str
    planned: int
    registered: int
    seen: int
    healthy: int
    missing: int
    unplanned: int


class DeviceItem(BaseModel):
    """A device named in one of the report's lists."""

    school: str
    uid: str
    kind: str
    room: str | None
    room_kind: str | None
    serial: str | None
    asset_tag: str | None
    last_seen: dt.datetime | None
    warranty_end: dt.date | None


class MissingItem(BaseModel):
    """A plan line with fewer devices registered than planned."""

    school: str
    room_kind: str
    device_kind: str
    planned: int
    registered: int
    missing: int


class SchoolReport(BaseModel):
    """One school: its counts and its lines."""

    id: str
    name: str
    district_id: str | None
    counts: Counts
    lines: list[PlanLine]


class DistrictReport(BaseModel):
    """One district (``id`` None: schools with no district) and the sum of its schools."""

    id: str | None
    name: str
    schools: int
    counts: Counts


class AuditReport(BaseModel):
    """The whole report: totals, districts, schools and the lists technicians act on."""

    generated_at: dt.datetime
    days: int
    warranty_days: int
    totals: Counts
    districts: list[DistrictReport]
    schools: list[SchoolReport]
    missing: list[MissingItem]
    unplanned: list[DeviceItem]
    long_unseen: list[DeviceItem]
    warranty_ending: list[DeviceItem]


@dataclass
class _Dev:
    """A registered device as the report needs it."""

    item: DeviceItem
    seen: bool
    healthy: bool


def _line_key(room_kind: str | None, device_kind: str) -> tuple[int, str, str]:
    return (ROOM_ORDER.get(room_kind or "", len(ROOM_ORDER)), room_kind or "", device_kind)


def _school_report(school: School, plan: dict[tuple[str, str], int], devices: list[_Dev],
                   rooms: dict[str, int], now: dt.datetime, days: int, warranty_days: int,
                   lists: AuditReport) -> SchoolReport:
    """Compare one school's devices with its plan lines and fill the report's lists."""
    cutoff = now - dt.timedelta(days=days)
    today = now.date()
    warranty_until = today + dt.timedelta(days=warranty_days)
    by_line: dict[tuple[str | None, str], list[_Dev]] = defaultdict(list)
    for d in sorted(devices, key=lambda d: d.item.uid):
        by_line[(d.item.room_kind, d.item.kind)].append(d)
    # Unassigned devices fill the shortfalls of their kind's planned lines first.
    for (room_kind, kind), devs in list(by_line.items()):
        if room_kind is not None:
            continue
        for (plan_room, plan_kind), planned in sorted(plan.items(), key=lambda kv: _line_key(*kv[0])):
            if plan_kind != kind or not devs:
                continue
            short = planned - len(by_line.get((plan_room, plan_kind), []))
            if short > 0:
                by_line[(plan_room, plan_kind)] = by_line.get((plan_room, plan_kind), []) + devs[:short]
                devs = devs[short:]
        by_line[(None, kind)] = devs
    counts = Counts(smart_rooms_l1=rooms.get("smart_l1", 0), smart_rooms_l2=rooms.get("smart_l2", 0),
                    online_meeting_rooms=rooms.get("online_meeting", 0))
    lines: list[PlanLine] = []
    for key in sorted(set(plan) | {k for k, v in by_line.items() if v}, key=lambda k: _line_key(*k)):
        room_kind, kind = key
        devs = by_line.get(key, [])
        planned = plan.get((room_kind, kind), 0) if room_kind is not None else 0
        unplanned = len(devs) if planned == 0 else 0
        line = PlanLine(room_kind=room_kind, device_kind=kind, planned=planned, registered=len(devs),
                        seen=sum(d.seen for d in devs), healthy=sum(d.healthy for d in devs),
                        missing=max(planned - len(devs), 0), unplanned=unplanned)
        lines.append(line)
        if line.missing and room_kind is not None:
            lists.missing.append(MissingItem(school=school.id, room_kind=room_kind, device_kind=kind,
                                             planned=planned, registered=len(devs), missing=line.missing))
        if unplanned:
            lists.unplanned.extend(d.item for d in devs)
        for target, name in ((counts, None), (counts.laptops, "laptop"), (counts.air_conditioners, "air_conditioner")):
            if name is None or name == kind:
                target.planned += planned
                target.registered += line.registered
                target.seen += line.seen
                target.healthy += line.healthy
        counts.missing += line.missing
        counts.unplanned += unplanned
    cams = [d for d in devices if d.item.kind in CAMERA_KINDS]
    counts.camera_systems = KindCounts(
        planned=int(any(p > 0 for (_, k), p in plan.items() if k in CAMERA_KINDS)), registered=int(bool(cams)),
        seen=int(any(d.seen for d in cams)), healthy=int(any(d.healthy for d in cams)))
    for d in sorted(devices, key=lambda d: d.item.uid):
        if d.item.last_seen is None:
            counts.never_seen += 1
        elif d.item.last_seen < cutoff:
            counts.long_unseen += 1
            lists.long_unseen.append(d.item)
        if d.item.warranty_end is not None and today <= d.item.warranty_end <= warranty_until:
            counts.warranty_ending += 1
            lists.warranty_ending.append(d.item)
    return SchoolReport(id=school.id, name=school.name, district_id=school.district_id, counts=counts, lines=lines)


def build_report(session: Session, now: dt.datetime, offline_after_s: float, *, days: int = 30,
                 warranty_days: int = 90, school: str | None = None, district: str | None = None,
                 visible: frozenset[str] | None = None) -> AuditReport:
    """Read plan, rooms, devices and their state, and build the report (optionally for one school or district;
    ``visible`` restricts it to the caller's schools)."""
    school_query = select(School).where(in_scope(School.id, visible)).order_by(School.id)
    if school:
        school_query = school_query.where(School.id == school)
    if district:
        school_query = school_query.where(School.district_id == district)
    schools = list(session.scalars(school_query))
    ids = [s.id for s in schools]
    scope = School.id.in_(ids) if (school or district or visible is not None) else true()

    plans: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
    for p in session.execute(select(EquipmentPlan.school_id, EquipmentPlan.room_kind, EquipmentPlan.device_kind,
                                    EquipmentPlan.planned).join(School, School.id == EquipmentPlan.school_id)
                             .where(scope)):
        plans[p.school_id][(p.room_kind, p.device_kind)] = p.planned
    rooms: dict[str, dict[str, int]] = defaultdict(dict)
    for r in session.execute(select(Room.school_id, Room.kind, func.count()).join(School, School.id == Room.school_id)
                             .where(scope).group_by(Room.school_id, Room.kind)):
        rooms[r[0]][r[1]] = int(r[2])
    cutoff = now - dt.timedelta(days=days)
    health = health_expr(now, offline_after_s).label("health")
    devices: dict[str, list[_Dev]] = defaultdict(list)
    query = (select(Device.school_id, Device.uid, Device.kind, Device.serial, Device.asset_tag, Device.warranty_end,
                    Room.code, Room.kind.label("room_kind"), DeviceState.last_seen, health)
             .join(School, School.id == Device.school_id)
             .outerjoin(Room, Room.id == Device.room_id)
             .outerjoin(DeviceState, DeviceState.device_id == Device.id)
             .where(scope, Device.lifecycle != "retired"))
    for r in session.execute(query):
        item = DeviceItem(school=r.school_id, uid=r.uid, kind=r.kind, room=r.code, room_kind=r.room_kind,
                          serial=r.serial, asset_tag=r.asset_tag, last_seen=r.last_seen, warranty_end=r.warranty_end)
        devices[r.school_id].append(_Dev(item, seen=r.last_seen is not None and r.last_seen >= cutoff,
                                         healthy=r.health == "ok"))

    report = AuditReport(generated_at=now, days=days, warranty_days=warranty_days, totals=Counts(), districts=[],
                         schools=[], missing=[], unplanned=[], long_unseen=[], warranty_ending=[])
    for s in schools:
        report.schools.append(_school_report(s, plans.get(s.id, {}), devices.get(s.id, []), rooms.get(s.id, {}),
                                             now, days, warranty_days, report))
    names = dict(session.execute(select(District.id, District.name)).tuples().all())
    by_district: dict[str | None, DistrictReport] = {}
    for sr in report.schools:
        dr = by_district.setdefault(sr.district_id, DistrictReport(
            id=sr.district_id, name=names.get(sr.district_id, sr.district_id or "") if sr.district_id else "",
            schools=0, counts=Counts()))
        dr.schools += 1
        dr.counts.add(sr.counts)
        report.totals.add(sr.counts)
    report.districts = sorted(by_district.values(), key=lambda d: (d.id is None, d.id or ""))
    return report


def flat_summary(report: AuditReport) -> Iterable[tuple[str, str | None, str, Counts]]:
    """(level, id, name, counts) rows: the total, each district, each school — what the CSV and summary sheet hold."""
    yield "total", None, "", report.totals
    for d in report.districts:
        yield "district", d.id, d.name, d.counts
    for s in report.schools:
        yield "school", s.id, s.name, s.counts
