"""Availability over a simulated week with known outages, across school-hour boundaries, in the
school's time zone: the percentages come out exactly."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import insert
from sqlalchemy.orm import Session

from controller.api.app import create_app
from controller.audit.availability import build_availability
from controller.config import Settings
from controller.metrics import build_registry
from controller.store import db
from controller.store.models import Device, Incident, Observation, Room, School

VN = dt.timezone(dt.timedelta(hours=7))
MONDAY = dt.datetime(2026, 11, 23, tzinfo=VN)  # a Monday


def _seed(engine) -> dict[str, int]:
    with Session(engine) as session, session.begin():
        session.add(School(id="s1", name="THCS A", timezone="Asia/Ho_Chi_Minh", hours_start="07:00",
                           hours_end="17:00"))
        session.flush()
        lab = Room(school_id="s1", code="lab", name="Lab", kind="computer_lab")
        smart = Room(school_id="s1", code="sm", name="Smart", kind="smart_l2")
        session.add_all([lab, smart])
        session.flush()
        devices = {uid: Device(school_id="s1", uid=uid, kind="pc", room_id=room.id)
                   for uid, room in (("pc-1", lab), ("pc-2", lab), ("board", smart))}
        session.add_all(devices.values())
        session.flush()
        return {uid: d.id for uid, d in devices.items()}


def _heartbeats(device_id: int, start: dt.datetime, end: dt.datetime, every_s: int = 60) -> list[dict]:
    rows, t, seq = [], start, 0
    while t < end:
        seq += 1
        rows.append({"device_id": device_id, "session": 1, "seq": int(t.timestamp()), "kind": "heartbeat", "ts": t,
                     "received_at": t, "replayed": False, "data": {}})
        t += dt.timedelta(seconds=every_s)
    return rows


def test_a_week_with_known_outages(db_url):
    engine = db.make_engine(db_url)
    ids = _seed(engine)
    week_end = MONDAY + dt.timedelta(days=7)
    rows = []
    # pc-1: up all week, around the clock.
    rows += _heartbeats(ids["pc-1"], MONDAY - dt.timedelta(hours=1), week_end)
    # pc-2: up all week except Tuesday 06:00–09:00 (2 of its 50 school hours are lost: 07:00–09:00).
    tue = MONDAY + dt.timedelta(days=1)
    rows += _heartbeats(ids["pc-2"], MONDAY - dt.timedelta(hours=1), tue + dt.timedelta(hours=6))
    rows += _heartbeats(ids["pc-2"], tue + dt.timedelta(hours=9), week_end)
    # board: only Monday and Wednesday school hours, plus a Saturday (not school hours).
    for day in (0, 2):
        d = MONDAY + dt.timedelta(days=day)
        rows += _heartbeats(ids["board"], d + dt.timedelta(hours=7), d + dt.timedelta(hours=17))
    rows += _heartbeats(ids["board"], MONDAY + dt.timedelta(days=5, hours=8), MONDAY + dt.timedelta(days=5, hours=12))
    # A replayed message is history, not a sign of life at that time.
    rows.append({"device_id": ids["board"], "session": 2, "seq": 1, "kind": "heartbeat", "ts": tue,
                 "received_at": tue + dt.timedelta(hours=10), "replayed": True, "data": {}})
    with engine.begin() as conn:
        conn.execute(insert(Observation), rows)
        conn.execute(insert(Incident), [
            {"device_id": ids["pc-2"], "school_id": "s1", "code": "agent.offline", "severity": "critical",
             "state": "resolved", "count": 1, "opened_at": tue + dt.timedelta(hours=6, minutes=5),
             "last_seen": tue + dt.timedelta(hours=6, minutes=5), "resolved_at": tue + dt.timedelta(hours=9),
             "flapping": False, "detail": {}}])
    with Session(engine) as session:
        report = build_availability(session, MONDAY, week_end, offline_after_s=180)
    got = {(r.room_kind): r for r in report.rows}
    lab, smart = got["computer_lab"], got["smart_l2"]
    assert lab.school_hours == 50.0 and lab.devices == 2
    # pc-1 100%, pc-2 48/50 (its last heartbeat at 05:59 covers 3 more minutes, to 06:02 — before school).
    assert lab.availability == round((1 + 48 / 50) / 2, 6)
    # board: 20 of 50 school hours (the last heartbeat each day covers 3 minutes past 17:00: clipped).
    assert smart.availability == round(20 / 50, 6)
    assert lab.incidents == 1 and lab.incidents_per_device == 0.5 and lab.mttr_hours == round(175 / 60, 4)
    assert smart.mttr_hours is None
    engine.dispose()


def test_availability_api_is_scoped_and_validated(sqlite_url, tmp_path):
    engine = db.make_engine(sqlite_url)
    _seed(engine)
    registry, _ = build_registry(engine, 180)
    client = TestClient(create_app(Settings(data_dir=tmp_path, auth=False), engine, registry))
    ok = client.get("/api/v1/reports/availability",
                    params={"start": "2026-11-23T00:00:00+07:00", "end": "2026-11-30T00:00:00+07:00"})
    assert ok.status_code == 200 and {r["room_kind"] for r in ok.json()["rows"]} == {"computer_lab", "smart_l2"}
    assert client.get("/api/v1/reports/availability", params={"start": "2026-11-30T00:00:00+07:00",
                                                               "end": "2026-11-23T00:00:00+07:00"}).status_code == 422
    engine.dispose()


def test_availability_console_page_with_a_chosen_period(sqlite_url, tmp_path):
    engine = db.make_engine(sqlite_url)
    ids = _seed(engine)
    week_end = MONDAY + dt.timedelta(days=7)
    tue = MONDAY + dt.timedelta(days=1)
    rows = _heartbeats(ids["pc-1"], MONDAY - dt.timedelta(hours=1), week_end)
    rows += _heartbeats(ids["pc-2"], MONDAY - dt.timedelta(hours=1), tue + dt.timedelta(hours=6))
    rows += _heartbeats(ids["pc-2"], tue + dt.timedelta(hours=9), week_end)
    with engine.begin() as conn:
        conn.execute(insert(Observation), rows)
    registry, _ = build_registry(engine, 180)
    now = dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.UTC)  # Wednesday 10:00 in Vietnam, the week after
    client = TestClient(create_app(Settings(data_dir=tmp_path, auth=False), engine, registry, clock=lambda: now))
    # the week as dates (end inclusive), in English
    page = client.get("/console/availability", params={"start": "2026-11-23", "end": "2026-11-29", "lang": "en"})
    assert page.status_code == 200
    assert "From 2026-11-23 to the end of 2026-11-29" in page.text
    lab = page.text.split('data-room-kind="computer_lab"')[1].split("</tr>")[0]
    assert "<td class=\"n\">2</td>" in lab and "50.0" in lab and "98.0 %" in lab  # (100 % + 48/50) / 2
    board = page.text.split('data-room-kind="smart_l2"')[1].split("</tr>")[0]
    assert "0.0 %" in board
    # the school line: 3 devices, (1 + 0.96 + 0) / 3 = 65.3 %, linking to the school and its incidents
    assert 'href="/console/schools/s1"' in page.text and "65.3 %" in page.text
    assert "/console/incidents?school=s1" in page.text
    json_link = "/api/v1/reports/availability?start=2026-11-23T00%3A00%3A00%2B07%3A00&amp;end=2026-11-30T00%3A00"
    assert json_link in page.text
    # a preset: last week (as seen on Wednesday 2 December) is the same week, in Vietnamese
    last_week = client.get("/console/availability", params={"preset": "last_week", "lang": "vi"})
    assert "Từ 2026-11-23 đến hết 2026-11-29" in last_week.text and "98,0 %" in last_week.text
    default = client.get("/console/availability")  # this week so far: Monday 30 November to today
    assert "2026-11-30" in default.text and "2026-12-02" in default.text
    bad = client.get("/console/availability", params={"start": "2026-11-29", "end": "2026-11-23"})
    assert bad.status_code == 200 and "không hợp lệ" in bad.text and 'id="availability"' not in bad.text
    assert client.get("/console/availability", params={"preset": "yesterday"}).status_code == 422
    engine.dispose()
