"""Inventory and plan imports on both backends: idempotent upserts, all-or-nothing, errors by row and column."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controller.audit.importer import COLUMNS, import_inventory
from controller.audit.plan import import_plan
from controller.audit.template_files import TEMPLATES, template_csv, template_xlsx
from controller.store import db
from controller.store.models import AuditLog, Device, District, EquipmentPlan, Room, School
from tests.helpers import count

from .fleet import csv_bytes

TEMPLATES_DIR = Path(__file__).parents[3] / "docs" / "templates"


def _counts(engine) -> dict[str, int]:
    return {m.__tablename__: count(engine, m) for m in (District, School, Room, Device, EquipmentPlan, AuditLog)}


def _xlsx(columns, rows) -> bytes:
    return template_xlsx(tuple(columns), rows)


@pytest.fixture
def engine(db_url):
    engine = db.make_engine(db_url)
    yield engine
    engine.dispose()


def test_templates_in_docs_are_current_and_import_cleanly(engine):
    for name, (columns, rows) in TEMPLATES.items():
        assert (TEMPLATES_DIR / f"{name}.csv").read_bytes() == template_csv(columns, rows), "regenerate templates"
        book = openpyxl.load_workbook(TEMPLATES_DIR / f"{name}.xlsx", read_only=True)
        assert [list(r) for r in book.worksheets[0].iter_rows(values_only=True)] == \
            [list(columns)] + [[row.get(c) for c in columns] for row in rows]
        book.close()
    with Session(engine) as session:
        result = import_inventory(session, TEMPLATES_DIR / "inventory-template.xlsx")
    assert result.ok, [e.text("en") for e in result.errors]
    assert result.created == {"districts": 1, "schools": 1, "rooms": 3, "devices": 3}
    with Session(engine) as session:
        assert import_plan(session, TEMPLATES_DIR / "plan-template.csv").created == {"plan_lines": 5}
        ac = session.scalars(select(Device).where(Device.uid == "ac-p201-1")).one()
        assert (ac.kind, ac.watched_by, ac.serial, ac.asset_tag) == ("air_conditioner", "manual", "E012345",
                                                                     "TS-2025-0101")
        assert (ac.purchase_date, ac.warranty_end) == (dt.date(2025, 8, 15), dt.date(2027, 8, 15))
        assert ac.room is not None and ac.room.code == "P201"
        projector = session.scalars(select(Device).where(Device.uid == "proj-p101")).one()
        assert projector.warranty_end == dt.date(2027, 8, 15)  # DD/MM/YYYY
        school = session.get(School, "thcs-le-loi")
        assert school is not None and school.district_id == "q1" and school.timezone == "Asia/Ho_Chi_Minh"
    # the CSV template is the same inventory: importing it changes nothing
    with Session(engine) as session:
        again = import_inventory(session, TEMPLATES_DIR / "inventory-template.csv")
    assert again.ok and again.changed == 0 and again.unchanged == again.rows


def test_reimporting_changes_nothing_and_edits_update_in_place(engine):
    rows = [
        {"record": "district", "district": "q3", "name": "Quận 3"},
        {"record": "school", "school": "th-a", "name": "TH A", "district": "q3"},
        {"record": "room", "school": "th-a", "room": "R1", "kind": "smart_l2", "name": "Phòng 1"},
        {"record": "device", "school": "th-a", "uid": "ac-1", "kind": "air_conditioner", "room": "R1",
         "serial": 12345, "purchase_date": dt.datetime(2024, 1, 2), "warranty_end": "2026-01-02"},
    ]
    data = _xlsx(COLUMNS, rows)
    with Session(engine) as session:
        first = import_inventory(session, "inv.xlsx", data, actor="tester")
    assert first.ok and first.changed == 4
    before = _counts(engine)
    with Session(engine) as session:
        second = import_inventory(session, "inv.xlsx", data)
    assert second.ok and second.changed == 0 and second.unchanged == 4
    assert _counts(engine) == before  # not even an audit-log line
    with Session(engine) as session:
        device = session.scalars(select(Device).where(Device.uid == "ac-1")).one()
        assert device.serial == "12345" and device.purchase_date == dt.date(2024, 1, 2)
        log = session.scalars(select(AuditLog)).one()
        assert (log.actor, log.action, log.target) == ("tester", "inventory.import", "file:inv.xlsx")
    # an edit updates in place; blank optional cells erase nothing
    rows[3] = {"record": "device", "school": "th-a", "uid": "ac-1", "kind": "air_conditioner", "model": "X2"}
    with Session(engine) as session:
        third = import_inventory(session, "inv.csv", csv_bytes(COLUMNS, rows))
    assert third.updated["devices"] == 1 and third.created["devices"] == 0
    with Session(engine) as session:
        device = session.scalars(select(Device).where(Device.uid == "ac-1")).one()
        assert (device.model, device.serial, device.room_id is not None) == ("X2", "12345", True)
    plan = csv_bytes(("school", "room_kind", "device_kind", "planned"),
                     [{"school": "th-a", "room_kind": "smart_l2", "device_kind": "laptop", "planned": 40}])
    with Session(engine) as session:
        assert import_plan(session, "plan.csv", plan).created == {"plan_lines": 1}
    with Session(engine) as session:
        assert import_plan(session, "plan.csv", plan).changed == 0
    with Session(engine) as session:
        changed = import_plan(session, "plan.csv", plan.replace(b",40", b",42"))
        assert changed.updated == {"plan_lines": 1}
        assert session.scalar(select(func.sum(EquipmentPlan.planned))) == 42


BAD_ROWS = [
    {"record": "district", "district": "q1", "name": "Quận 1"},                                     # row 2: fine
    {"record": "school", "school": "THCS A", "name": "A"},                                           # 3: bad id
    {"record": "school", "school": "thcs-b", "name": "B", "district": "q9", "timezone": "Mars/Base"},  # 4: 2 errors
    {"record": "room", "school": "thcs-b", "room": "R1", "kind": "smart_l3"},                         # 5: kind
    {"record": "device", "school": "thcs-b", "uid": "ac-1", "kind": "air_conditioner", "room": "R9",
     "purchase_date": "31/02/2025"},                                                                  # 6: room, date
    {"record": "device", "school": "thcs-b", "uid": "ac-1", "kind": "air_conditioner"},              # 7: duplicate
    {"record": "device", "school": "thcs-b", "uid": "ac-2", "kind": "projector", "purchase_date": "2025-06-01",
     "warranty_end": "2024-06-01"},                                                                   # 8: dates
    {"record": "lamp", "school": "thcs-b"},                                                           # 9: record
    {"record": "room", "school": "thcs-b", "room": "R2", "kind": "office", "vendor": "x"},            # 10: not used
    {"record": "device", "school": "thcs-c", "kind": "laptop"},                                      # 11: uid, school
]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_file_with_errors_imports_nothing_and_names_row_and_column(engine, fmt):
    data = csv_bytes(COLUMNS, BAD_ROWS) if fmt == "csv" else _xlsx(COLUMNS, BAD_ROWS)
    with Session(engine) as session:
        result = import_inventory(session, f"bad.{fmt}", data)
    assert not result.ok
    assert _counts(engine) == dict.fromkeys(_counts(engine), 0)  # not even the valid district of row 2
    where = {(e.row, e.column, e.code) for e in result.errors}
    assert where == {
        (3, "school", "bad_id"), (4, "district", "unknown_district"), (4, "timezone", "timezone"),
        (5, "kind", "choice"), (6, "room", "unknown_room"), (6, "purchase_date", "date"),
        (7, "uid", "duplicate"), (8, "warranty_end", "warranty_before_purchase"), (9, "record", "choice"),
        (10, "vendor", "not_allowed"), (11, "uid", "missing"), (11, "school", "unknown_school"),
    }
    vi = [e.text("vi") for e in result.errors]
    en = [e.text("en") for e in result.errors]
    assert "Dòng 5, cột 'kind': 'smart_l3' không hợp lệ, phải là một trong: smart_l1, smart_l2" in vi[3]
    assert en[3].startswith("Row 5, column 'kind': 'smart_l3' is not valid, must be one of: smart_l1, smart_l2")
    assert "Dòng 7, cột 'uid': trùng với dòng 6" in vi and "Row 7, column 'uid': duplicates row 6" in en
    assert "Row 6, column 'room': school 'thcs-b' has no room 'R9' in the file or registered" in en
    assert "Dòng 8, cột 'warranty_end': ngày hết bảo hành trước ngày mua" in vi
    assert result.summary("vi") == f"{len(where)} lỗi; không nhập gì từ tệp này."
    assert result.as_dict("en")["errors"][0] == {"row": 3, "column": "school", "code": "bad_id",
                                                "message": en[0]}


def test_file_level_and_plan_errors(engine, tmp_path):
    with Session(engine) as session:
        wrong = import_inventory(session, "x.csv", b"record,district,scool\n")
    assert {(e.column, e.code) for e in wrong.errors} == {
        ("school", "missing_column"), ("room", "missing_column"), ("uid", "missing_column"),
        ("name", "missing_column"), ("kind", "missing_column"), ("scool", "unknown_column")}
    assert wrong.errors[0].text("en").startswith("File: required column")
    with Session(engine) as session:
        assert import_inventory(session, "x.txt", b"a,b").errors[0].text("vi") == "Tệp: chỉ nhận tệp .csv hoặc .xlsx"
    with Session(engine) as session:
        assert import_inventory(session, "x.xlsx", b"not a zip").errors[0].code == "unreadable"
    with Session(engine) as session:
        assert import_inventory(session, tmp_path / "absent.csv").errors[0].code == "unreadable"
    with Session(engine) as session:
        assert import_inventory(session, "s.csv", csv_bytes(COLUMNS, [
            {"record": "school", "school": "s1", "name": "S1"}])).ok
    plan = csv_bytes(("school", "room_kind", "device_kind", "planned"), [
        {"school": "s1", "room_kind": "smart_l1", "device_kind": "laptop", "planned": 3},
        {"school": "s2", "room_kind": "smart_l1", "device_kind": "laptop", "planned": 3},
        {"school": "s1", "room_kind": "smart_l1", "device_kind": "laptop", "planned": 4},
        {"school": "s1", "room_kind": "smart_l1", "device_kind": "pc", "planned": -1},
        {"school": "s1", "room_kind": "smart_l1", "device_kind": "tablet", "planned": "ba"},
    ])
    with Session(engine) as session:
        result = import_plan(session, "plan.csv", plan)
    assert {(e.row, e.column, e.code) for e in result.errors} == {
        (3, "school", "unknown_school"), (4, "device_kind", "duplicate"), (5, "planned", "int"),
        (6, "device_kind", "choice"), (6, "planned", "int")}
    assert "Row 5, column 'planned': '-1' must be a whole number, zero or more" in [e.text("en") for e in result.errors]
    assert count(engine, EquipmentPlan) == 0


def test_xlsx_reader_keeps_spreadsheet_row_numbers_and_cell_types():
    from controller.audit.tabular import read_table

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Record", " School ", "uid"])
    sheet.append(["school", "s1", None])
    sheet.append([None, None, None])  # blank rows are skipped but counted
    sheet.append(["device", "s1", 42.0])
    out = io.BytesIO()
    book.save(out)
    table = read_table("x.xlsx", out.getvalue())
    assert table.columns == ["record", "school", "uid"]
    assert table.rows == [(2, {"record": "school", "school": "s1", "uid": None}),
                          (4, {"record": "device", "school": "s1", "uid": "42"})]
    semi = read_table("x.csv", "\ufeffrecord;school\nschool;s1\n".encode())
    assert semi.rows == [(2, {"record": "school", "school": "s1"})]
