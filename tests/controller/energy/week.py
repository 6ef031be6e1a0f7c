"""A simulated school week with known on/off intervals across school-hour boundaries and a holiday.

School ``s1`` (Asia/Ho_Chi_Minh, in district q1): Monday–Saturday, 07:00–17:00, Saturday 07:00–11:30; the week
of Monday 2026-11-23; Wednesday 25 is a holiday of district q1 (Thursday 26 is one of district q2 only).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from controller.store.models import Device, District, Holiday, Observation, Room, School

VN = dt.timezone(dt.timedelta(hours=7))
MONDAY = dt.datetime(2026, 11, 23, tzinfo=VN)
WEEK_END = MONDAY + dt.timedelta(days=7)
NOMINAL_W = {"pc": 120.0, "laptop": 45.0, "smart_board": 250.0, "projector": 280.0, "air_conditioner": 1100.0}
OFFLINE_AFTER_S = 180.0
POLL_GAP_S = 900.0


def at(day: int, hhmm: str) -> dt.datetime:
    """Day ``day`` of the week (0 = Monday) at local ``HH:MM``."""
    h, m = (int(x) for x in hhmm.split(":"))
    return MONDAY + dt.timedelta(days=day, hours=h, minutes=m)


def heartbeats(device_id: int, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """Heartbeats every minute such that the device counts as online exactly over [start, end): the last one is
    sent ``OFFLINE_AFTER_S`` before ``end``."""
    rows, t = [], start
    while t <= end - dt.timedelta(seconds=OFFLINE_AFTER_S):
        rows.append({"device_id": device_id, "session": 1, "seq": int(t.timestamp()), "kind": "heartbeat", "ts": t,
                     "received_at": t, "replayed": False, "data": {}})
        t += dt.timedelta(minutes=1)
    return rows


def polls(device_id: int, state: Any, offset_min: int = 0, every_min: int = 6) -> list[dict[str, Any]]:
    """Poll rows all week on a grid (every ``every_min`` minutes from ``offset_min`` past midnight); ``state(t)``
    gives each poll's data."""
    rows, t = [], MONDAY + dt.timedelta(minutes=offset_min)
    while t < WEEK_END + dt.timedelta(minutes=30):
        data = state(t)
        if data is not None:
            rows.append({"device_id": device_id, "session": 0, "seq": int(t.timestamp() * 1000), "kind": "poll",
                         "ts": t, "received_at": t, "replayed": False, "data": data})
        t += dt.timedelta(minutes=every_min)
    return rows


def within(t: dt.datetime, *spans: tuple[dt.datetime, dt.datetime]) -> bool:
    """Is ``t`` in one of the [start, end) spans?"""
    return any(a <= t < b for a, b in spans)


def seed_week(engine: Engine) -> dict[str, int]:
    """The school, its rooms and devices, and a week of history; returns device ids by uid."""
    with Session(engine) as session, session.begin():
        session.add_all([District(id="q1", name="Quận 1"), District(id="q2", name="Quận 2")])
        session.add(School(id="s1", name="THCS Lê Lợi", district_id="q1", timezone="Asia/Ho_Chi_Minh",
                           hours_start="07:00", hours_end="17:00", school_days="123456",
                           day_hours={"6": ["07:00", "11:30"]}))
        session.add_all([Holiday(district_id="q1", starts_on=dt.date(2026, 11, 25), ends_on=dt.date(2026, 11, 25),
                                 name="Nghỉ bù"),
                         Holiday(district_id="q2", starts_on=dt.date(2026, 11, 26), ends_on=dt.date(2026, 11, 26),
                                 name="Not ours")])
        session.flush()
        rooms = {code: Room(school_id="s1", code=code, name=name, kind=kind) for code, name, kind in (
            ("lab", "Phòng máy", "computer_lab"), ("p101", "Phòng 101", "smart_l2"), ("p102", "Phòng 102", "smart_l2"))}
        session.add_all(rooms.values())
        session.flush()
        spec = [("pc-1", "pc", "mqtt", "lab"), ("pc-2", "pc", "mqtt", "lab"), ("proj-1", "projector", "pjlink", "p101"),
                ("ac-1", "air_conditioner", "tasmota", "p101"), ("ac-2", "air_conditioner", "shelly", "p102"),
                ("ac-3", "air_conditioner", "tasmota", None)]
        devices = {uid: Device(school_id="s1", uid=uid, kind=kind, watched_by=watched,
                               room_id=rooms[room].id if room else None, name=uid.upper())
                   for uid, kind, watched, room in spec}
        session.add_all(devices.values())
        session.flush()
        ids = {uid: d.id for uid, d in devices.items()}

    rows: list[dict[str, Any]] = []
    # pc-1, online: Mon 16:00-18:00, Tue 06:30-07:30, Wed (holiday) 09:00-11:00, Sat 11:00-12:00, Sun 10:00-10:30.
    for day, a, b in ((0, "16:00", "18:00"), (1, "06:30", "07:30"), (2, "09:00", "11:00"), (5, "11:00", "12:00"),
                      (6, "10:00", "10:30")):
        rows += heartbeats(ids["pc-1"], at(day, a), at(day, b))
    # pc-2: only within school hours (Mon 08:00-16:00): not in the report.
    rows += heartbeats(ids["pc-2"], at(0, "08:00"), at(0, "16:00"))

    # proj-1 (PJLink, every 6 min): warming at Mon 16:30, on until cooling at 17:24, off from 17:30; Wed (holiday)
    # on 08:00-09:00; Thu on 06:00-07:10; Fri 20:00-21:00 unreachable (its stale "on" is not believed).
    def projector(t: dt.datetime) -> dict[str, Any]:
        if within(t, (at(4, "20:00"), at(4, "21:00"))):
            return {"reachable": False, "power": "on"}
        if t == at(0, "16:30"):
            return {"reachable": True, "power": "warming"}
        if t == at(0, "17:24"):
            return {"reachable": True, "power": "cooling"}
        on = within(t, (at(0, "16:36"), at(0, "17:24")), (at(2, "08:00"), at(2, "09:00")),
                    (at(3, "06:00"), at(3, "07:10")))
        return {"reachable": True, "power": "on" if on else "off", "lamp_hours": 1200}
    rows += polls(ids["proj-1"], projector)

    # ac-1 (plug with an energy counter, polled at hh:03, hh:09, …): on Mon 16:03-19:03, Tue 15:57-17:33,
    # Wed (holiday) 13:03-14:03. Its counter grows 0.12 kWh per 6 min on (1.2 kW), while it reports 1000 W.
    ac1_on = ((at(0, "16:03"), at(0, "19:03")), (at(1, "15:57"), at(1, "17:33")), (at(2, "13:03"), at(2, "14:03")))
    counter = [5000.0]

    def ac1(t: dt.datetime) -> dict[str, Any]:
        on = within(t, *ac1_on)
        data = {"reachable": True, "power_on": on, "power_w": 1000.0 if on else 0.0,
                "energy_kwh_total": round(counter[0], 6)}
        if on:
            counter[0] += 0.12
        return data
    rows += polls(ids["ac-1"], ac1, offset_min=3)

    # ac-2 (plug with power only, 900 W): on Thu 17:00-20:00, Fri 06:30-07:30 and Fri 08:00-10:00 (school hours).
    def ac2(t: dt.datetime) -> dict[str, Any]:
        on = within(t, (at(3, "17:00"), at(3, "20:00")), (at(4, "06:30"), at(4, "07:30")),
                    (at(4, "08:00"), at(4, "10:00")))
        return {"reachable": True, "power_on": on, "power_w": 900.0 if on else 0.0}
    rows += polls(ids["ac-2"], ac2)

    # ac-3 (plug that reports only on/off): on Sun 10:00-12:00; "on" but unreachable Sat 20:00-21:00.
    def ac3(t: dt.datetime) -> dict[str, Any]:
        if within(t, (at(5, "20:00"), at(5, "21:00"))):
            return {"reachable": False, "power_on": True}
        return {"reachable": True, "power_on": within(t, (at(6, "10:00"), at(6, "12:00")))}
    rows += polls(ids["ac-3"], ac3)

    with engine.begin() as conn:
        for i in range(0, len(rows), 2000):
            conn.execute(insert(Observation), rows[i:i + 2000])
    return ids


# The expected report, worked out by hand from the intervals above (after-hours parts only):
# pc-1   nominal 120 W: Mon 17:00-18:00 1 h + Tue 06:30-07:00 0.5 h + Wed (holiday) 2 h + Sat 11:30-12:00 0.5 h
#        + Sun 0.5 h = 4.5 h; 4.5 h × 0.12 kW = 0.54 kWh
# proj-1 nominal 280 W: Mon 17:00-17:30 (on, then cooling until the 17:30 poll) 0.5 h + Wed 1 h
#        + Thu 06:00-07:00 1 h = 2.5 h; × 0.28 kW = 0.7 kWh
# ac-1   meter: Mon 17:00-19:03 2.05 h + Tue 17:00-17:33 0.55 h + Wed 1 h = 3.6 h; the counter's 1.2 kWh/h
#        prorated (17:00 falls between the 16:57 and 17:03 polls) = 2.46 + 0.66 + 1.2 = 4.32 kWh
# ac-2   measured 900 W: Thu 17:00-20:00 3 h + Fri 06:30-07:00 0.5 h = 3.5 h; × 0.9 kW = 3.15 kWh
# ac-3   nominal 1100 W: Sun 10:00-12:00 2 h; × 1.1 kW = 2.2 kWh
EXPECTED = {
    "pc-1": ("lab", 4.5, 0.54, "nominal"),
    "proj-1": ("p101", 2.5, 0.7, "nominal"),
    "ac-1": ("p101", 3.6, 4.32, "meter"),
    "ac-2": ("p102", 3.5, 3.15, "measured"),
    "ac-3": (None, 2.0, 2.2, "nominal"),
}
EXPECTED_SCHOOL = (5, 16.1, 10.91)  # devices, hours, kWh
EXPECTED_ROOMS = {"lab": (1, 4.5, 0.54), "p101": (2, 6.1, 5.02), "p102": (1, 3.5, 3.15), None: (1, 2.0, 2.2)}
