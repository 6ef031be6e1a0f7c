"""Maintenance windows through the API (SQLite and PostgreSQL): created, listed within the caller's schools
(optionally only those not over yet), and deleted by the school's technician or an admin, with the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.store import db
from controller.store.models import AuditLog, MaintenanceWindow
from tests.helpers import add_school, make_app, make_user

pytestmark = pytest.mark.integration


@pytest.fixture
def world(db_url: str, tmp_path: Any) -> Any:
    engine = db.make_engine(db_url)
    add_school(engine, "a")
    add_school(engine, "b")
    users = {"tech_a": make_user(engine, "tech-a", "technician", schools=("a",)),
             "tech_b": make_user(engine, "tech-b", "technician", schools=("b",)),
             "auditor": make_user(engine, "auditor", "auditor", all_schools=True),
             "admin": make_user(engine, "admin", "admin", all_schools=True)}
    yield TestClient(make_app(engine, tmp_path)), engine, users
    engine.dispose()


def _window(client: TestClient, auth: dict[str, str], school: str, starts: str, ends: str, reason: str) -> int:
    made = client.post("/api/v1/maintenance-windows", headers=auth,
                       json={"school": school, "starts_at": starts, "ends_at": ends, "reason": reason})
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def test_list_is_scoped_and_delete_is_audited(world: Any) -> None:
    client, engine, users = world
    past = _window(client, users["tech_a"], "a", "2020-02-01T00:00:00+07:00", "2020-02-10T00:00:00+07:00", "Tết 2020")
    tet = _window(client, users["tech_a"], "a", "2099-02-01T00:00:00+07:00", "2099-02-10T00:00:00+07:00", "Tết 2099")
    other = _window(client, users["tech_b"], "b", "2099-03-01T00:00:00+07:00", "2099-03-02T00:00:00+07:00", "Sơn")

    mine = client.get("/api/v1/maintenance-windows", headers=users["tech_a"]).json()
    assert mine["total"] == 2 and [w["id"] for w in mine["items"]] == [past, tet]  # earliest first
    assert mine["items"][1] == {"id": tet, "school": "a", "starts_at": mine["items"][1]["starts_at"],
                                "ends_at": mine["items"][1]["ends_at"], "reason": "Tết 2099"}
    assert dt.datetime.fromisoformat(mine["items"][1]["starts_at"]) == dt.datetime(2099, 1, 31, 17, tzinfo=dt.UTC)
    upcoming = client.get("/api/v1/maintenance-windows", params={"upcoming": True}, headers=users["tech_a"]).json()
    assert [w["id"] for w in upcoming["items"]] == [tet]
    assert client.get("/api/v1/maintenance-windows", params={"school": "b"}, headers=users["tech_a"]).json() == \
        {"items": [], "total": 0, "limit": 100, "offset": 0}  # school b's windows are not theirs to see
    every = client.get("/api/v1/maintenance-windows", headers=users["auditor"]).json()
    assert {w["id"] for w in every["items"]} == {past, tet, other}
    page = client.get("/api/v1/maintenance-windows", params={"limit": 1, "offset": 1}, headers=users["admin"]).json()
    assert page["total"] == 3 and [w["id"] for w in page["items"]] == [tet]

    assert client.delete(f"/api/v1/maintenance-windows/{other}", headers=users["tech_a"]).status_code == 404
    assert client.delete(f"/api/v1/maintenance-windows/{tet}", headers=users["auditor"]).status_code == 403
    assert client.delete(f"/api/v1/maintenance-windows/{tet}").status_code == 401
    assert client.delete(f"/api/v1/maintenance-windows/{tet}", headers=users["tech_a"]).status_code == 204
    assert client.delete(f"/api/v1/maintenance-windows/{tet}", headers=users["tech_a"]).status_code == 404
    assert client.delete(f"/api/v1/maintenance-windows/{other}", headers=users["admin"]).status_code == 204
    with Session(engine) as session:
        assert session.scalars(select(MaintenanceWindow.id)).all() == [past]
        removed = session.execute(select(AuditLog.actor, AuditLog.target, AuditLog.detail)
                                  .where(AuditLog.action == "maintenance.remove").order_by(AuditLog.id)).all()
    assert [(actor, target, detail["window_id"], detail["reason"]) for actor, target, detail in removed] == \
        [("tech-a", "school:a", tet, "Tết 2099"), ("admin", "school:b", other, "Sơn")]
    assert client.get("/api/v1/maintenance-windows", params={"school": "bad school"},
                      headers=users["admin"]).status_code == 422
