"""The after-hours energy report: per school and room, the devices that were on outside school hours, for how long,
and the energy they used then (docs/energy.md).

When a device was on:
* agent devices (PCs, laptops, smart boards that run the agent): while they were online, by the availability
  report's rule (each live heartbeat, status or event counts for ``offline_after_s``);
* projectors: from each PJLink poll whose ``power`` is ``on``, ``warming`` or ``cooling`` until the next poll;
* air-conditioner plugs: from each poll with ``power_on`` true until the next poll;
a polled state holds at most ``poll_gap_s`` (the poller may have stopped), and an unreachable poll is not "on".

The energy of each on-period, best method first: ``meter``, the plug's ``energy_kwh_total`` counter between the
two polls around it (prorated when school hours start or end between them; a counter that went backwards was
reset and is not used); ``measured``, the polled ``power_w`` × time; ``nominal``, the kind's nominal power
(settings) × time. A device's ``method`` is the least precise one any of its periods needed.

The on-periods are clipped to after-hours: everything outside the school's timetable hours (controller.timetable)
in the school's own time zone, so days that are not school days, and holidays, count whole.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit.availability import working_intervals
from ..store.models import Device, Observation, Room, School
from ..store.queries import in_scope
from ..timetable import Interval, intersect, load_timetables, merge

ENERGY_KINDS = ("pc", "laptop", "smart_board", "projector", "air_conditioner")
AGENT_KINDS = ("pc", "laptop", "smart_board")
PROJECTOR_ON = ("on", "warming", "cooling")
METHODS = ("meter", "measured", "nominal")  # most to least precise
MAX_PERIOD = dt.timedelta(days=400)


class EnergyRow(BaseModel):
    """One device that was on after hours."""

    school: str
    room: str | None = Field(description="room code; None for a device not placed in a room")
    room_name: str | None
    device: str = Field(description="the device's uid")
    name: str | None
    kind: str
    hours: float = Field(description="hours on outside school hours")
    kwh: float = Field(description="energy used in those hours")
    method: str = Field(description="meter, measured or nominal: how the energy is known")


class EnergyTotal(BaseModel):
    """A school's or a room's sum."""

    school: str
    room: str | None = None
    name: str | None = None
    devices: int
    hours: float
    kwh: float


class EnergyReport(BaseModel):
    """The period, the nominal powers used, totals per school and room, and the devices."""

    start: dt.datetime
    end: dt.datetime
    nominal_w: dict[str, float]
    schools: list[EnergyTotal]
    rooms: list[EnergyTotal]
    rows: list[EnergyRow]


@dataclass(frozen=True, slots=True)
class Poll:
    """One poll history row as the report reads it."""

    t: float
    on: bool
    power_w: float | None
    energy_kwh: float | None


@dataclass(slots=True)
class _Usage:
    seconds: float = 0.0
    kwh: float = 0.0
    worst: int = 0  # index in METHODS

    def add(self, seconds: float, kwh: float, method: str) -> None:
        self.seconds += seconds
        self.kwh += kwh
        self.worst = max(self.worst, METHODS.index(method))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def poll_state(kind: str, data: Mapping[str, Any]) -> Poll | None:
    """Whether a poll says the device is on, and what it measured (None: not a usable poll)."""
    if not isinstance(data, Mapping):
        return None
    reachable = data.get("reachable") is True
    if kind == "projector":
        on = reachable and data.get("power") in PROJECTOR_ON
    else:
        on = reachable and data.get("power_on") is True
    power = _number(data.get("power_w"))
    energy = _number(data.get("energy_kwh_total"))
    return Poll(0.0, on, power if power is not None and power >= 0 else None,
                energy if energy is not None and energy >= 0 else None)


def polled_usage(polls: Sequence[Poll], after_hours: Sequence[Interval], nominal_w: float, gap_s: float) -> _Usage:
    """Hours on and energy, within ``after_hours``, from one device's polls (sorted by time)."""
    usage = _Usage()
    for i, p in enumerate(polls):
        if not p.on:
            continue
        nxt = polls[i + 1] if i + 1 < len(polls) else None
        held_to = min(nxt.t, p.t + gap_s) if nxt is not None else p.t + gap_s
        for a, b in intersect([(p.t, held_to)], after_hours):
            seconds = b - a
            if (nxt is not None and nxt.t - p.t <= gap_s and p.energy_kwh is not None
                    and nxt.energy_kwh is not None and nxt.energy_kwh >= p.energy_kwh):
                usage.add(seconds, (nxt.energy_kwh - p.energy_kwh) * seconds / (nxt.t - p.t), "meter")
            elif p.power_w is not None:
                usage.add(seconds, p.power_w * seconds / 3.6e6, "measured")
            else:
                usage.add(seconds, nominal_w * seconds / 3.6e6, "nominal")
    return usage


def _polls(session: Session, devices: Mapping[int, str], start: dt.datetime, end: dt.datetime,
           gap_s: float) -> dict[int, list[Poll]]:
    """Each polled device's polls from ``gap_s`` before the period to ``gap_s`` after it (the counter brackets)."""
    out: dict[int, list[Poll]] = defaultdict(list)
    if not devices:
        return out
    gap = dt.timedelta(seconds=gap_s)
    for device_id, ts, data in session.execute(
        select(Observation.device_id, Observation.ts, Observation.data)
        .where(Observation.device_id.in_(list(devices)), Observation.kind == "poll",
               Observation.ts >= start - gap, Observation.ts < end + gap)
        .order_by(Observation.device_id, Observation.ts)
    ):
        state = poll_state(devices[device_id], data or {})
        if state is not None:
            out[device_id].append(Poll(ts.timestamp(), state.on, state.power_w, state.energy_kwh))
    return out


def _round(x: float) -> float:
    return round(x + 0.0, 4)


def build_energy(session: Session, start: dt.datetime, end: dt.datetime, *, nominal_w: Mapping[str, float],
                 offline_after_s: float, poll_gap_s: float, school: str | None = None,
                 visible: frozenset[str] | None = None) -> EnergyReport:
    """The report for ``[start, end)`` over the caller's schools (optionally one)."""
    if end <= start or end - start > MAX_PERIOD:
        raise ValueError("give start < end, at most 400 days apart")
    query = select(School).where(in_scope(School.id, visible)).order_by(School.id)
    if school is not None:
        query = query.where(School.id == school)
    schools = list(session.scalars(query))
    timetables = load_timetables(session, schools)
    rows: list[EnergyRow] = []
    for s in schools:
        after = timetables[s.id].after_hours(start, end)
        devices = session.execute(
            select(Device.id, Device.uid, Device.name, Device.kind, Device.watched_by, Room.code, Room.name)
            .outerjoin(Room, Room.id == Device.room_id)
            .where(Device.school_id == s.id, Device.kind.in_(ENERGY_KINDS), Device.lifecycle != "retired")
        ).all()
        agents = [d.id for d in devices if d.kind in AGENT_KINDS and d.watched_by == "mqtt"]
        polled = {d.id: d.kind for d in devices if d.id not in set(agents)}
        working = working_intervals(session, agents, start, end, offline_after_s) if agents else {}
        polls = _polls(session, polled, start, end, poll_gap_s)
        for d in devices:
            nominal = float(nominal_w.get(d.kind, 0.0))
            if d.id in polled:
                usage = polled_usage(polls.get(d.id, []), after, nominal, poll_gap_s)
            else:
                usage = _Usage()
                for a, b in intersect(merge(working.get(d.id, [])), after):
                    usage.add(b - a, nominal * (b - a) / 3.6e6, "nominal")
            if usage.seconds <= 0:
                continue
            rows.append(EnergyRow(school=s.id, room=d[5], room_name=d[6], device=d.uid, name=d.name, kind=d.kind,
                                  hours=_round(usage.seconds / 3600), kwh=_round(usage.kwh),
                                  method=METHODS[usage.worst]))
    rows.sort(key=lambda r: (r.school, r.room is None, r.room or "", r.device))
    names = {s.id: s.name for s in schools}
    return EnergyReport(start=start, end=end, nominal_w=dict(nominal_w),
                        schools=_totals(rows, lambda r: (r.school, None), names),
                        rooms=_totals(rows, lambda r: (r.school, r.room), {}), rows=rows)


def _totals(rows: Iterable[EnergyRow], key: Any, names: Mapping[str, str]) -> list[EnergyTotal]:
    groups: dict[tuple[str, str | None], list[EnergyRow]] = defaultdict(list)
    room_names: dict[tuple[str, str | None], str | None] = {}
    for r in rows:
        groups[key(r)].append(r)
        room_names[key(r)] = r.room_name
    out = []
    for (school_id, room), items in groups.items():
        out.append(EnergyTotal(school=school_id, room=room,
                               name=names.get(school_id) if room is None else room_names[(school_id, room)],
                               devices=len(items), hours=_round(sum(r.hours for r in items)),
                               kwh=_round(sum(r.kwh for r in items))))
    return out
