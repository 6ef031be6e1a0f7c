"""The incident workflow through the API, and notifications to a real SMTP server and a real HTTP
receiver: one message per school for a burst, maintenance windows, retries with backoff, and never one
incident twice when two replicas' notifiers overlap."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller as SmtpController
from aiosmtpd.handlers import Message
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from controller.broker import free_port
from controller.notify import EmailChannel, Notifier, WebhookChannel
from controller.store import db
from controller.store.models import AuditLog, Device, Incident, NotificationRoute
from controller.store.polls import FaultCheck, PollResult, record_polls
from tests.helpers import add_school, make_app, make_user

T0 = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)
pytestmark = pytest.mark.integration


def _fleet(engine, school: str, n: int) -> list[int]:
    add_school(engine, school, name=f"THCS {school.upper()}")
    with Session(engine) as session, session.begin():
        devices = [Device(school_id=school, uid=f"cam-{i}", kind="camera", watched_by="onvif") for i in range(n)]
        session.add_all(devices)
        session.flush()
        return [d.id for d in devices]


def _raise(engine, ids: list[int], at: dt.datetime, code: str = "camera.unreachable") -> None:
    record_polls(engine, [PollResult(i, at, False, faults=(FaultCheck(code, True),)) for i in ids])


class _Mailbox(Message):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list = []

    def handle_message(self, message) -> None:  # type: ignore[override]
        self.messages.append(message)


class _Receiver(BaseHTTPRequestHandler):
    received: list = []
    fail_next = 0
    delay_s = 0.0

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(_Receiver.delay_s)
        if _Receiver.fail_next > 0:
            _Receiver.fail_next -= 1
            self.send_response(503)
        else:
            _Receiver.received.append(body)
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def smtp():
    mailbox = _Mailbox()
    server = SmtpController(mailbox, hostname="127.0.0.1", port=free_port())
    server.start()
    yield server, mailbox
    server.stop()


@pytest.fixture
def webhook():
    _Receiver.received, _Receiver.fail_next, _Receiver.delay_s = [], 0, 0.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_a_school_wide_outage_is_one_message_per_route(sqlite_url, smtp, webhook):
    engine = db.make_engine(sqlite_url)
    server, mailbox = smtp
    big = _fleet(engine, "a", 200)
    small = _fleet(engine, "b", 2)
    with Session(engine) as session, session.begin():
        session.add(NotificationRoute(school_id="a", channel="email", target="it@a.example", lang="vi"))
        session.add(NotificationRoute(school_id=None, channel="webhook", target=webhook, lang="en",
                                      min_severity="critical"))
    _raise(engine, big + small, T0)
    clock = [T0 + dt.timedelta(seconds=10)]
    notifier = Notifier(engine, {"email": EmailChannel("127.0.0.1", server.port), "webhook": WebhookChannel()},
                        batch_delay_s=30, clock=lambda: clock[0])
    assert notifier.run_once() == 0  # still inside the burst window
    clock[0] = T0 + dt.timedelta(seconds=31)
    assert notifier.run_once() == 202
    subject = str(make_header(decode_header(mailbox.messages[0]["Subject"])))
    assert len(mailbox.messages) == 1 and subject == "[classfleet] THCS A: 200 sự cố mới"
    assert sorted((b["school"], len(b["incidents"])) for b in _Receiver.received) == [("a", 200), ("b", 2)]
    assert _Receiver.received[0]["incidents"][0]["text"] == "Camera unreachable"
    clock[0] += dt.timedelta(minutes=5)
    assert notifier.run_once() == 0 and len(mailbox.messages) == 1  # nothing twice
    engine.dispose()


def test_maintenance_windows_and_retries(sqlite_url, webhook, tmp_path):
    engine = db.make_engine(sqlite_url)
    quiet = _fleet(engine, "tet", 3)
    loud = _fleet(engine, "open", 1)
    with Session(engine) as session, session.begin():
        session.add(NotificationRoute(school_id=None, channel="webhook", target=webhook))
    client = TestClient(make_app(engine, tmp_path))
    auth = make_user(engine, "admin", "admin", all_schools=True)
    made = client.post("/api/v1/maintenance-windows", headers=auth, json={
        "school": "tet", "starts_at": "2026-12-01T07:00:00+07:00", "ends_at": "2026-12-01T12:00:00+07:00",
        "reason": "Tết"})
    assert made.status_code == 201
    _raise(engine, quiet + loud, T0)
    clock = [T0 + dt.timedelta(minutes=1)]
    notifier = Notifier(engine, {"webhook": WebhookChannel()}, batch_delay_s=30, clock=lambda: clock[0])
    _Receiver.fail_next = 1
    assert notifier.run_once() == 3  # the quiet school's are recorded, not sent; the other failed
    assert _Receiver.received == []
    clock[0] += dt.timedelta(seconds=10)
    assert notifier.run_once() == 0  # backing off
    clock[0] += dt.timedelta(seconds=31)
    assert notifier.run_once() == 1
    assert [b["school"] for b in _Receiver.received] == ["open"]
    with engine.connect() as conn:
        assert conn.scalar(select(Incident.notified_at).where(Incident.device_id == quiet[0])) is not None
    engine.dispose()


def test_two_notifiers_at_a_lease_handover_send_each_incident_once(db_url, webhook):
    """Two replicas' notifiers run the same round at once (the old holder finishing as the new one starts),
    with a receiver slow enough that both are sending together: every incident reaches the route once."""
    engine = db.make_engine(db_url)
    schools = {s: _fleet(engine, s, 3) for s in ("a", "b", "c", "d", "e")}
    with Session(engine) as session, session.begin():
        session.add(NotificationRoute(school_id=None, channel="webhook", target=webhook))
    _raise(engine, [i for ids in schools.values() for i in ids], T0)
    _Receiver.delay_s = 0.3
    now = T0 + dt.timedelta(minutes=1)
    notifiers = [Notifier(engine, {"webhook": WebhookChannel()}, batch_delay_s=30, clock=lambda: now)
                 for _ in range(2)]
    start = threading.Barrier(2)
    counts: list[int] = []

    def round_of(notifier: Notifier) -> None:
        start.wait()
        counts.append(notifier.run_once())

    threads = [threading.Thread(target=round_of, args=(n,)) for n in notifiers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    sent = sorted(i["id"] for batch in _Receiver.received for i in batch["incidents"])
    assert len(sent) == 15 == len(set(sent)) and sum(counts) == 15
    assert sorted(b["school"] for b in _Receiver.received) == sorted(schools)  # one message per school
    assert all(n.run_once() == 0 for n in notifiers)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).where(Incident.notified_at.is_(None))) == 0
        assert conn.scalar(select(func.count()).where(Incident.notify_claimed_until.is_not(None))) == 0
    engine.dispose()


def test_a_crashed_notifiers_claim_runs_out_and_the_incidents_go_out(sqlite_url, webhook):
    engine = db.make_engine(sqlite_url)
    ids = _fleet(engine, "a", 2)
    with Session(engine) as session, session.begin():
        session.add(NotificationRoute(school_id=None, channel="webhook", target=webhook))
    _raise(engine, ids, T0)
    clock = [T0 + dt.timedelta(minutes=1)]
    with engine.begin() as conn:  # what a replica killed between claiming and sending leaves behind
        conn.execute(update(Incident).values(notify_claimed_until=clock[0] + dt.timedelta(minutes=10)))
    notifier = Notifier(engine, {"webhook": WebhookChannel()}, batch_delay_s=30, claim_s=600,
                        clock=lambda: clock[0])
    assert notifier.run_once() == 0 and _Receiver.received == []
    clock[0] += dt.timedelta(minutes=10)
    assert notifier.run_once() == 2 and len(_Receiver.received) == 1


def test_incident_workflow_through_the_api(db_url, tmp_path):
    engine = db.make_engine(db_url)
    ids = _fleet(engine, "s1", 1)
    _fleet(engine, "s2", 0)
    _raise(engine, ids, T0, code="camera.no_stream")
    client = TestClient(make_app(engine, tmp_path))
    auth = make_user(engine, "minh", "technician", schools=("s1",))
    auditor = make_user(engine, "so-gd", "auditor", all_schools=True)
    outsider = make_user(engine, "tech-s2", "technician", schools=("s2",))
    listed = client.get("/api/v1/incidents", params={"state": "active", "lang": "en"}, headers=auditor).json()
    assert listed["total"] == 1 and listed["items"][0]["text"] == "Camera has no stream"
    iid = listed["items"][0]["id"]
    assert client.post(f"/api/v1/incidents/{iid}/acknowledge", json={}).status_code == 401
    assert client.post(f"/api/v1/incidents/{iid}/acknowledge", json={}, headers=auditor).status_code == 403
    assert client.post(f"/api/v1/incidents/{iid}/acknowledge", json={}, headers=outsider).status_code == 404
    assert client.get(f"/api/v1/incidents/{iid}", headers=outsider).status_code == 404
    assert client.get("/api/v1/incidents", headers=outsider).json()["total"] == 0
    ack = client.post(f"/api/v1/incidents/{iid}/acknowledge", headers=auth, json={"assignee": "thầy Minh"}).json()
    assert ack["state"] == "acknowledged" and ack["assignee"] == "thầy Minh"
    note = client.post(f"/api/v1/incidents/{iid}/comments", headers=auth, json={"text": "Thay cáp mạng tầng 2"})
    assert note.status_code == 201
    assert client.post(f"/api/v1/incidents/{iid}/resolve", headers=auth).json()["state"] == "resolved"
    assert client.post(f"/api/v1/incidents/{iid}/resolve", headers=auth).status_code == 409
    assert client.post("/api/v1/incidents/99999/resolve", headers=auth).status_code == 404
    detail = client.get(f"/api/v1/incidents/{iid}", headers=auth).json()
    assert detail["comments"][0]["text"] == "Thay cáp mạng tầng 2" and detail["resolved_by"] == "minh"
    with engine.connect() as conn:
        actions = set(conn.scalars(select(AuditLog.action)))
    assert {"incident.acknowledge", "incident.comment", "incident.resolve"} <= actions
    engine.dispose()
