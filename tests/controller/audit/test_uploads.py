"""Imports through the API and the console: uploads (CSV and XLSX, size-limited), the same validation and
per-row errors in the user's language as the CLI, nothing imported from a file with errors, idempotent,
technicians limited to their schools' rows, auditors refused, every import in the audit log; the console's
upload → preview (nothing kept) → confirm."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.audit.importer import COLUMNS
from controller.audit.plan import COLUMNS as PLAN_COLUMNS
from controller.audit.template_files import template_xlsx
from controller.audit.uploads import MAX_UPLOAD_BYTES
from controller.store import db
from controller.store.models import AuditLog, Device, District, EquipmentPlan, Room, School
from tests.helpers import count, make_app, make_user

from .fleet import csv_bytes

CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _inventory(school: str = "a") -> bytes:
    return csv_bytes(COLUMNS, [
        {"record": "room", "school": school, "room": "lab-2", "name": "Phòng máy 2", "kind": "computer_lab"},
        {"record": "device", "school": school, "room": "lab-2", "uid": "ac-01", "kind": "air_conditioner",
         "vendor": "Daikin", "serial": "DK-1", "purchase_date": "15/08/2024", "warranty_end": "2027-08-15"},
        {"record": "device", "school": school, "uid": "proj-01", "kind": "projector", "model": "EB-X51"},
    ])


@pytest.fixture
def world(db_url, tmp_path):
    engine = db.make_engine(db_url)
    with Session(engine) as session, session.begin():
        session.add_all([District(id="da", name="A"), District(id="db", name="B")])
        session.add_all([School(id="a", name="THCS A", district_id="da"), School(id="b", name="THCS B",
                                                                                district_id="db")])
    app = make_app(engine, tmp_path)
    users = {"admin": make_user(engine, "admin", "admin", all_schools=True),
             "tech_a": make_user(engine, "tech-a", "technician", schools=("a",)),
             "auditor": make_user(engine, "auditor", "auditor", all_schools=True)}
    yield engine, TestClient(app), users
    engine.dispose()


def _upload(client, headers, data: bytes, name: str = "inventory.csv", kind: str = "inventory", **params):
    media = XLSX if name.endswith(".xlsx") else CSV
    return client.post(f"/api/v1/imports/{kind}", params=params, files={"file": (name, data, media)},
                       headers=headers)


def _devices(engine) -> set[tuple[str, str]]:
    with Session(engine) as session:
        return set(session.execute(select(Device.school_id, Device.uid)).tuples())


def test_api_dry_run_then_import_then_again_changes_nothing(world):
    engine, client, users = world
    preview = _upload(client, users["admin"], _inventory(), dry_run="true")
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["ok"] and body["dry_run"] and body["created"] == {"districts": 0, "schools": 0, "rooms": 1,
                                                                   "devices": 2}
    assert {(c["entity"], c["action"], c["key"]) for c in body["changes"]} == {
        ("rooms", "create", "a/lab-2"), ("devices", "create", "a/ac-01"), ("devices", "create", "a/proj-01")}
    assert "Chưa nhập gì" in body["summary"]
    assert _devices(engine) == set() and count(engine, Room) == 0  # rolled back
    assert count(engine, AuditLog, AuditLog.action.like("inventory%")) == 0

    done = _upload(client, users["admin"], _inventory())
    assert done.status_code == 200 and not done.json()["dry_run"]
    assert _devices(engine) == {("a", "ac-01"), ("a", "proj-01")}
    with Session(engine) as session:
        ac = session.scalar(select(Device).where(Device.uid == "ac-01"))
        assert ac.watched_by == "manual" and ac.purchase_date.isoformat() == "2024-08-15"
        log = session.scalars(select(AuditLog).where(AuditLog.action == "inventory.import")).all()
    assert [(e.actor, e.target) for e in log] == [("admin", "file:inventory.csv")]

    again = _upload(client, users["admin"], _inventory(), lang="en").json()
    assert again["created"] == {"districts": 0, "schools": 0, "rooms": 0, "devices": 0}
    assert again["updated"] == {"districts": 0, "schools": 0, "rooms": 0, "devices": 0}
    assert again["unchanged"] == 3 and again["changes"] == [] and again["summary"].startswith("Imported 3 rows")
    assert count(engine, AuditLog, AuditLog.action == "inventory.import") == 1  # nothing changed: nothing logged

    changed = csv_bytes(COLUMNS, [{"record": "device", "school": "a", "uid": "ac-01", "kind": "air_conditioner",
                                   "warranty_end": "31/12/2028"}])
    update = _upload(client, users["admin"], changed, dry_run="true").json()
    assert update["changes"] == [{"entity": "devices", "action": "update", "key": "a/ac-01",
                                  "fields": {"warranty_end": "2028-12-31"}}]


def test_api_errors_by_row_and_column_in_the_users_language_and_nothing_imported(world):
    engine, client, users = world
    bad = csv_bytes(COLUMNS, [
        {"record": "room", "school": "a", "room": "lab-2", "name": "Lab", "kind": "computer_lab"},
        {"record": "device", "school": "a", "uid": "AC 01", "kind": "fridge"},
        {"record": "device", "school": "a", "uid": "ac-02", "kind": "air_conditioner", "room": "nowhere"},
    ])
    en = _upload(client, users["admin"], bad, lang="en")
    assert en.status_code == 422
    errors = {(e["row"], e["column"], e["code"]): e["message"] for e in en.json()["errors"]}
    assert errors[(3, "uid", "bad_id")].startswith("Row 3, column 'uid': 'AC 01' is not a valid id")
    assert "must be one of" in errors[(3, "kind", "choice")]
    assert (4, "room", "unknown_room") in errors
    vi = _upload(client, users["admin"], bad).json()
    assert any(e["message"].startswith("Dòng 3, cột 'uid'") for e in vi["errors"])
    assert "không nhập gì" in vi["summary"]
    assert count(engine, Room) == 0 and _devices(engine) == set()

    wrong_type = _upload(client, users["admin"], b"hello", name="inventory.txt", lang="en")
    assert wrong_type.status_code == 422 and "only .csv and .xlsx" in wrong_type.json()["errors"][0]["message"]
    not_a_form = client.post("/api/v1/imports/inventory", json={"file": "x"}, headers=users["admin"])
    assert not_a_form.status_code == 422
    assert client.post("/api/v1/imports/unknown", files={"file": ("x.csv", b"a", CSV)},
                       headers=users["admin"]).status_code == 422


def test_api_plan_from_xlsx(world):
    engine, client, users = world
    rows = [{"school": "a", "room_kind": "smart_l2", "device_kind": "laptop", "planned": 45},
            {"school": "b", "room_kind": "corridor", "device_kind": "camera", "planned": 8}]
    answer = _upload(client, users["admin"], template_xlsx(PLAN_COLUMNS, rows), name="ke-hoach.xlsx", kind="plan")
    assert answer.status_code == 200, answer.text
    assert answer.json()["created"] == {"plan_lines": 2}
    with Session(engine) as session:
        assert set(session.execute(select(EquipmentPlan.school_id, EquipmentPlan.planned)).tuples()) == {
            ("a", 45), ("b", 8)}
    assert count(engine, AuditLog, AuditLog.action == "plan.import") == 1


def test_api_technicians_import_their_schools_only_and_auditors_not_at_all(world):
    engine, client, users = world
    mine = _upload(client, users["tech_a"], _inventory("a"))
    assert mine.status_code == 200 and _devices(engine) == {("a", "ac-01"), ("a", "proj-01")}
    with Session(engine) as session:
        assert session.scalar(select(AuditLog.actor).where(AuditLog.action == "inventory.import")) == "tech-a"

    mixed = csv_bytes(COLUMNS, [
        {"record": "device", "school": "a", "uid": "ac-09", "kind": "air_conditioner"},
        {"record": "device", "school": "b", "uid": "ac-10", "kind": "air_conditioner"},
        {"record": "device", "school": "nowhere", "uid": "ac-11", "kind": "air_conditioner"},
        {"record": "district", "district": "dz", "name": "New district"},
    ])
    refused = _upload(client, users["tech_a"], mixed, lang="en")
    assert refused.status_code == 403
    errors = {(e["row"], e["code"]): e["message"] for e in refused.json()["errors"]}
    assert errors == {
        (3, "scope_school"): "Row 3, column 'school': you may not import rows of school 'b'",
        (4, "scope_school"): "Row 4, column 'school': you may not import rows of school 'nowhere'",
        (5, "scope_district"): "Row 5, column 'district': only department-wide users may import districts ('dz')"}
    # ("nowhere" is refused the same way as "b": a refusal does not tell which schools exist)
    assert ("a", "ac-09") not in _devices(engine) and count(engine, District) == 2
    with Session(engine) as session:
        log = session.scalar(select(AuditLog).where(AuditLog.action == "inventory.import_refused"))
    assert log.actor == "tech-a" and log.detail["outside_scope"] == ["b", "dz", "nowhere"]

    plan = csv_bytes(PLAN_COLUMNS, [{"school": "b", "room_kind": "corridor", "device_kind": "camera", "planned": 1}])
    assert _upload(client, users["tech_a"], plan, name="plan.csv", kind="plan").status_code == 403

    assert _upload(client, users["auditor"], _inventory()).status_code == 403
    assert _upload(client, users["auditor"], _inventory(), dry_run="true").status_code == 403
    assert client.post("/api/v1/imports/inventory", files={"file": ("i.csv", _inventory(), CSV)}).status_code == 401
    assert count(engine, EquipmentPlan) == 0


def test_api_refuses_a_file_over_the_limit(world):
    engine, client, users = world
    big = _inventory() + b"#" * (MAX_UPLOAD_BYTES + 1)
    answer = _upload(client, users["admin"], big, lang="en")
    assert answer.status_code == 413 and "larger than 5 MB" in answer.json()["detail"]
    assert _devices(engine) == set()


# --- the console -------------------------------------------------------------------------------------------

def _login(client: TestClient, username: str) -> None:
    page = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    done = client.post("/console/login", data={"username": username, "password": "correct horse battery",
                                                "csrf": csrf}, follow_redirects=False)
    assert done.status_code == 303


def _form_csrf(html: str) -> str:
    return re.search(r'<form method="post" action="/console/import/preview"[^>]*>\s*<input type="hidden" '
                     r'name="csrf" value="([^"]+)"', html).group(1)


def test_console_upload_preview_then_confirm(world):
    engine, client, _ = world
    _login(client, "tech-a")
    page = client.get("/console/import")
    assert page.status_code == 200 and 'type="file"' in page.text and "/console/import" in page.text
    assert "Bạn chỉ nhập được dữ liệu của các trường: a." in page.text
    csrf = _form_csrf(page.text)

    preview = client.post("/console/import/preview", data={"csrf": csrf, "kind": "inventory"},
                          files={"file": ("danh-muc.csv", _inventory(), CSV)})
    assert preview.status_code == 200
    assert 'id="import-changes"' in preview.text and "a/ac-01" in preview.text and "thêm" in preview.text
    assert "sẽ thêm 3" in preview.text
    assert _devices(engine) == set() and count(engine, Room) == 0  # a preview keeps nothing
    token = re.search(r'name="token" value="([^"]+)"', preview.text).group(1)

    forged = client.post("/console/import/confirm", data={"token": token, "csrf": "forged"}, follow_redirects=False)
    assert forged.status_code == 403 and _devices(engine) == set()
    confirmed = client.post("/console/import/confirm", data={"token": token, "csrf": csrf}, follow_redirects=False)
    assert confirmed.status_code == 303 and confirmed.headers["location"] == "/console/import"
    after = client.get("/console/import")
    assert "danh-muc.csv: Đã nhập 3 dòng: thêm 3" in after.text
    assert _devices(engine) == {("a", "ac-01"), ("a", "proj-01")}
    assert count(engine, AuditLog, AuditLog.action == "inventory.import", AuditLog.actor == "tech-a") == 1

    again = client.post("/console/import/confirm", data={"token": token, "csrf": csrf})  # used once
    assert "hết hạn" in again.text and count(engine, AuditLog, AuditLog.action == "inventory.import") == 1


def test_console_shows_errors_and_refusals_and_keeps_nothing(world):
    engine, client, _ = world
    _login(client, "tech-a")
    csrf = _form_csrf(client.get("/console/import?lang=en").text)
    bad = csv_bytes(COLUMNS, [{"record": "device", "school": "a", "uid": "ac-01", "kind": "fridge"},
                              {"record": "device", "school": "b", "uid": "ac-02", "kind": "air_conditioner"}])
    page = client.post("/console/import/preview", data={"csrf": csrf, "kind": "inventory"},
                       files={"file": ("bad.csv", bad, CSV)})
    assert page.status_code == 200 and 'id="import-errors"' in page.text
    assert "Row 3, column &#39;school&#39;: you may not import rows of school &#39;b&#39;" in page.text
    assert 'name="token"' not in page.text and _devices(engine) == set()
    empty = client.post("/console/import/preview", data={"csrf": csrf, "kind": "plan"},
                        files={"file": ("", b"", CSV)})
    assert "choose a .csv or .xlsx file" in empty.text
    no_token = client.post("/console/import/preview", data={"kind": "inventory"},
                           files={"file": ("i.csv", _inventory(), CSV)})
    assert no_token.status_code == 403 and _devices(engine) == set()


def test_console_auditors_see_no_import(world):
    engine, client, _ = world
    _login(client, "auditor")
    page = client.get("/console/import")
    assert page.status_code == 200 and 'type="file"' not in page.text and "chỉ được xem" in page.text
    assert 'href="/console/import"' not in client.get("/console").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    tried = client.post("/console/import/preview", data={"csrf": csrf, "kind": "inventory"},
                        files={"file": ("i.csv", _inventory(), CSV)})
    assert tried.status_code == 200 and 'id="import-changes"' not in tried.text and _devices(engine) == set()
