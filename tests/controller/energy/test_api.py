"""The energy report's API and console page, and the timetable page: scoped, in vi and en, same figures as the
report itself; console forms write the timetable with CSRF and the audit log."""

from __future__ import annotations

import datetime as dt
import io
import re

import openpyxl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.store import db
from controller.store.models import AuditLog, CommandSchedule, School
from tests.controller.console.seed import csrf_of, log_in
from tests.controller.energy.week import EXPECTED, seed_week
from tests.helpers import add_school, make_app, make_user

PERIOD = {"start": "2026-11-23T00:00:00+07:00", "end": "2026-11-30T00:00:00+07:00"}


@pytest.fixture
def world(sqlite_url, tmp_path):
    engine = db.make_engine(sqlite_url)
    seed_week(engine)
    add_school(engine, "s2", "THCS Khác")
    with engine.begin() as conn:
        conn.execute(CommandSchedule.__table__.insert().values(
            school_id="s1", kind="pc", action="shutdown", at_time="17:30", args={}, school_days_only=True,
            expires_in_s=3600, enabled=True, created_at=dt.datetime.now(dt.UTC)))
    app = make_app(engine, tmp_path)
    users = {"tech": make_user(engine, "tech-1", "technician", schools=("s1",)),
             "other": make_user(engine, "tech-2", "technician", schools=("s2",)),
             "auditor": make_user(engine, "auditor", "auditor", all_schools=True)}
    yield app, engine, users
    engine.dispose()


def test_energy_api_is_scoped_and_its_export_matches(world):
    app, _, users = world
    client = TestClient(app)
    mine = client.get("/api/v1/reports/energy", params=PERIOD, headers=users["tech"])
    assert mine.status_code == 200
    body = mine.json()
    assert {r["device"]: (r["room"], r["hours"], r["kwh"], r["method"]) for r in body["rows"]} == EXPECTED
    theirs = client.get("/api/v1/reports/energy", params={**PERIOD, "school": "s1"}, headers=users["other"]).json()
    assert theirs["rows"] == [] and theirs["schools"] == []
    xlsx = client.get("/api/v1/reports/energy/export", params={**PERIOD, "format": "xlsx", "lang": "en"},
                      headers=users["auditor"])
    assert xlsx.status_code == 200 and "attachment" in xlsx.headers["content-disposition"]
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content), read_only=True)["Devices"]
    (_, *rows) = list(sheet.iter_rows(values_only=True))
    assert [(r[3], r[6], r[7]) for r in rows] == [(r["device"], r["hours"], r["kwh"]) for r in body["rows"]]
    bad = client.get("/api/v1/reports/energy", headers=users["tech"],
                     params={"start": PERIOD["end"], "end": PERIOD["start"]})
    assert bad.status_code == 422
    assert client.get("/api/v1/reports/energy", headers=users["tech"],
                      params={"start": "2026-01-01T00:00:00+07:00", "end": "2027-06-01T00:00:00+07:00"}
                      ).status_code == 422


def test_console_energy_and_timetable_pages(world):
    app, engine, _ = world
    client = TestClient(app)
    log_in(client, "tech-1")
    page = client.get("/console/energy", params={"start": "2026-11-23", "end": "2026-11-30"})
    assert page.status_code == 200
    assert "Thiết bị bật ngoài giờ học" in page.text and "AC-1" in page.text and "công tơ của ổ cắm" in page.text
    assert "16,1" in page.text  # Vietnamese decimal mark
    english = client.get("/console/energy", params={"start": "2026-11-23", "end": "2026-11-30", "lang": "en"})
    assert "Devices on outside school hours" in english.text and "plug&#39;s energy meter" in english.text
    assert client.get("/console/energy", params={"start": "2026-11-30", "end": "2026-11-23"}).status_code == 200

    tt = client.get("/console/schools/s1/timetable")
    assert tt.status_code == 200 and "Nghỉ bù" in tt.text and "17:30" in tt.text
    assert client.get("/console/schools/s2/timetable").status_code == 404
    token = csrf_of(tt.text)
    saved = client.post("/console/schools/s1/timetable", follow_redirects=False, data={
        "csrf": token, "timezone": "Asia/Ho_Chi_Minh", "days": "t2-t6", "hours_start": "07:00", "hours_end": "16:30",
        "day_hours": "t6 07:00-11:30"})
    assert saved.status_code == 303
    with Session(engine) as session:
        school = session.get(School, "s1")
        assert (school.school_days, school.hours_end, school.day_hours) == ("12345", "16:30", {"5": ["07:00", "11:30"]})
    assert client.post("/console/schools/s1/timetable", data={
        "csrf": "forged", "timezone": "UTC", "days": "t2", "hours_start": "07:00", "hours_end": "08:00"}
    ).status_code == 403
    added = client.post("/console/schools/s1/holidays", follow_redirects=False, data={
        "csrf": token, "name": "Tết Nguyên Đán", "starts_on": "2027-02-05", "ends_on": "2027-02-13"})
    assert added.status_code == 303
    page = client.get("/console/schools/s1/timetable")
    assert "Tết Nguyên Đán" in page.text
    holiday_id = re.search(r'/holidays/(\d+)/delete', page.text).group(1)
    schedule_id = re.search(r'/console/schedules/(\d+)/toggle', page.text).group(1)
    assert client.post(f"/console/schedules/{schedule_id}/toggle", data={"csrf": token},
                       follow_redirects=False).status_code == 303
    assert client.post(f"/console/schools/s1/holidays/{holiday_id}/delete", data={"csrf": token},
                       follow_redirects=False).status_code == 303
    with Session(engine) as session:
        assert session.scalar(select(CommandSchedule.enabled)) is False
        actions = set(session.scalars(select(AuditLog.action).where(AuditLog.actor == "tech-1")))
    assert {"timetable.update", "holiday.create", "holiday.delete", "schedule.update"} <= actions
