"""The console's overview page: per district and school, devices by kind and health, rooms with problems and
open incidents; then the devices that need attention."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from classfleet_wire import lookup

from ..api.deps import NowDep, SessionDep, SettingsDep
from ..auth import Principal
from ..store import queries
from ..store.health import health_expr
from ..store.models import DEVICE_KINDS, HEALTH_STATES, Device, DeviceState, District, Incident, Room, School
from .common import LangDep, render, school_zones, viewer_zone
from .login import ConsolePrincipal

router = APIRouter(include_in_schema=False)
PROBLEMS = ("faulty", "offline", "unreachable_upstream", "degraded")
MAX_PROBLEMS = 500
MAX_ROOMS_NAMED = 6  # rooms with problems named under a school; the school page lists them all


@dataclass
class Tally:
    """Counts for a school or a district: devices by health and by kind × health, rooms with problems,
    open incidents."""

    health: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, dict[str, int]] = field(default_factory=dict)
    problem_rooms: int = 0
    incidents: int = 0
    schools: int = 0

    @property
    def total(self) -> int:
        """Devices counted."""
        return sum(self.health.values())

    @property
    def problem_devices(self) -> int:
        """Devices in a state that needs attention."""
        return sum(self.health.get(h, 0) for h in PROBLEMS)

    def add_devices(self, kind: str, health: str, n: int) -> None:
        """Count ``n`` devices of a kind in a health state."""
        self.health[health] = self.health.get(health, 0) + n
        by_health = self.kinds.setdefault(kind, {})
        by_health[health] = by_health.get(health, 0) + n

    def add(self, other: Tally) -> None:
        """Fold a school's tally into a district's."""
        for kind, by_health in other.kinds.items():
            for health, n in by_health.items():
                self.add_devices(kind, health, n)
        self.problem_rooms += other.problem_rooms
        self.incidents += other.incidents
        self.schools += 1

    def kind_rows(self) -> list[dict[str, Any]]:
        """Per device kind (in the inventory's order): total and the counts of problem states."""
        order = {k: i for i, k in enumerate(DEVICE_KINDS)}
        return [{"kind": kind, "total": sum(by_health.values()),
                 "problems": [(h, by_health[h]) for h in PROBLEMS if by_health.get(h)]}
                for kind, by_health in sorted(self.kinds.items(), key=lambda kv: (order.get(kv[0], 99), kv[0]))]


def _tallies(session: Session, principal: Principal, now: Any, offline_after_s: float
             ) -> tuple[dict[str, Tally], dict[str, list[tuple[int, str]]]]:
    """Per school: the tally, and its rooms with a device in a problem state (id, name), counted in SQL."""
    health = health_expr(now, offline_after_s).label("health")
    devices = (select(Device.school_id, Device.kind, Device.room_id, health)
               .outerjoin(DeviceState, DeviceState.device_id == Device.id)
               .where(principal.scope(Device.school_id)).subquery())
    tallies: dict[str, Tally] = defaultdict(Tally)
    for school_id, kind, state, n in session.execute(
            select(devices.c.school_id, devices.c.kind, devices.c.health, func.count())
            .group_by(devices.c.school_id, devices.c.kind, devices.c.health)):
        tallies[school_id].add_devices(kind, state, n)
    rooms: dict[str, list[tuple[int, str]]] = defaultdict(list)
    problem_rooms = select(devices.c.room_id).where(devices.c.health.in_(PROBLEMS),
                                                    devices.c.room_id.is_not(None)).distinct().subquery()
    for room_id, school_id, name in session.execute(
            select(Room.id, Room.school_id, Room.name).where(Room.id.in_(select(problem_rooms.c.room_id)))
            .order_by(Room.school_id, Room.code)):
        rooms[school_id].append((room_id, name))
        tallies[school_id].problem_rooms += 1
    for school_id, n in session.execute(
            select(Incident.school_id, func.count()).where(principal.scope(Incident.school_id),
                                                           Incident.state != "resolved")
            .group_by(Incident.school_id)):
        tallies[school_id].incidents = n
    return tallies, rooms


def _problem_devices(session: Session, principal: Principal, now: Any, offline_after_s: float,
                     school: str | None, lang: str) -> list[dict[str, Any]]:
    """The devices that need attention, worst first, with their room and open faults."""
    health = health_expr(now, offline_after_s)
    rank = case({h: i for i, h in enumerate(PROBLEMS)}, value=health)
    query = (queries.devices_query(now, offline_after_s, queries.DeviceFilter(scope=principal.schools,
                                                                             school=school))
             .where(health.in_(PROBLEMS)).order_by(None).order_by(rank, Device.school_id, Device.uid)
             .limit(MAX_PROBLEMS))
    rows = session.execute(query).all()
    ids = [d.id for d, _, _ in rows]
    faults: dict[int, list[str]] = defaultdict(list)
    rooms: dict[int, str] = {}
    if ids:
        for device_id, code in session.execute(
                select(Incident.device_id, Incident.code).where(Incident.device_id.in_(ids),
                                                                Incident.state != "resolved")):
            faults[device_id].append(lookup(code).text(lang))
        room_ids = {d.room_id for d, _, _ in rows if d.room_id}
        rooms = dict(session.execute(select(Room.id, Room.name).where(Room.id.in_(room_ids))).tuples().all())
    return [{"id": d.id, "school": d.school_id, "uid": d.uid, "kind": d.kind, "health": h,
             "room": rooms.get(d.room_id) if d.room_id else None, "room_id": d.room_id,
             "faults": faults.get(d.id, []), "last_seen": st.last_seen if st else None} for d, st, h in rows]


@router.get("/console", response_class=HTMLResponse)
def overview(request: Request, session: SessionDep, settings: SettingsDep, now: NowDep, principal: ConsolePrincipal,
             lang: LangDep, school: Annotated[str | None, Query(max_length=64)] = None) -> Any:
    """Districts with their totals, each with its schools; schools of no district last; then the devices with
    problems (worst first). A district-scoped user sees only their district's schools."""
    tallies, problem_rooms = _tallies(session, principal, now, settings.offline_after_s)
    schools = session.scalars(select(School).where(principal.scope(School.id)).order_by(School.name)).all()
    district_ids = {s.district_id for s in schools if s.district_id}
    districts = session.scalars(select(District).where(District.id.in_(district_ids))
                                .order_by(District.name)).all() if district_ids else []
    groups = []
    for district in [*districts, None]:
        members = [s for s in schools if s.district_id == (district.id if district else None)]
        if not members:
            continue
        total = Tally()
        rows = []
        for s in members:
            tally = tallies.get(s.id, Tally())
            total.add(tally)
            rooms = problem_rooms.get(s.id, [])
            rows.append({"school": s, "tally": tally, "rooms": rooms[:MAX_ROOMS_NAMED],
                         "more_rooms": max(len(rooms) - MAX_ROOMS_NAMED, 0)})
        groups.append({"district": district, "total": total, "schools": rows})
    zones = school_zones(session, principal)
    names = {s.id: s.name for s in schools}
    problems = _problem_devices(session, principal, now, settings.offline_after_s, school, lang)
    for p in problems:
        p["school_name"] = names.get(p["school"], p["school"])
    return render(request, "overview.html", lang, principal, page_zone=viewer_zone(zones), zones=zones,
                  healths=HEALTH_STATES, problem_healths=PROBLEMS, selected=names.get(school, school) if school
                  else None, groups=groups, problems=problems)
