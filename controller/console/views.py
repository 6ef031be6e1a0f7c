"""The console's overview page: per-school health counts and the devices that need attention."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from classfleet_wire import lookup

from ..api.deps import NowDep, SessionDep, SettingsDep
from ..store import queries
from ..store.models import HEALTH_STATES, Incident, Room, School
from .common import LangDep, render
from .login import ConsolePrincipal

router = APIRouter(include_in_schema=False)
PROBLEMS = ("faulty", "offline", "unreachable_upstream", "degraded")
MAX_PROBLEMS = 500


@router.get("/console", response_class=HTMLResponse)
def overview(request: Request, session: SessionDep, settings: SettingsDep, now: NowDep, principal: ConsolePrincipal,
             lang: LangDep, school: Annotated[str | None, Query(max_length=64)] = None) -> Any:
    """Schools with their devices by health, then the devices with problems (worst first)."""
    rows = queries.list_devices(session, now, settings.offline_after_s,
                                queries.DeviceFilter(scope=principal.schools), 100_000, 0).items
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    problems = []
    for device, state, health in rows:
        counts[device.school_id][health] = counts[device.school_id].get(health, 0) + 1
        if health in PROBLEMS and (school is None or device.school_id == school):
            problems.append((device, state, health))
    problems.sort(key=lambda r: (PROBLEMS.index(r[2]), r[0].school_id, r[0].uid))
    problems = problems[:MAX_PROBLEMS]
    ids = [d.id for d, _, _ in problems]
    faults: dict[int, list[str]] = defaultdict(list)
    rooms: dict[int, str] = {}
    if ids:
        for device_id, code in session.execute(
            select(Incident.device_id, Incident.code).where(Incident.device_id.in_(ids), Incident.state != "resolved")
        ):
            faults[device_id].append(lookup(code).text(lang))
        rooms = {room_id: name for room_id, name in session.execute(select(Room.id, Room.name))}
    schools = session.scalars(select(School).where(principal.scope(School.id)).order_by(School.id)).all()
    incident_counts: dict[str, int] = {school_id: n for school_id, n in session.execute(
        select(Incident.school_id, func.count())
        .where(principal.scope(Incident.school_id), Incident.state != "resolved").group_by(Incident.school_id))}
    context = {
        "healths": HEALTH_STATES, "selected": school, "incident_counts": incident_counts,
        "summary": [(s, counts.get(s.id, {})) for s in schools],
        "problems": [{"id": d.id, "school": d.school_id, "uid": d.uid, "kind": d.kind, "health": h,
                      "room": rooms.get(d.room_id) if d.room_id else None, "room_id": d.room_id,
                      "faults": faults.get(d.id, []),
                      "last_seen": st.last_seen if st else None} for d, st, h in problems],
    }
    return render(request, "overview.html", lang, principal, **context)
