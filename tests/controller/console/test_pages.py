"""Console pages and forms through TestClient: content in vi and en, school scoping, roles, CSRF."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.store import db
from controller.store.models import AuditLog, Command, Incident, IncidentComment
from tests.controller.console.seed import add_role_users, client_as, csrf_of, seed
from tests.helpers import make_app


@pytest.fixture
def world(db_url, tmp_path) -> Any:
    """A seeded store (SQLite and PostgreSQL), an app with auth on, and one user per role."""
    engine = db.make_engine(db_url)
    ids = seed(engine)
    add_role_users(engine)
    yield make_app(engine, tmp_path), engine, ids
    engine.dispose()


def _incident_state(engine: Any, incident_id: int) -> str:
    with Session(engine) as session:
        return session.get(Incident, incident_id).state


def test_pages_in_vietnamese_by_default_and_in_english_on_request(world):
    app, _, ids = world
    client = client_as(app, "admin")
    a = ids["a"]
    overview = client.get("/console")
    assert overview.status_code == 200 and "Tổng quan thiết bị" in overview.text
    assert "/console/schools/a" in overview.text and "/console/incidents" in overview.text
    assert "Đăng xuất" in overview.text and 'action="/console/logout"' in overview.text
    school = client.get("/console/schools/a")
    assert school.status_code == 200 and "Phòng máy A" in school.text and "Phòng máy tính" in school.text
    assert "board-a" in school.text  # unassigned
    room = client.get(f"/console/rooms/{a['room']}")
    assert room.status_code == 200 and "pc-a1" in room.text and "Ổ đĩa sắp đầy" in room.text
    assert 'id="send-command"' in room.text and "Hiện thông báo" in room.text
    device = client.get(f"/console/devices/{a['pc1']}")
    assert device.status_code == 200
    for text in ("Thông tin thiết bị", "OptiPlex 3080", "<polyline", "Intel Core i3-10100", "Phần mềm đã cài: 3",
                 "Gửi lại cấu hình", "Hoàn thành", "12,5"):
        assert text in device.text, text
    sick = client.get(f"/console/devices/{a['pc2']}")
    assert "Ổ đĩa sắp đầy" in sick.text and "Thiết bị chưa gửi cấu hình." in sick.text
    incidents = client.get("/console/incidents")
    assert incidents.status_code == 200 and "Ổ đĩa sắp đầy" in incidents.text and "CPU quá nóng" in incidents.text
    assert client.get("/console/incidents", params={"school": "a"}).text.count('id="incident-') == 1
    assert client.get("/console/incidents", params={"code": "cpu.overheat"}).text.count('id="incident-') == 1
    assert client.get("/console/incidents", params={"state": "resolved"}).text.count('id="incident-') == 0
    assert "Sự cố #" in client.get(f"/console/incidents/{a['incident']}").text
    assert "Nhật ký thao tác" in client.get("/console/log").text

    english = client.get(f"/console/devices/{a['pc1']}", params={"lang": "en"})
    for text in ("Device facts", "Installed software: 3", "Collect inventory", "Done", "12.5"):
        assert text in english.text, text
    # The choice is remembered for the session.
    assert "Rooms and their devices by health" in client.get("/console/schools/a").text
    assert "Disk space low" in client.get("/console/incidents").text
    assert "Fleet overview" in client.get("/console").text
    assert "Tổng quan thiết bị" in client.get("/console", params={"lang": "vi"}).text
    assert client.get("/console/schools/a", params={"lang": "fr"}).status_code == 422


def test_every_new_page_sends_a_stranger_to_the_login_page(world):
    app, _, ids = world
    client = TestClient(app)
    a = ids["a"]
    for url in ("/console/schools/a", f"/console/rooms/{a['room']}", f"/console/devices/{a['pc1']}",
                "/console/incidents", f"/console/incidents/{a['incident']}", "/console/log"):
        response = client.get(url, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/console/login"), url
    response = client.post(f"/console/incidents/{a['incident']}/acknowledge", data={"csrf": "x"},
                           follow_redirects=False)
    assert response.status_code == 303 and _incident_state(world[1], a["incident"]) == "open"


def test_a_technician_of_school_a_gets_404_for_school_b(world):
    app, engine, ids = world
    client = client_as(app, "tech-a")
    b = ids["b"]
    for url in ("/console/schools/b", f"/console/rooms/{b['room']}", f"/console/devices/{b['pc1']}",
                f"/console/devices/{b['board']}", f"/console/incidents/{b['incident']}", "/console/schools/nowhere",
                "/console/devices/999999"):
        assert client.get(url).status_code == 404, url
    for url in ("/console", "/console/incidents", "/console/incidents?school=b", "/console/incidents?state="):
        page = client.get(url)
        assert page.status_code == 200 and "THCS B" not in page.text and "pc-b" not in page.text, url
    assert client.get("/console/log").status_code == 403  # the activity log is for admins and auditors
    token = csrf_of(client.get("/console/incidents").text)
    for action in ("acknowledge", "resolve", "comment"):
        response = client.post(f"/console/incidents/{b['incident']}/{action}", data={"csrf": token, "text": "x"},
                               follow_redirects=False)
        assert response.status_code == 404, action
    for path in ("/console/commands/review", "/console/commands"):
        for target_type, target_id in (("device", b["pc1"]), ("room", b["room"])):
            response = client.post(path, data={"csrf": token, "target_type": target_type, "target_id": target_id,
                                               "action": "message", "text": "hi"}, follow_redirects=False)
            assert response.status_code == 404, (path, target_type)
    assert _incident_state(engine, b["incident"]) == "open"
    with Session(engine) as session:
        assert session.scalar(select(Command).where(Command.created_by == "tech-a")) is None
    # School A's own pages are theirs, with the forms.
    assert 'id="send-command"' in client.get(f"/console/devices/{ids['a']['pc1']}").text


def test_an_auditor_reads_every_page_but_no_form_is_shown_or_accepted(world):
    app, engine, ids = world
    client = client_as(app, "auditor")
    a = ids["a"]
    device = client.get(f"/console/devices/{a['pc1']}")
    assert device.status_code == 200 and 'id="send-command"' not in device.text
    incidents = client.get("/console/incidents")
    assert "/acknowledge" not in incidents.text and "pc-b2" in incidents.text  # sees school B, no buttons
    token = csrf_of(incidents.text)  # the session's token (in the logout form)
    for action in ("acknowledge", "resolve", "comment"):
        response = client.post(f"/console/incidents/{a['incident']}/{action}", data={"csrf": token, "text": "x"},
                               follow_redirects=False)
        assert response.status_code == 403, action
    for path in ("/console/commands/review", "/console/commands"):
        response = client.post(path, data={"csrf": token, "target_type": "device", "target_id": a["pc1"],
                                           "action": "message", "text": "hi"}, follow_redirects=False)
        assert response.status_code == 403, path
    assert _incident_state(engine, a["incident"]) == "open"
    with Session(engine) as session:
        assert session.scalar(select(Command).where(Command.created_by == "auditor")) is None


def test_a_form_without_the_right_csrf_token_is_refused(world):
    app, engine, ids = world
    client = client_as(app, "admin")
    a = ids["a"]
    client.get("/console/incidents")  # the session has a token now
    for data in ({}, {"csrf": "forged"}):
        for action in ("acknowledge", "resolve", "comment"):
            response = client.post(f"/console/incidents/{a['incident']}/{action}", data={**data, "text": "x"},
                                   follow_redirects=False)
            assert response.status_code == 403, (action, data)
        response = client.post("/console/commands", data={**data, "target_type": "device", "target_id": a["pc1"],
                                                          "action": "message", "text": "hi"}, follow_redirects=False)
        assert response.status_code == 403
    assert _incident_state(engine, a["incident"]) == "open"
    # A token from another session does not work either.
    other = client_as(app, "admin")
    theirs = csrf_of(other.get("/console/incidents").text)
    assert client.post(f"/console/incidents/{a['incident']}/resolve", data={"csrf": theirs},
                       follow_redirects=False).status_code == 403


def test_a_technician_acknowledges_comments_and_resolves_through_the_workflow(world):
    app, engine, ids = world
    client = client_as(app, "tech-a")
    incident = ids["a"]["incident"]
    page = client.get("/console/incidents")
    token = csrf_of(page.text)
    done = client.post(f"/console/incidents/{incident}/acknowledge",
                       data={"csrf": token, "next": "/console/incidents"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/console/incidents"
    assert _incident_state(engine, incident) == "acknowledged"
    assert f"Đã tiếp nhận sự cố #{incident}." in client.get("/console/incidents").text
    client.post(f"/console/incidents/{incident}/comment", data={"csrf": token, "text": "Đã thay ổ cứng"})
    detail = client.get(f"/console/incidents/{incident}")
    assert "Đã thay ổ cứng" in detail.text and "tech-a" in detail.text
    client.post(f"/console/incidents/{incident}/resolve", data={"csrf": token})
    assert _incident_state(engine, incident) == "resolved"
    again = client.post(f"/console/incidents/{incident}/resolve", data={"csrf": token, "next": "//evil.example/"},
                        follow_redirects=False)
    assert again.headers["location"] == f"/console/incidents/{incident}"  # no open redirect
    assert "Không thực hiện được" in client.get(again.headers["location"]).text
    with Session(engine) as session:
        actions = session.scalars(select(AuditLog.action).where(AuditLog.actor == "tech-a",
                                                                AuditLog.action.like("incident.%"))).all()
        assert sorted(actions) == ["incident.acknowledge", "incident.comment", "incident.resolve"]
        assert session.scalar(select(IncidentComment.author)) == "tech-a"


def test_a_command_is_reviewed_then_queued_and_listed_as_pending(world):
    app, engine, ids = world
    client = client_as(app, "tech-a")
    a = ids["a"]
    token = csrf_of(client.get(f"/console/devices/{a['pc1']}").text)
    form = {"csrf": token, "target_type": "device", "target_id": a["pc1"], "action": "message",
            "text": "Tắt máy trước khi về", "delay_s": 60, "expires_min": 30}
    review = client.post("/console/commands/review", data=form)
    assert review.status_code == 200 and "Xác nhận gửi lệnh" in review.text and "1 thiết bị" in review.text
    with Session(engine) as session:
        assert session.scalar(select(Command).where(Command.created_by == "tech-a")) is None  # not yet
    sent = client.post("/console/commands", data=form, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"] == f"/console/devices/{a['pc1']}"
    page = client.get(sent.headers["location"])
    assert "Đã xếp 1 lệnh vào hàng chờ." in page.text and "Đang chờ" in page.text
    assert "Tắt máy trước khi về" in page.text
    with Session(engine) as session:
        made = session.scalars(select(Command).where(Command.created_by == "tech-a")).all()
        assert [(c.action, c.args, c.state) for c in made] == [("message", {"text": "Tắt máy trước khi về"},
                                                                 "pending")]
        assert session.scalar(select(AuditLog.target).where(AuditLog.action == "command.message")) \
            == f"device:{a['pc1']}"
    room = client.post("/console/commands/review", data={**form, "target_type": "room", "target_id": a["room"],
                                                          "action": "reboot", "text": ""}, params={"lang": "en"})
    assert "Send «Reboot» to 2 device(s)" in room.text  # the room's two agent PCs
    client.post("/console/commands", data={**form, "target_type": "room", "target_id": a["room"],
                                           "action": "reboot", "text": ""})
    with Session(engine) as session:
        reboots = session.scalars(select(Command).where(Command.action == "reboot")).all()
        assert len(reboots) == 2 and all(c.args == {"delay_s": 60} for c in reboots)
    empty = client.post("/console/commands/review", data={**form, "text": "  "}, follow_redirects=False)
    assert empty.status_code == 303 and "Enter the message text." in client.get(empty.headers["location"]).text
    bad = client.post("/console/commands/review", data={**form, "action": "format_disk"}, follow_redirects=False)
    assert bad.status_code == 303 and "Invalid command" in client.get(bad.headers["location"]).text


def test_the_activity_log_is_newest_first_and_scoped_to_the_readers_schools(world):
    app, _, ids = world
    admin = client_as(app, "admin").get("/console/log")
    assert admin.status_code == 200
    for action in ("test.school_a", "test.device_b", "test.user", "user.login"):
        assert action in admin.text, action
    scoped = client_as(app, "audit-da").get("/console/log", params={"lang": "en"})
    assert scoped.status_code == 200 and "Only actions on your schools are shown." in scoped.text
    assert "test.school_a" in scoped.text and "test.device_b" not in scoped.text and "test.user" not in scoped.text


def test_the_logout_button_ends_the_session(world):
    app, _, _ = world
    client = client_as(app, "tech-a")
    page = client.get("/console")
    assert 'action="/console/logout"' in page.text
    out = client.post("/console/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    assert client.get("/console/incidents", follow_redirects=False).status_code == 303
