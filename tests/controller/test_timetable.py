"""School hours (controller.timetable), the timetable import, its API, and the recurring command scheduler driven
by an injected clock: at 17:30 on school days, never on a holiday or a Sunday, exactly once across a restart."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controller.energy.timetable_import import import_timetable
from controller.schedules import ScheduleRunner, run_schedules
from controller.store import db
from controller.store.models import (
    AuditLog,
    Command,
    CommandSchedule,
    Device,
    District,
    Holiday,
    Room,
    School,
)
from controller.timetable import HolidaySpan, Timetable, TimetableError, parse_days
from tests.helpers import add_school, make_app, make_user

VN = dt.timezone(dt.timedelta(hours=7))
MONDAY = dt.datetime(2026, 11, 23, tzinfo=VN)


def _local(day: int, hhmm: str) -> dt.datetime:
    h, m = (int(x) for x in hhmm.split(":"))
    return MONDAY + dt.timedelta(days=day, hours=h, minutes=m)


# --- the timetable itself ---

def test_school_hours_honour_school_days_saturday_mornings_and_holidays():
    tt = Timetable(ZoneInfo("Asia/Ho_Chi_Minh"), (dt.time(7), dt.time(17)), frozenset({1, 2, 3, 4, 5, 6}),
                   {6: (dt.time(7), dt.time(11, 30))},
                   (HolidaySpan(dt.date(2026, 11, 25), dt.date(2026, 11, 25), "Nghỉ bù"),))
    hours = tt.school_hours(MONDAY, MONDAY + dt.timedelta(days=7))
    # Mon, Tue, Thu, Fri 10 h each; Wed a holiday; Sat 4.5 h; Sun nothing.
    assert [(b - a) / 3600 for a, b in hours] == [10, 10, 10, 10, 4.5]
    assert hours[0] == (_local(0, "07:00").timestamp(), _local(0, "17:00").timestamp())
    after = tt.after_hours(MONDAY, MONDAY + dt.timedelta(days=7))
    assert sum(b - a for a, b in after) / 3600 == 7 * 24 - 44.5
    assert tt.holiday(dt.date(2026, 11, 25)) == "Nghỉ bù" and not tt.is_school_day(dt.date(2026, 11, 25))
    assert not tt.is_school_day(dt.date(2026, 11, 29))  # Sunday
    # Clipped at the period's ends.
    assert tt.school_hours(_local(0, "16:00"), _local(1, "08:00")) == [
        (_local(0, "16:00").timestamp(), _local(0, "17:00").timestamp()),
        (_local(1, "07:00").timestamp(), _local(1, "08:00").timestamp())]


def test_school_hours_in_another_time_zone():
    tt = Timetable(ZoneInfo("Asia/Bangkok"), (dt.time(8), dt.time(16)))  # also +07:00, no DST
    assert tt.school_hours(MONDAY, MONDAY + dt.timedelta(days=1)) == [
        (_local(0, "08:00").timestamp(), _local(0, "16:00").timestamp())]
    paris = Timetable(ZoneInfo("Europe/Paris"), (dt.time(8), dt.time(16)))  # 8:00 in Paris is 14:00 in Hanoi
    start = dt.datetime(2026, 11, 23, tzinfo=ZoneInfo("Europe/Paris"))
    ((a, b),) = paris.school_hours(start, start + dt.timedelta(days=1))
    assert dt.datetime.fromtimestamp(a, VN) == _local(0, "14:00") and (b - a) == 8 * 3600


def test_day_lists_in_english_and_vietnamese():
    assert parse_days("mon-fri") == parse_days("T2-T6") == parse_days("thứ 2 - thứ 6") == "12345"
    assert parse_days("t2-t7") == "123456" and parse_days("mon, wed; sat") == "136" and parse_days("CN") == "7"
    for bad in ("fri-mon", "2-6", "someday", ""):
        with pytest.raises(TimetableError):
            parse_days(bad)


# --- the scheduler ---

def _school_with_devices(engine) -> dict[str, int]:
    with Session(engine) as session, session.begin():
        session.add(District(id="q1", name="Quận 1"))
        session.add(School(id="s1", name="THCS A", district_id="q1", timezone="Asia/Ho_Chi_Minh",
                           hours_start="07:00", hours_end="17:00"))
        session.add(Holiday(district_id="q1", starts_on=dt.date(2026, 11, 25), ends_on=dt.date(2026, 11, 25),
                            name="Nghỉ bù"))
        session.flush()
        lab = Room(school_id="s1", code="lab", name="Lab", kind="computer_lab")
        session.add(lab)
        session.flush()
        session.add_all([Device(school_id="s1", uid=f"pc-{i}", kind="pc", room_id=lab.id) for i in range(3)])
        session.add(Device(school_id="s1", uid="board-1", kind="smart_board", room_id=lab.id))
        session.add(Device(school_id="s1", uid="ac-1", kind="air_conditioner", watched_by="tasmota",
                           mgmt_address="tasmota_ac1", room_id=lab.id))
        session.add_all([
            CommandSchedule(school_id="s1", kind="pc", action="shutdown", at_time="17:30", expires_in_s=3600,
                            created_at=MONDAY - dt.timedelta(days=1)),
            CommandSchedule(school_id="s1", kind="air_conditioner", action="power_off", at_time="17:30",
                            expires_in_s=1800, created_at=MONDAY - dt.timedelta(days=1))])
        return {"lab": lab.id}


def _commands(engine) -> list[tuple[str, dt.datetime, int]]:
    with Session(engine) as session:
        rows = session.execute(select(Command.action, Command.not_before, func.count())
                               .group_by(Command.action, Command.not_before)
                               .order_by(Command.not_before, Command.action)).all()
    return [(a, nb.astimezone(VN), n) for a, nb, n in rows]


def test_schedule_fires_at_1730_on_school_days_only_and_once_across_restarts(db_url):
    engine = db.make_engine(db_url)
    _school_with_devices(engine)
    clock = [MONDAY - dt.timedelta(days=1)]  # Sunday 00:00
    runner = ScheduleRunner(engine, clock=lambda: clock[0])
    fired_at: list[dt.datetime] = []
    while clock[0] < MONDAY + dt.timedelta(days=7, hours=1):  # to next Monday 01:00, a round every 10 minutes
        if runner.run_once():
            fired_at.append(clock[0])
        if clock[0] == _local(1, "17:40"):
            runner = ScheduleRunner(engine, clock=lambda: clock[0])  # a restart just after Tuesday's firing
            assert runner.run_once() == []
        clock[0] += dt.timedelta(minutes=10)
    # Mon, Tue, Thu, Fri at 17:30 local (the first round at or after it); not Wednesday (holiday) nor the weekend.
    assert fired_at == [_local(d, "17:30") for d in (0, 1, 3, 4)]
    got = _commands(engine)
    assert got == [(action, _local(d, "17:30"), n) for d in (0, 1, 3, 4)
                   for action, n in (("power_off", 1), ("shutdown", 3))]
    with Session(engine) as session:
        expires = {c.action: c.expires - c.not_before for c in session.scalars(select(Command))}
        assert expires == {"shutdown": dt.timedelta(hours=1), "power_off": dt.timedelta(minutes=30)}
        schedule = session.scalars(select(CommandSchedule).where(CommandSchedule.action == "shutdown")).one()
        assert schedule.last_occurrence == _local(4, "17:30") and schedule.last_result == "3 commands"
        assert session.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.actor == f"schedule:{schedule.id}")) == 4
    engine.dispose()


def test_a_restart_catches_up_an_occurrence_it_slept_through_unless_too_late(db_url):
    engine = db.make_engine(db_url)
    _school_with_devices(engine)
    # Down from 17:00 to 17:50 on Monday: the first round after the restart fires Monday's 17:30, due at once.
    assert run_schedules(engine, _local(0, "17:00")) == []
    fired = run_schedules(engine, _local(0, "17:50"))
    assert sorted(f.commands for f in fired) == [1, 3]
    assert run_schedules(engine, _local(0, "17:51")) == []
    # Down from Tuesday 17:00 to 18:10: the shutdown (1 h expiry) is still worth sending, the plug's (30 min) is
    # recorded as missed, and nothing fires twice.
    fired = {f.result for f in run_schedules(engine, _local(1, "18:10"))}
    assert fired == {"3 commands", "missed: the controller was not running in time"}
    assert run_schedules(engine, _local(1, "18:20")) == []
    # A schedule made after today's time starts tomorrow.
    with Session(engine) as session, session.begin():
        session.add(CommandSchedule(school_id="s1", kind="smart_board", action="shutdown", at_time="17:30",
                                    created_at=_local(1, "18:30")))
    assert run_schedules(engine, _local(1, "18:40")) == []
    assert {f.commands for f in run_schedules(engine, _local(3, "17:30"))} == {1, 3}
    engine.dispose()


def test_a_schedule_with_nothing_to_command_records_why(sqlite_url):
    engine = db.make_engine(sqlite_url)
    _school_with_devices(engine)
    with Session(engine) as session, session.begin():
        session.add(CommandSchedule(school_id="s1", kind="laptop", action="shutdown", at_time="12:00",
                                    school_days_only=False, created_at=MONDAY))
    (firing,) = [f for f in run_schedules(engine, _local(6, "12:05")) if f.result.startswith("error")]
    assert "no agent-managed device" in firing.result and firing.commands == 0
    engine.dispose()


# --- the import ---

TIMETABLE_CSV = """record,school,district,timezone,days,day,hours_start,hours_end,starts_on,ends_on,name
school,s1,,Asia/Ho_Chi_Minh,t2-t7,,07:00,17:00,,,
day,s1,,,,t7,07:00,11:30,,,
holiday,,,,,,,,2027-02-05,2027-02-13,Tết Nguyên Đán
holiday,,q1,,,,,,30/04/2027,01/05/2027,Giải phóng miền Nam và Quốc tế Lao động
holiday,s1,,,,,,,2026-11-20,,Ngày Nhà giáo Việt Nam
"""

BAD_CSV = """record,school,district,timezone,days,day,hours_start,hours_end,starts_on,ends_on,name
school,s1,,Mars/Olympus,t2-t9,,7h,17:00,,,
school,nope,,,,,,,,,
day,s1,,,,2,07:00,06:00,,,
holiday,s1,q1,,,,,,2027-02-13,2027-02-05,Tết
holiday,,,,,,,,2027-02-30,,
weekend,s1,,,,,,,,,
"""


def test_import_checks_every_row_then_applies_all_or_nothing(db_url):
    engine = db.make_engine(db_url)
    _school_with_devices(engine)
    with Session(engine) as session:
        bad = import_timetable(session, "tkb.csv", BAD_CSV.encode())
    assert not bad.ok
    found = {(e.row, e.column, e.code) for e in bad.errors}
    assert found == {
        (2, "timezone", "timezone"), (2, "days", "days"), (2, "hours_start", "time"),
        (3, "school", "unknown_school"),
        (4, "day", "days"), (4, "hours_end", "hours_order"),
        (5, "district", "holiday_scope"),
        (6, "starts_on", "date"), (6, "name", "missing"),
        (7, "record", "choice")}
    texts = {e.text("vi") for e in bad.errors}
    assert "Dòng 4, cột 'hours_end': giờ kết thúc phải sau giờ bắt đầu (07:00 – 06:00)" in texts
    assert "Row 2, column 'days': 't2-t9' is not a list of school days (e.g. mon-fri, mon-sat, t2-t6)" in {
        e.text("en") for e in bad.errors}
    with Session(engine) as session:  # nothing was imported
        assert session.scalar(select(func.count()).select_from(Holiday)) == 1
        assert session.get(School, "s1").school_days == "12345"

    with Session(engine) as session:
        good = import_timetable(session, "tkb.csv", TIMETABLE_CSV.encode(), actor="thay-minh")
    assert good.ok and good.created == {"holidays": 3} and good.updated == {"schools": 1, "holidays": 0}
    with Session(engine) as session:
        school = session.get(School, "s1")
        assert (school.school_days, school.day_hours) == ("123456", {"6": ["07:00", "11:30"]})
        assert session.scalar(select(Holiday.ends_on).where(Holiday.district_id == "q1",
                                                             Holiday.starts_on == dt.date(2027, 4, 30))) == \
            dt.date(2027, 5, 1)
        assert session.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "timetable.import", AuditLog.actor == "thay-minh")) == 1
    with Session(engine) as session:  # again: nothing changes
        again = import_timetable(session, "tkb.csv", TIMETABLE_CSV.encode())
    assert again.ok and again.changed == 0 and again.unchanged == 5
    engine.dispose()


def test_the_template_files_import_cleanly(sqlite_url):
    from pathlib import Path

    engine = db.make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(District.__table__.insert().values(id="q1", name="Quận 1"))
        conn.execute(School.__table__.insert().values(id="thcs-le-loi", name="THCS Lê Lợi", district_id="q1",
                                                      timezone="Asia/Ho_Chi_Minh", hours_start="07:00",
                                                      hours_end="17:00", school_days="12345", day_hours={}))
    templates = Path(__file__).parents[2] / "docs" / "templates"
    for name in ("timetable-template.csv", "timetable-template.xlsx"):
        with Session(engine) as session:
            result = import_timetable(session, templates / name)
        assert result.ok, [e.text("en") for e in result.errors]
    engine.dispose()


# --- the API ---

@pytest.fixture
def api(sqlite_url, tmp_path):
    engine = db.make_engine(sqlite_url)
    _school_with_devices(engine)
    add_school(engine, "s2", "THCS B")
    client = TestClient(make_app(engine, tmp_path))
    users = {"tech": make_user(engine, "tech-1", "technician", schools=("s1",)),
             "admin": make_user(engine, "admin", "admin", all_schools=True),
             "auditor": make_user(engine, "so-gd", "auditor", all_schools=True)}
    yield client, users, engine
    engine.dispose()


def test_timetable_api_reads_and_edits_within_scope(api):
    client, users, engine = api
    tech, auditor = users["tech"], users["auditor"]
    got = client.get("/api/v1/schools/s1/timetable", headers=tech).json()
    assert got["school_days"] == ["mon", "tue", "wed", "thu", "fri"] and got["holidays"][0]["district"] == "q1"
    changed = client.put("/api/v1/schools/s1/timetable", headers=tech, json={
        "school_days": ["mon", "tue", "wed", "thu", "fri", "sat"], "day_hours": {"sat": ["07:00", "11:30"]}})
    assert changed.status_code == 200 and changed.json()["day_hours"] == {"sat": ["07:00", "11:30"]}
    assert client.put("/api/v1/schools/s1/timetable", headers=tech,
                      json={"hours_start": "18:00"}).status_code == 422  # after the 17:00 end
    assert client.put("/api/v1/schools/s1/timetable", headers=auditor, json={}).status_code == 403
    assert client.get("/api/v1/schools/s2/timetable", headers=tech).status_code == 404
    assert client.put("/api/v1/schools/s2/timetable", headers=tech, json={}).status_code == 404

    tet = client.post("/api/v1/holidays", headers=tech, json={"school": "s1", "starts_on": "2027-02-05",
                                                              "ends_on": "2027-02-13", "name": "Tết Nguyên Đán"})
    assert tet.status_code == 201
    assert client.post("/api/v1/holidays", headers=tech, json={"starts_on": "2027-02-05", "name": "x"}).status_code \
        == 403  # every school's holiday: department-wide roles only
    assert client.post("/api/v1/holidays", headers=users["admin"],
                       json={"starts_on": "2027-01-01", "name": "Tết Dương lịch"}).status_code == 201
    names = {h["name"] for h in client.get("/api/v1/holidays", headers=tech).json()}
    assert names == {"Nghỉ bù", "Tết Nguyên Đán", "Tết Dương lịch"}
    assert client.delete(f"/api/v1/holidays/{tet.json()['id']}", headers=auditor).status_code == 403
    assert client.delete(f"/api/v1/holidays/{tet.json()['id']}", headers=tech).status_code == 204

    made = client.post("/api/v1/schedules", headers=tech, json={"school": "s1", "kind": "pc", "action": "shutdown",
                                                                "at_time": "17:30"})
    assert made.status_code == 201 and made.json()["school_days_only"] is True
    assert client.post("/api/v1/schedules", headers=tech, json={"school": "s1", "action": "format_disk",
                                                                "at_time": "17:30"}).status_code == 422
    assert client.post("/api/v1/schedules", headers=tech, json={"school": "s1", "action": "shutdown",
                                                                "at_time": "25:00"}).status_code == 422
    assert client.post("/api/v1/schedules", headers=tech, json={"school": "s2", "action": "shutdown",
                                                                "at_time": "17:30"}).status_code == 404
    mismatched = client.post("/api/v1/schedules", headers=tech, json={"school": "s1", "kind": "pc",
                                                                      "action": "power_off", "at_time": "17:30"})
    assert mismatched.status_code == 422 and "cannot 'power_off'" in mismatched.text  # PCs have no relay
    aircon_shutdown = {"school": "s1", "kind": "air_conditioner", "action": "shutdown", "at_time": "17:30"}
    assert client.post("/api/v1/schedules", headers=tech, json=aircon_shutdown).status_code == 422
    assert client.patch(f"/api/v1/schedules/{made.json()['id']}", headers=tech,
                        json={"action": "power_on"}).status_code == 422
    off = client.patch(f"/api/v1/schedules/{made.json()['id']}", headers=tech, json={"enabled": False})
    assert off.status_code == 200 and off.json()["enabled"] is False
    listed = client.get("/api/v1/schedules?school=s1", headers=tech).json()
    assert [(s["action"], s["kind"], s["enabled"]) for s in listed] == [
        ("shutdown", "pc", True), ("power_off", "air_conditioner", True), ("shutdown", "pc", False)]
    assert client.get("/api/v1/schedules?school=s2", headers=tech).json() == []
    with Session(engine) as session:
        actions = set(session.scalars(select(AuditLog.action).where(AuditLog.actor == "tech-1")))
    assert {"timetable.update", "holiday.create", "holiday.delete", "schedule.create", "schedule.update"} <= actions


def test_timetable_import_through_the_api_is_limited_to_the_school(api):
    client, users, _ = api
    csv_for_s1 = "record,school,days,hours_start,hours_end\nschool,s1,t2-t7,07:15,16:45\n"
    ok = client.post("/api/v1/schools/s1/timetable/import?format=csv&lang=en", headers=users["tech"],
                     content=csv_for_s1.encode())
    assert ok.status_code == 200 and ok.json()["ok"] and ok.json()["updated"]["schools"] == 1
    assert client.get("/api/v1/schools/s1/timetable", headers=users["tech"]).json()["hours_start"] == "07:15"
    mixed = TIMETABLE_CSV
    refused = client.post("/api/v1/schools/s1/timetable/import?lang=en", headers=users["tech"],
                          content=mixed.encode())
    assert refused.status_code == 422
    codes = {(e["row"], e["code"]) for e in refused.json()["errors"]}
    assert codes == {(4, "shared_holiday"), (5, "shared_holiday")}
    assert client.post("/api/v1/schools/s2/timetable/import", headers=users["tech"],
                       content=csv_for_s1.encode()).status_code == 404
    assert client.post("/api/v1/schools/s1/timetable/import", headers=users["auditor"],
                       content=csv_for_s1.encode()).status_code == 403
