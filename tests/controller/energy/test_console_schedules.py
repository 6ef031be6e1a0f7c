"""Recurring commands made and deleted in the console's timetable page (TestClient posting the form, SQLite and
PostgreSQL): CSRF, the school's technician or an admin only, actions valid for the device kind, the audit log,
vi/en texts; a schedule made there fires like one made through the API."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from controller.schedules import run_schedules
from controller.store import db
from controller.store.models import AuditLog, Command, CommandSchedule, Device, Room
from tests.controller.console.seed import csrf_of, log_in
from tests.helpers import add_school, make_app, make_user

pytestmark = pytest.mark.integration
VN = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.fixture
def world(db_url: str, tmp_path: Any) -> Any:
    engine = db.make_engine(db_url)
    add_school(engine, "s1", "THCS Một")
    add_school(engine, "s2", "THCS Hai")
    with engine.begin() as conn:
        rooms = {school: conn.execute(insert(Room).values(school_id=school, code="lab-1", name=f"Phòng máy {school}",
                                                          kind="computer_lab").returning(Room.id)).scalar_one()
                 for school in ("s1", "s2")}
        conn.execute(insert(Device).values(school_id="s1", uid="ac-1", kind="air_conditioner", room_id=rooms["s1"],
                                           watched_by="tasmota", mgmt_address="tasmota_S1AC1"))
    make_user(engine, "tech-1", "technician", schools=("s1",))
    make_user(engine, "tech-2", "technician", schools=("s2",))
    make_user(engine, "auditor", "auditor", all_schools=True)
    yield make_app(engine, tmp_path), engine, rooms
    engine.dispose()


def _client(app: Any, username: str) -> tuple[TestClient, str]:
    client = TestClient(app)
    log_in(client, username)
    return client, csrf_of(client.get("/console").text)  # the session's token (the logout form has it)


def _next_school_day_at(hour: int, minute: int) -> dt.datetime:
    """A weekday after today, at that local time (the schedule is made now: today's occurrence may be past)."""
    day = dt.datetime.now(VN).date() + dt.timedelta(days=1)
    while day.isoweekday() > 5:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(hour, minute), VN)


def test_technician_adds_a_schedule_that_fires_and_deletes_it(world: Any) -> None:
    app, engine, rooms = world
    client, token = _client(app, "tech-1")
    page = client.get("/console/schools/s1/timetable")
    assert 'id="add-schedule"' in page.text and "Thêm lệnh định kỳ" in page.text
    form = page.text[page.text.index('id="add-schedule"'):]
    assert '<option value="power_off">' in form and '<option value="shutdown">' in form
    assert '<option value="message">' not in form  # a message needs its text: the API only
    assert '<option value="air_conditioner">' in form and '<option value="camera">' not in form
    assert f'<option value="{rooms["s1"]}">' in form and f'<option value="{rooms["s2"]}">' not in form
    form_data = {"csrf": token, "room_id": str(rooms["s1"]), "kind": "air_conditioner", "action": "power_off",
                 "at_time": "17:30", "school_days_only": "1", "enabled": "1", "name": "Tắt điều hòa cuối ngày"}
    added = client.post("/console/schools/s1/schedules", data=form_data, follow_redirects=False)
    assert added.status_code == 303 and added.headers["location"] == "/console/schools/s1/timetable"
    with Session(engine) as session:
        schedule = session.scalars(select(CommandSchedule)).one()
        assert (schedule.school_id, schedule.room_id, schedule.kind, schedule.action, schedule.at_time,
                schedule.school_days_only, schedule.enabled, schedule.name, schedule.created_by) == \
            ("s1", rooms["s1"], "air_conditioner", "power_off", "17:30", True, True, "Tắt điều hòa cuối ngày",
             "tech-1")
        audit = session.scalars(select(AuditLog).where(AuditLog.action == "schedule.create")).one()
        assert audit.actor == "tech-1" and audit.target == f"schedule:{schedule.id}"
        assert audit.detail["action"] == "power_off" and audit.detail["room_id"] == rooms["s1"]
        schedule_id = schedule.id
    shown = client.get("/console/schools/s1/timetable")
    assert "Đã thêm lệnh định kỳ." in shown.text
    assert f"/console/schedules/{schedule_id}/delete" in shown.text and "Phòng máy s1" in shown.text

    fired = run_schedules(engine, _next_school_day_at(17, 31))
    assert [(f.schedule_id, f.commands) for f in fired] == [(schedule_id, 1)]
    with Session(engine) as session:
        assert session.scalars(select(Command.action)).all() == ["power_off"]

    other, other_token = _client(app, "tech-2")
    assert other.post(f"/console/schedules/{schedule_id}/delete", data={"csrf": other_token},
                      follow_redirects=False).status_code == 404  # school s1 is not theirs to see
    assert client.post(f"/console/schedules/{schedule_id}/delete", data={"csrf": "forged"},
                       follow_redirects=False).status_code == 403
    deleted = client.post(f"/console/schedules/{schedule_id}/delete", data={"csrf": token}, follow_redirects=False)
    assert deleted.status_code == 303
    with Session(engine) as session:
        assert session.scalars(select(CommandSchedule)).all() == []
        audit = session.scalars(select(AuditLog).where(AuditLog.action == "schedule.delete")).one()
        assert audit.actor == "tech-1" and audit.target == f"schedule:{schedule_id}"
        assert session.scalars(select(Command.action)).all() == ["power_off"]  # what it made stays in the ledger
    assert "Đã xóa lệnh định kỳ." in client.get("/console/schools/s1/timetable").text


def test_refused_schedules_add_nothing(world: Any) -> None:
    app, engine, rooms = world
    client, token = _client(app, "tech-1")
    base = {"csrf": token, "room_id": "", "kind": "", "action": "shutdown", "at_time": "17:30", "enabled": "1"}
    # a PC action for air conditioners: refused with a message naming both, in the user's language
    wrong = client.post("/console/schools/s1/schedules", data={**base, "kind": "air_conditioner"})
    assert wrong.status_code == 200 and "không thể gửi lệnh" in wrong.text
    english = client.post("/console/schools/s1/schedules?lang=en", data={**base, "kind": "camera",
                                                                        "action": "power_off"})
    assert "cannot be sent to" in english.text
    assert client.post("/console/schools/s1/schedules", data={**base, "at_time": "25:00"}).status_code == 200
    assert client.post("/console/schools/s1/schedules", data={**base, "csrf": "forged"},
                       follow_redirects=False).status_code == 403
    assert client.post("/console/schools/s1/schedules", data={**base, "room_id": str(rooms["s2"])},
                       follow_redirects=False).status_code == 404  # another school's room
    assert client.post("/console/schools/s2/schedules", data=base, follow_redirects=False).status_code == 404
    auditor, auditor_token = _client(app, "auditor")
    assert auditor.post("/console/schools/s1/schedules", data={**base, "csrf": auditor_token},
                        follow_redirects=False).status_code == 403  # reads every school, changes none
    assert 'id="add-schedule"' not in auditor.get("/console/schools/s1/timetable").text
    with Session(engine) as session:
        assert session.scalars(select(CommandSchedule)).all() == []
        assert session.scalars(select(AuditLog).where(AuditLog.action == "schedule.create")).all() == []
    # a whole school, any kind, every day, disabled: accepted as given
    made = client.post("/console/schools/s1/schedules", data={**base, "enabled": None}, follow_redirects=False)
    assert made.status_code == 303
    with Session(engine) as session:
        schedule = session.scalars(select(CommandSchedule)).one()
    assert (schedule.room_id, schedule.kind, schedule.school_days_only, schedule.enabled) == (None, None, False,
                                                                                             False)
