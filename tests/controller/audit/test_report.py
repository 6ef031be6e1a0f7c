"""The audit report over a generated department (57 schools) on both backends: JSON, API, CSV and XLSX agree."""

from __future__ import annotations

import csv
import datetime as dt
import io

import openpyxl
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from controller.api.app import create_app
from controller.audit.api import router as audit_router
from controller.audit.console import router as audit_console_router
from controller.audit.export import render, summary_header
from controller.audit.importer import COLUMNS, import_inventory
from controller.audit.plan import import_plan
from controller.audit.report import AuditReport, build_report
from controller.config import Settings
from controller.store import db
from controller.store.models import Device, DeviceState

from . import fleet

NOW = dt.datetime(2026, 11, 29, 9, 0, tzinfo=dt.UTC)
OFFLINE_AFTER_S = 180.0


def _report(engine, **kwargs) -> AuditReport:
    with Session(engine) as session:
        return build_report(session, NOW, OFFLINE_AFTER_S, **kwargs)


@pytest.fixture
def department(db_url):
    """The whole department imported from its files, every device seen just now."""
    engine = db.make_engine(db_url)
    with Session(engine) as session:
        assert import_inventory(session, "inventory.csv", fleet.inventory_csv()).ok
    with Session(engine) as session:
        assert import_plan(session, "plan.csv", fleet.plan_csv()).ok
    fleet.mark_all_seen(engine, NOW)
    yield engine
    engine.dispose()


def test_totals_equal_the_plan_when_everything_is_present(department):
    report = _report(department)
    t = report.totals
    assert t.planned == t.registered == t.seen == t.healthy == fleet.DEVICES
    assert (t.missing, t.unplanned, t.long_unseen, t.never_seen) == (0, 0, 0, 0)
    assert (t.smart_rooms_l1, t.smart_rooms_l2, t.online_meeting_rooms) == (263, 973, 58)
    assert t.smart_rooms_l1 + t.smart_rooms_l2 == 1236
    assert t.laptops.model_dump() == dict.fromkeys(("planned", "registered", "seen", "healthy"), 12_242)
    assert t.air_conditioners.model_dump() == dict.fromkeys(("planned", "registered", "seen", "healthy"), 816)
    assert t.camera_systems.model_dump() == dict.fromkeys(("planned", "registered", "seen", "healthy"), 57)
    assert len(report.schools) == 57 and not report.missing and not report.unplanned and not report.long_unseen
    assert sum(d.schools for d in report.districts) == 57 and len(report.districts) == fleet.DISTRICTS
    assert sum(d.counts.laptops.registered for d in report.districts) == 12_242
    one = _report(department, school="thcs-00")
    assert [s.id for s in one.schools] == ["thcs-00"] and one.totals == report.schools[0].counts
    q1 = _report(department, district="q1")
    assert q1.totals == next(d.counts for d in report.districts if d.id == "q1")


def test_removed_unplanned_and_aged_devices_show_up_in_the_right_rows(department):
    with Session(department) as session, session.begin():
        session.execute(update(Device).where(Device.school_id == "thcs-01", Device.uid.in_(["la-0000", "la-0001"]))
                        .values(lifecycle="retired"))
        session.execute(Device.__table__.delete().where(Device.school_id == "thcs-01", Device.uid == "ai-0000"))
        aged = session.scalars(select(Device.id).where(Device.school_id == "thcs-03",
                                                       Device.uid.in_(["cam-0", "la-0005"]))).all()
        session.execute(update(DeviceState).where(DeviceState.device_id.in_(aged))
                        .values(last_seen=NOW - dt.timedelta(days=45)))
    extra = fleet.csv_bytes(COLUMNS, [
        {"record": "device", "school": "thcs-02", "uid": "proj-1", "kind": "projector", "room": "smart_l1-0",
         "warranty_end": (NOW + dt.timedelta(days=20)).date().isoformat()},
        {"record": "device", "school": "thcs-02", "uid": "ac-spare", "kind": "air_conditioner"},  # unassigned
    ])
    with Session(department) as session:
        assert import_inventory(session, "extra.csv", extra).ok
    report = _report(department, days=30, warranty_days=30)
    t = report.totals
    assert t.planned == fleet.DEVICES
    assert t.registered == fleet.DEVICES - 3 + 2
    assert t.missing == 3 and t.unplanned == 2 and t.long_unseen == 2 and t.never_seen == 2
    assert t.seen == fleet.DEVICES - 3 - 2 and t.healthy == t.seen
    assert sorted((m.school, m.room_kind, m.device_kind, m.missing) for m in report.missing) == [
        ("thcs-01", "smart_l2", "air_conditioner", 1), ("thcs-01", "smart_l2", "laptop", 2)]
    assert sorted((d.school, d.uid, d.room_kind) for d in report.unplanned) == [
        ("thcs-02", "ac-spare", None), ("thcs-02", "proj-1", "smart_l1")]
    assert sorted((d.school, d.uid) for d in report.long_unseen) == [("thcs-03", "cam-0"), ("thcs-03", "la-0005")]
    assert [(d.school, d.uid) for d in report.warranty_ending] == [("thcs-02", "proj-1")]
    s1, s2, s3 = (next(s for s in report.schools if s.id == f"thcs-0{i}") for i in (1, 2, 3))
    laptop_line = next(line for line in s1.lines if (line.room_kind, line.device_kind) == ("smart_l2", "laptop"))
    assert laptop_line.registered == laptop_line.planned - 2 and laptop_line.missing == 2
    assert s1.counts.laptops.registered == s1.counts.laptops.planned - 2
    assert {(line.room_kind, line.device_kind, line.unplanned) for line in s2.lines if line.unplanned} == {
        ("smart_l1", "projector", 1), (None, "air_conditioner", 1)}
    assert s2.counts.air_conditioners.registered == s2.counts.air_conditioners.planned + 1
    assert s3.counts.long_unseen == 2 and s3.counts.seen == s3.counts.registered - 2
    assert s3.counts.camera_systems.seen == 1  # the NVR and three cameras still answer
    # an unassigned device fills its school's shortfall before it counts as unplanned
    with Session(department) as session:
        assert import_inventory(session, "spare.csv", fleet.csv_bytes(COLUMNS, [
            {"record": "device", "school": "thcs-01", "uid": "la-spare", "kind": "laptop"}])).ok
    s1 = next(s for s in _report(department).schools if s.id == "thcs-01")
    assert s1.counts.missing == 2 and s1.counts.unplanned == 0


def test_api_csv_and_xlsx_hold_the_numbers_of_the_json(department, tmp_path):
    with Session(department) as session, session.begin():
        session.execute(update(Device).where(Device.school_id == "thcs-05", Device.uid == "la-0000")
                        .values(lifecycle="retired"))
    report = _report(department, days=14)
    app = create_app(Settings(data_dir=tmp_path, auth=False), department, CollectorRegistry(), clock=lambda: NOW)
    app.include_router(audit_router)
    client = TestClient(app)
    body = client.get("/api/v1/audit", params={"days": 14, "lang": "en"}).json()
    assert AuditReport.model_validate(body) == report
    assert client.get("/api/v1/audit", params={"school": "thcs-05"}).json()["totals"]["missing"] == 1
    assert client.get("/api/v1/audit", params={"days": 0}).status_code == 422

    for lang in ("vi", "en"):
        response = client.get("/api/v1/audit/export", params={"format": "xlsx", "days": 14, "lang": lang})
        assert response.status_code == 200 and "attachment" in response.headers["content-disposition"]
        book = openpyxl.load_workbook(io.BytesIO(response.content), read_only=True)
        assert len(book.worksheets) == 1 + 57
        summary = list(book.worksheets[0].iter_rows(values_only=True))
        assert list(summary[0]) == summary_header(lang, 14)
        by_id = {(r[0], r[1]): r for r in summary[1:]}
        total = summary[1]
        t = body["totals"]
        assert list(total[3:14]) == [t["planned"], t["registered"], t["seen"], t["healthy"], t["missing"],
                                     t["unplanned"], t["long_unseen"], t["never_seen"], t["smart_rooms_l1"],
                                     t["smart_rooms_l2"], t["online_meeting_rooms"]]
        assert list(total[14:]) == [t[k][p] for k in ("laptops", "air_conditioners", "camera_systems")
                                    for p in ("planned", "registered", "seen", "healthy")]
        level = "Trường" if lang == "vi" else "School"
        for s in body["schools"]:
            row = by_id[(level, s["id"])]
            assert list(row[3:8]) == [s["counts"][k] for k in ("planned", "registered", "seen", "healthy", "missing")]
        sheet = book["thcs-05"]
        rows = list(sheet.iter_rows(values_only=True))
        school = next(s for s in body["schools"] if s["id"] == "thcs-05")
        assert rows[0][1] == "thcs-05" and rows[4][3:8] == tuple(
            school["counts"][k] for k in ("planned", "registered", "seen", "healthy", "missing"))
        line_rows = {(r[0], r[1]): r for r in rows[8:8 + len(school["lines"])]}
        for line in school["lines"]:
            assert line_rows[(line["room_kind"], line["device_kind"])][2:7] == (
                line["planned"], line["registered"], line["seen"], line["healthy"], line["missing"])
        book.close()

    app.include_router(audit_console_router)
    page = TestClient(app).get("/console/audit", params={"days": 14, "school": "thcs-05"})
    assert page.status_code == 200 and "Kiểm tra thiết bị so với kế hoạch" in page.text
    assert "la-0000" not in page.text and "Máy tính xách tay" in page.text  # retired: not listed as unseen
    assert "school=thcs-05" in page.text and "lang=en" in page.text
    assert "Equipment audit" in TestClient(app).get("/console/audit", params={"lang": "en"}).text

    text = render(report, "csv", "en").decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == summary_header("en", 14) and len(table) == 1 + 1 + fleet.DISTRICTS + 57
    assert [int(v) for v in table[1][3:8]] == [report.totals.planned, report.totals.registered, report.totals.seen,
                                               report.totals.healthy, report.totals.missing]
