"""Console, issue 4's remaining parts through TestClient: the overview per district and school, times in each
school's zone (Babel), commands to a room or a school now or at a local time, maintenance windows, and the
activity log's "from where"."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.notify import Notifier, WebhookChannel
from controller.store import db
from controller.store.models import (
    AuditLog,
    Command,
    Device,
    DeviceState,
    Incident,
    MaintenanceWindow,
    NotificationRoute,
    Room,
    School,
)
from tests.controller.console.seed import add_role_users, client_as, csrf_of, seed
from tests.helpers import make_app

AT = dt.datetime(2026, 3, 2, 1, 5, tzinfo=dt.UTC)  # 08:05 in Hà Nội, 10:05 in Tokyo


@pytest.fixture
def world(db_url, tmp_path) -> Any:
    """The two-school store plus school c (no district, Tokyo time) with one PC seen at ``AT``."""
    engine = db.make_engine(db_url)
    ids = seed(engine)
    with Session(engine) as session, session.begin():
        session.add(School(id="c", name="THPT C", timezone="Asia/Tokyo"))
        session.flush()
        room = Room(school_id="c", code="r1", name="Phòng C1", kind="smart_l1")
        session.add(room)
        session.flush()
        pc = Device(school_id="c", uid="pc-c1", kind="pc", room_id=room.id)
        session.add(pc)
        session.flush()
        session.add(DeviceState(device_id=pc.id, session=0, seq=1, last_seen=AT, online=False, cpu_pct=1234.5))
        session.add(Incident(device_id=pc.id, school_id="c", code="disk.low", severity="warning", state="open",
                             count=1, opened_at=AT, last_seen=AT, detail={}))
        ids["c"] = {"room": room.id, "pc1": pc.id}
    add_role_users(engine)
    yield make_app(engine, tmp_path), engine, ids
    engine.dispose()


def _plain(html: str) -> str:
    """CLDR's English times put a narrow no-break space before AM/PM; compare with a plain one."""
    return html.replace("\u202f", " ")


def _section(html: str, section_id: str) -> str:
    found = re.search(rf'<section class="district" id="{section_id}">(.*?)</section>', html, re.S)
    assert found, section_id
    return found.group(1)


def test_the_overview_groups_schools_by_district_with_totals_kinds_rooms_and_incidents(world):
    app, _, _ = world
    page = client_as(app, "admin").get("/console").text
    positions = [page.index(h) for h in ("<h2>Quận A</h2>", "<h2>Quận B</h2>",
                                         "<h2>Trường chưa thuộc quận/huyện nào</h2>")]
    assert positions == sorted(positions)  # districts by name, schools of no district last
    a = _section(page, "district-da")
    assert "THCS A" in a and "THCS B" not in a and "THPT C" not in a
    assert "1 trường · 3 thiết bị · 1 cần xử lý · 1 phòng có sự cố · 1 sự cố đang mở" in a
    assert re.search(r"Máy tính 2 \(<span class=\"degraded\">1 cần chú ý</span>\)", a)  # kind × health
    assert "Bảng tương tác 1" in a
    assert "Phòng có sự cố: <a href=\"/console/rooms/" in a and "Phòng máy A</a>" in a
    b = _section(page, "district-db")
    assert '<span class="faulty">1 hỏng</span>' in b and "THCS A" not in b
    none = _section(page, "district-none")
    assert "THPT C" in none and "Phòng C1" in none  # pc-c1 is offline: its room has a problem
    english = client_as(app, "admin").get("/console", params={"lang": "en"}).text
    assert "Schools outside any district" in english
    assert "1 school(s) · 3 device(s) · 1 need attention · 1 room(s) with problems · 1 open incident(s)" in english


def test_a_district_scoped_reader_sees_only_their_district(world):
    app, _, _ = world
    page = client_as(app, "audit-da").get("/console").text
    assert "<h2>Quận A</h2>" in page and "THCS A" in page
    for other in ("Quận B", "THCS B", "THPT C", "Trường chưa thuộc", "pc-b2", "pc-c1"):
        assert other not in page, other


def test_times_are_in_the_schools_zone_and_the_users_locale(world):
    app, _, ids = world
    client = client_as(app, "admin")
    tokyo = client.get(f"/console/devices/{ids['c']['pc1']}").text
    assert "10:05" in tokyo and "08:05" not in tokyo  # Tokyo's clock, Vietnamese format
    assert "Giờ Nhật Bản (GMT+09:00)" in tokyo and "1.234,5" in tokyo  # vi: dot groups, comma decimals
    english = _plain(client.get(f"/console/devices/{ids['c']['pc1']}", params={"lang": "en"}).text)
    assert "10:05 AM" in english and "Japan Time (GMT+09:00)" in english and "1,234.5" in english
    hanoi = client.get(f"/console/schools/{'a'}").text
    assert "Vietnam Time (GMT+07:00)" in hanoi  # the language stays English for the session
    # A page mixing schools is in the viewer's zone; a row of another zone carries its offset.
    mixed = _plain(client.get("/console/incidents").text)
    assert "Times in Vietnam Time (GMT+07:00)." in mixed and "carry their GMT offset" in mixed
    assert "10:05 AM (GMT+09:00)" in mixed
    # A reader whose schools are all in Vietnam is not told about other zones.
    assert "GMT offset" not in client_as(app, "tech-a").get("/console/incidents", params={"lang": "en"}).text


def _form(client: TestClient, url: str, **fields: Any) -> dict[str, Any]:
    return {"csrf": csrf_of(client.get(url).text), "action": "message", "text": "Sắp hết giờ", "delay_s": 0,
            "expires_min": 30, **fields}


def test_a_school_wide_command_of_one_kind_is_reviewed_with_its_count_then_queued(world):
    app, engine, ids = world
    client = client_as(app, "tech-a")
    school = client.get("/console/schools/a").text
    assert 'value="school:a"' in school and 'id="kind"' in school
    form = _form(client, "/console/schools/a", scope="school:a", kind="pc", next="/console/schools/a")
    review = client.post("/console/commands/review", data=form)
    assert review.status_code == 200 and "tới 2 thiết bị của trường THCS A (chỉ Máy tính)" in review.text
    assert "Gửi ngay tới các thiết bị đang kết nối" in review.text
    everything = client.post("/console/commands/review", data={**form, "kind": ""})
    assert "tới 3 thiết bị của trường THCS A?" in everything.text  # the smart board too
    with Session(engine) as session:
        assert session.scalar(select(Command).where(Command.created_by == "tech-a")) is None  # not yet
    sent = client.post("/console/commands", data=form, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"] == "/console/schools/a"
    with Session(engine) as session:
        made = session.scalars(select(Command).where(Command.created_by == "tech-a")).all()
        assert sorted(c.device_id for c in made) == sorted([ids["a"]["pc1"], ids["a"]["pc2"]])
        assert all(c.not_before is None and c.state == "pending" for c in made)
        log = session.scalar(select(AuditLog).where(AuditLog.action == "command.message"))
        assert log.target == "school:a/pc" and log.detail["count"] == 2 and log.detail["from"] == "testclient"
    # The room's page shows both in its ledger, each with its lifecycle.
    room = client.get(f"/console/rooms/{ids['a']['room']}").text
    assert room.count('data-state="pending"') == 2 and "Đang chờ</span> → <span" in room
    # Not another school's, not a kind that does not exist, and not for a read-only role.
    assert client.post("/console/commands/review", data={**form, "scope": "school:b"}).status_code == 404
    assert client.post("/console/commands/review", data={**form, "kind": "toaster"}).status_code == 422
    auditor = client_as(app, "auditor")
    token = csrf_of(auditor.get("/console/incidents").text)
    assert auditor.post("/console/commands", data={**form, "csrf": token}).status_code == 403


def test_a_command_scheduled_in_the_schools_local_time(world):
    app, engine, ids = world
    client = client_as(app, "admin")
    device_page = f"/console/devices/{ids['c']['pc1']}"
    page = client.get(device_page).text
    assert f'value="room:{ids["c"]["room"]}"' in page and "Gửi lúc (Giờ Nhật Bản (GMT+09:00)" in page
    tokyo = ZoneInfo("Asia/Tokyo")
    day = (dt.datetime.now(tokyo) + dt.timedelta(days=1)).date()
    local = f"{day.isoformat()}T17:30"
    form = _form(client, device_page, scope=f"room:{ids['c']['room']}", not_before=local, next=device_page)
    review = client.post("/console/commands/review", data=form, params={"lang": "en"})
    review_text = _plain(review.text)
    assert "to 1 device(s) of room Phòng C1?" in review_text
    assert "Sent at " in review_text and "5:30 PM" in review_text and "Expires at" in review_text
    sent = client.post("/console/commands", data=form, follow_redirects=False)
    assert sent.headers["location"] == device_page
    shown = _plain(client.get(device_page).text)
    assert "1 command(s) scheduled for" in shown and "5:30 PM" in shown
    with Session(engine) as session:
        command = session.scalar(select(Command).where(Command.device_id == ids["c"]["pc1"]))
        expected = dt.datetime.combine(day, dt.time(17, 30), tokyo)
        assert command.not_before == expected and command.not_before.utcoffset() == dt.timedelta(0)
        assert command.expires == expected + dt.timedelta(minutes=30)
    for value, message in (("2020-01-01T08:00", "That time has passed."),
                           ((dt.datetime.now(tokyo) + dt.timedelta(days=40)).strftime("%Y-%m-%dT%H:%M"),
                            "Schedule at most 30 days ahead."),
                           ("tomorrow", "Invalid time: tomorrow")):
        bad = client.post("/console/commands/review", data={**form, "not_before": value}, follow_redirects=False)
        assert bad.status_code == 303 and message in client.get(bad.headers["location"]).text, value
    with Session(engine) as session:
        assert len(session.scalars(select(Command).where(Command.device_id == ids["c"]["pc1"])).all()) == 1


class _Webhook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        _Webhook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Any:
    """A real HTTP receiver on loopback for the notifier."""
    _Webhook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_maintenance_windows_are_planned_and_removed_in_the_console_and_quiet_notifications(world, webhook):
    app, engine, ids = world
    client = client_as(app, "tech-a")
    url = "/console/schools/a/maintenance"
    assert 'id="maintenance-link"' in client.get("/console/schools/a").text
    token = csrf_of(client.get(url).text)
    now = dt.datetime.now(dt.UTC)
    hanoi = ZoneInfo("Asia/Ho_Chi_Minh")
    start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(hours=2)
    fields = {"csrf": token, "starts_at": start.astimezone(hanoi).strftime("%Y-%m-%dT%H:%M"),
              "ends_at": end.astimezone(hanoi).strftime("%Y-%m-%dT%H:%M"), "reason": "Thay switch"}
    made = client.post(url, data=fields, follow_redirects=False)
    assert made.status_code == 303 and made.headers["location"] == url
    page = client.get(url).text
    assert "Đã thêm đợt bảo trì #" in page and "Thay switch" in page and "Đang diễn ra" in page
    with Session(engine) as session:
        window = session.scalar(select(MaintenanceWindow).where(MaintenanceWindow.school_id == "a"))
        assert window.starts_at == start.replace(second=0, microsecond=0)  # read in Hà Nội's zone
        added = session.scalar(select(AuditLog).where(AuditLog.action == "maintenance.add"))
        assert added.actor == "tech-a" and added.target == "school:a" and added.detail["from"] == "testclient"
    assert "Đang trong giờ bảo trì đến" in client.get("/console/schools/a").text
    # Mistakes come back as messages; other schools and read-only roles are refused.
    for bad, message in (({"ends_at": fields["starts_at"]}, "Giờ kết thúc phải sau giờ bắt đầu."),
                         ({"starts_at": "2020-01-01T00:00", "ends_at": "2020-01-02T00:00"},
                          "Đợt bảo trì này đã kết thúc."),
                         ({"starts_at": ""}, "Hãy nhập giờ bắt đầu và giờ kết thúc.")):
        assert message in client.post(url, data={**fields, **bad}).text, bad  # back on the page, with the message
    assert client.post("/console/schools/b/maintenance", data=fields).status_code == 404
    assert client.post(url, data={**fields, "csrf": "forged"}).status_code == 403
    auditor = client_as(app, "auditor")
    listing = auditor.get(url).text
    assert "Thay switch" in listing and "/delete" not in listing and 'id="add-window"' not in listing
    assert auditor.post(f"/console/maintenance/{window.id}/delete",
                        data={"csrf": csrf_of(listing)}).status_code == 403

    # Incidents opened now in school a are in maintenance: shown so, recorded, never notified; school b's are.
    with Session(engine) as session, session.begin():
        for old in session.scalars(select(Incident)):
            old.notified_at = old.opened_at  # the seeded ones are old news
        session.add(NotificationRoute(school_id=None, channel="webhook", target=webhook, min_severity="info"))
        for school in ("a", "b"):
            session.add(Incident(device_id=ids[school]["board"], school_id=school, code="touch.missing",
                                 severity="warning", state="open", count=1, opened_at=now, last_seen=now, detail={}))
    notifier = Notifier(engine, {"webhook": WebhookChannel()}, batch_delay_s=30,
                        clock=lambda: now + dt.timedelta(seconds=31))
    assert notifier.run_once() == 2
    assert [batch["school"] for batch in _Webhook.received] == ["b"]
    with Session(engine) as session:
        quiet = session.scalar(select(Incident).where(Incident.school_id == "a", Incident.code == "touch.missing"))
    listing = client.get("/console/incidents", params={"school": "a"}).text
    row = re.search(rf'<tr id="incident-{quiet.id}">(.*?)</tr>', listing, re.S)
    assert row and "trong giờ bảo trì" in row.group(1)
    row_old = re.search(rf'<tr id="incident-{ids["a"]["incident"]}">(.*?)</tr>', listing, re.S)
    assert row_old and "trong giờ bảo trì" not in row_old.group(1)  # opened an hour before the window
    assert 'id="in-maintenance"' in client.get(f"/console/incidents/{quiet.id}").text

    # Removing the window: audit-logged; a stranger to the school gets a 404.
    stranger = client_as(app, "admin")
    with Session(engine) as session, session.begin():
        session.add(MaintenanceWindow(school_id="b", starts_at=now, ends_at=end, reason="b"))
    with Session(engine) as session:
        window_b = session.scalar(select(MaintenanceWindow).where(MaintenanceWindow.school_id == "b"))
    assert client.post(f"/console/maintenance/{window_b.id}/delete", data={"csrf": token}).status_code == 404
    gone = client.post(f"/console/maintenance/{window.id}/delete", data={"csrf": token}, follow_redirects=False)
    assert gone.status_code == 303 and "Đã xóa đợt bảo trì" in client.get(url).text
    with Session(engine) as session:
        assert session.get(MaintenanceWindow, window.id) is None and session.get(MaintenanceWindow, window_b.id)
        removed = session.scalar(select(AuditLog).where(AuditLog.action == "maintenance.remove"))
        assert removed.actor == "tech-a" and removed.detail["reason"] == "Thay switch"
    log = stranger.get("/console/log", params={"lang": "en"}).text
    assert "<th>From</th>" in log and "maintenance.remove" in log and "<td>testclient</td>" in log


def test_console_writes_record_where_they_came_from(world):
    app, engine, ids = world
    client = client_as(app, "tech-a")
    token = csrf_of(client.get("/console/incidents").text)
    client.post(f"/console/incidents/{ids['a']['incident']}/acknowledge", data={"csrf": token})
    client.post(f"/console/incidents/{ids['a']['incident']}/comment", data={"csrf": token, "text": "ok"})
    with Session(engine) as session:
        rows = session.scalars(select(AuditLog).where(AuditLog.actor == "tech-a",
                                                      AuditLog.action != "token.create")).all()  # make_user's
    assert {r.action for r in rows} == {"user.login", "incident.acknowledge", "incident.comment"}
    assert {r.detail["from"] for r in rows} == {"testclient"}
