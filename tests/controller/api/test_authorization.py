"""Authorization, generated from the OpenAPI document (OWASP API1): every route is tried without
credentials, as a read-only auditor, and as a technician of school A holding school B's ids.
A route added without a case here fails the coverage check."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from controller.api.app import create_app
from controller.config import Settings
from controller.metrics import build_registry
from controller.store import db
from controller.store.models import (
    Command,
    CommandSchedule,
    Device,
    DeviceInventory,
    District,
    Holiday,
    MaintenanceWindow,
    Room,
    School,
)
from controller.store.polls import FaultCheck, PollResult, record_polls
from tests.helpers import make_user

T0 = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("POST", "/api/v1/enrolments")}


def _seed(engine) -> dict[str, Any]:
    ids: dict[str, Any] = {}
    with Session(engine) as session, session.begin():
        session.add_all([District(id="da", name="A"), District(id="db", name="B")])
        session.add_all([School(id="a", name="THCS A", district_id="da"),
                         School(id="b", name="THCS B", district_id="db")])
        session.flush()
        for school in ("a", "b"):
            room = Room(school_id=school, code="lab", name="Lab", kind="computer_lab")
            session.add(room)
            session.flush()
            device = Device(school_id=school, uid=f"pc-{school}", kind="pc", room_id=room.id)
            session.add(device)
            session.flush()
            session.add(DeviceInventory(device_id=device.id, hash="h" * 12, hardware={"hostname": school},
                                        software=[], session=1, seq=1, updated_at=T0))
            session.add(Command(id=f"cmd-{school}-0001", device_id=device.id, action="message", args={},
                                state="pending", expires=T0 + dt.timedelta(days=365), created_at=T0))
            holiday = Holiday(school_id=school, starts_on=dt.date(2027, 2, 5), ends_on=dt.date(2027, 2, 13),
                              name=f"Tết {school}")
            schedule = CommandSchedule(school_id=school, kind="pc", action="shutdown", at_time="17:30")
            window = MaintenanceWindow(school_id=school, starts_at=T0, ends_at=T0 + dt.timedelta(days=400),
                                       reason=f"THCS {school.upper()} rewiring")  # a leak would show the name
            session.add_all([holiday, schedule, window])
            session.flush()
            ids[school] = {"device": device.id, "room": room.id, "holiday": holiday.id, "schedule": schedule.id,
                           "window": window.id}
    for school in ("a", "b"):
        record_polls(engine, [PollResult(ids[school]["device"], T0, False,
                                         faults=(FaultCheck("switch.unreachable", True),))])
    from sqlalchemy import select

    from controller.store.models import Incident

    with Session(engine) as session:
        for school in ("a", "b"):
            ids[school]["incident"] = session.scalar(select(Incident.id).where(Incident.school_id == school))
    return ids


def _cases(b: dict[str, Any]) -> dict[tuple[str, str], tuple[str, dict[str, Any] | None]]:
    """Every route with a URL aimed at school B and, for writes, a body aimed at school B."""
    dev, inc = b["device"], b["incident"]
    return {
        ("GET", "/api/v1/districts"): ("/api/v1/districts", None),
        ("GET", "/api/v1/schools"): ("/api/v1/schools", None),
        ("GET", "/api/v1/rooms"): ("/api/v1/rooms?school=b", None),
        ("GET", "/api/v1/devices"): ("/api/v1/devices?school=b", None),
        ("GET", "/api/v1/devices/{device_id}"): (f"/api/v1/devices/{dev}", None),
        ("GET", "/api/v1/devices/{device_id}/inventory"): (f"/api/v1/devices/{dev}/inventory", None),
        ("POST", "/api/v1/commands"): ("/api/v1/commands", {"device_id": dev, "action": "reboot"}),
        ("GET", "/api/v1/commands"): (f"/api/v1/commands?device_id={dev}", None),
        ("GET", "/api/v1/incidents"): ("/api/v1/incidents?school=b", None),
        ("GET", "/api/v1/incidents/{incident_id}"): (f"/api/v1/incidents/{inc}", None),
        ("POST", "/api/v1/incidents/{incident_id}/acknowledge"): (f"/api/v1/incidents/{inc}/acknowledge", {}),
        ("POST", "/api/v1/incidents/{incident_id}/resolve"): (f"/api/v1/incidents/{inc}/resolve", {}),
        ("POST", "/api/v1/incidents/{incident_id}/assign"): (f"/api/v1/incidents/{inc}/assign", {"assignee": "x"}),
        ("POST", "/api/v1/incidents/{incident_id}/comments"): (f"/api/v1/incidents/{inc}/comments", {"text": "x"}),
        ("POST", "/api/v1/maintenance-windows"): ("/api/v1/maintenance-windows", {
            "school": "b", "starts_at": "2027-02-01T00:00:00+07:00", "ends_at": "2027-02-10T00:00:00+07:00"}),
        ("GET", "/api/v1/maintenance-windows"): ("/api/v1/maintenance-windows?school=b", None),
        ("DELETE", "/api/v1/maintenance-windows/{window_id}"): (f"/api/v1/maintenance-windows/{b['window']}", None),
        ("POST", "/api/v1/notification-routes"): ("/api/v1/notification-routes", {
            "school": "b", "channel": "webhook", "target": "http://127.0.0.1:9/x"}),
        ("GET", "/api/v1/audit"): ("/api/v1/audit?school=b", None),
        ("GET", "/api/v1/audit/export"): ("/api/v1/audit/export?school=b&format=csv", None),
        ("POST", "/api/v1/imports/{kind}"): ("/api/v1/imports/inventory", {"__file__": (
            "inventory.csv", b"record,district,school,room,uid,name,kind\nroom,,b,lab-2,,Lab 2,computer_lab\n")}),
        ("GET", "/api/v1/reports/availability"): (
            "/api/v1/reports/availability?school=b&start=2026-11-23T00:00:00%2B07:00&end=2026-11-30T00:00:00%2B07:00",
            None),
        ("GET", "/api/v1/schools/{school_id}/timetable"): ("/api/v1/schools/b/timetable", None),
        ("PUT", "/api/v1/schools/{school_id}/timetable"): ("/api/v1/schools/b/timetable", {"hours_start": "07:30"}),
        ("POST", "/api/v1/schools/{school_id}/timetable/import"): ("/api/v1/schools/b/timetable/import", None),
        ("GET", "/api/v1/holidays"): ("/api/v1/holidays?school=b", None),
        ("POST", "/api/v1/holidays"): ("/api/v1/holidays", {"school": "b", "starts_on": "2027-02-05", "name": "Tết"}),
        ("DELETE", "/api/v1/holidays/{holiday_id}"): (f"/api/v1/holidays/{b['holiday']}", None),
        ("GET", "/api/v1/schedules"): ("/api/v1/schedules?school=b", None),
        ("POST", "/api/v1/schedules"): ("/api/v1/schedules", {"school": "b", "kind": "pc", "action": "shutdown",
                                                               "at_time": "17:30"}),
        ("PATCH", "/api/v1/schedules/{schedule_id}"): (f"/api/v1/schedules/{b['schedule']}", {"enabled": False}),
        ("DELETE", "/api/v1/schedules/{schedule_id}"): (f"/api/v1/schedules/{b['schedule']}", None),
        ("GET", "/api/v1/reports/energy"): (
            "/api/v1/reports/energy?school=b&start=2026-11-23T00:00:00%2B07:00&end=2026-11-30T00:00:00%2B07:00", None),
        ("GET", "/api/v1/reports/energy/export"): (
            "/api/v1/reports/energy/export?school=b&format=csv&start=2026-11-23T00:00:00%2B07:00"
            "&end=2026-11-30T00:00:00%2B07:00", None),
        ("GET", "/healthz"): ("/healthz", None),
        ("GET", "/readyz"): ("/readyz", None),
        ("GET", "/metrics"): ("/metrics", None),
        ("POST", "/api/v1/enrolments"): ("/api/v1/enrolments", {"token": "cfe_nothing-here"}),
    }


@pytest.fixture
def world(db_url, tmp_path):
    engine = db.make_engine(db_url)
    ids = _seed(engine)
    registry, _ = build_registry(engine, 180)
    app = create_app(Settings(data_dir=tmp_path, metrics_token="m"), engine, registry)
    users = {"auditor": make_user(engine, "auditor", "auditor", all_schools=True),
             "tech_a": make_user(engine, "tech-a", "technician", schools=("a",)),
             "district_a": make_user(engine, "dist-a", "auditor", district="da"),
             "admin": make_user(engine, "admin", "admin", all_schools=True)}
    yield app, TestClient(app), ids, users
    engine.dispose()


def _call(client: TestClient, method: str, url: str, body: Any, headers: dict[str, str] | None = None):
    if isinstance(body, dict) and "__file__" in body:  # an upload (multipart), e.g. the imports
        return client.request(method, url, files={"file": body["__file__"]}, headers=headers or {})
    return client.request(method, url, json=body if method != "GET" else None, headers=headers or {})


def test_every_route_is_covered(world):
    app, _, ids, _ = world
    routes = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    assert routes == set(_cases(ids["b"])), "a route without an authorization case: add it to _cases"


def test_nothing_but_the_public_routes_answers_without_credentials(world):
    _, client, ids, _ = world
    for (method, path), (url, body) in _cases(ids["b"]).items():
        status = _call(client, method, url, body).status_code
        if (method, path) in PUBLIC:
            assert status != 401 or path == "/metrics", (method, path, status)
        else:
            assert status == 401, (method, path, status)
    assert client.get("/metrics").status_code == 401  # its own bearer token
    assert client.get("/console", follow_redirects=False).status_code == 303  # to the login page


def test_an_auditor_reads_everything_and_changes_nothing(world):
    _, client, ids, users = world
    for (method, path), (url, body) in _cases(ids["b"]).items():
        if (method, path) in PUBLIC:
            continue
        status = _call(client, method, url, body, users["auditor"]).status_code
        if method == "GET":
            assert status == 200, (method, path, status)
        else:
            assert status == 403, (method, path, status)


def test_a_technician_of_school_a_cannot_reach_school_b(world):
    _, client, ids, users = world
    for (method, path), (url, body) in _cases(ids["b"]).items():
        if (method, path) in PUBLIC:
            continue
        response = _call(client, method, url, body, users["tech_a"])
        if "{" in path or method != "GET":
            assert response.status_code in (403, 404), (method, path, response.status_code)
        else:
            assert response.status_code == 200, (method, path, response.status_code)
            text = json.dumps(response.json()) if "json" in response.headers["content-type"] else response.text
            assert "THCS B" not in text and "pc-b" not in text and "cmd-b-" not in text, (method, path)
    # And school A's own things are there for them.
    mine = client.get(f"/api/v1/devices/{ids['a']['device']}", headers=users["tech_a"])
    assert mine.status_code == 200 and mine.json()["uid"] == "pc-a"
    assert client.get("/api/v1/districts", headers=users["tech_a"]).json()["items"] == [{"id": "da", "name": "A"}]
    made = client.post("/api/v1/commands", json={"device_id": ids["a"]["device"], "action": "message",
                                                 "args": {"text": "ok"}}, headers=users["tech_a"])
    assert made.status_code == 201
    # A district's user sees that district's schools only.
    seen = client.get("/api/v1/devices", headers=users["district_a"]).json()
    assert [d["uid"] for d in seen["items"]] == ["pc-a"]


def test_console_login_with_csrf_and_rate_limit(world):
    import re

    _, client, _, _ = world
    page = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    bad = client.post("/console/login", data={"username": "admin", "password": "correct horse battery",
                                               "csrf": "forged"}, follow_redirects=False)
    assert bad.status_code == 403
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/login").text).group(1)
    ok = client.post("/console/login", data={"username": "admin", "password": "correct horse battery", "csrf": csrf},
                     follow_redirects=False)
    assert ok.status_code == 303 and client.get("/console").status_code == 200
    fresh = TestClient(client.app)
    for _ in range(5):
        csrf = re.search(r'name="csrf" value="([^"]+)"', fresh.get("/console/login").text).group(1)
        wrong = fresh.post("/console/login", data={"username": "admin", "password": "nope", "csrf": csrf},
                           follow_redirects=False)
        assert wrong.status_code == 303 and "error=failed" in wrong.headers["location"]
    csrf = re.search(r'name="csrf" value="([^"]+)"', fresh.get("/console/login").text).group(1)
    assert fresh.post("/console/login", data={"username": "admin", "password": "correct horse battery",
                                              "csrf": csrf}).status_code == 429
