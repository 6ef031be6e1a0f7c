"""The REST API and /metrics over a real store (both backends)."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from classfleet_wire import decode
from controller.api.app import create_app
from controller.config import Settings
from controller.metrics import build_registry
from controller.store import db
from controller.store.models import District, Room, School
from controller.store.writer import Accepted, BatchWriter
from tests.helpers import event, heartbeat, status

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def seeded(db_url, tmp_path):
    engine = db.make_engine(db_url)
    with Session(engine) as session, session.begin():
        session.add(District(id="d1", name="Quận 1"))
        session.add_all([School(id="s1", name="THCS A", district_id="d1"), School(id="s2", name="THCS B")])
        session.flush()
        session.add(Room(school_id="s1", code="lab-1", name="Phòng máy 1", kind="computer_lab"))
    items = []
    for school, n in (("s1", 3), ("s2", 2)):
        for i in range(n):
            t = f"classfleet/v1/{school}/pc-{i}"
            items += [Accepted(decode(f"{t}/status", status("online", 1)), NOW),
                      Accepted(decode(f"{t}/heartbeat", heartbeat(1, 1)), NOW)]
    items.append(Accepted(decode("classfleet/v1/s1/pc-0/event", event(1, 2)), NOW))
    BatchWriter(engine).write(items, [])
    yield engine, tmp_path
    engine.dispose()


def _client(engine, tmp_path, **settings) -> TestClient:
    cfg = Settings(data_dir=tmp_path, **{"auth": False, **settings})
    registry, _ = build_registry(engine, cfg.offline_after_s)
    return TestClient(create_app(cfg, engine, registry, ingest_ready=lambda: True))


def test_lists_and_filters(seeded):
    client = _client(*seeded)
    body = client.get("/api/v1/devices", params={"limit": 500}).json()
    assert body["total"] == 5 and all(d["health"] in ("ok", "degraded") for d in body["items"])
    only_s2 = client.get("/api/v1/devices", params={"school": "s2"}).json()
    assert {d["school_id"] for d in only_s2["items"]} == {"s2"} and only_s2["total"] == 2
    assert client.get("/api/v1/devices", params={"district": "d1"}).json()["total"] == 3
    assert client.get("/api/v1/devices", params={"health": "degraded"}).json()["total"] == 1
    page = client.get("/api/v1/devices", params={"limit": 2, "offset": 4}).json()
    assert page["total"] == 5 and len(page["items"]) == 1
    assert client.get("/api/v1/devices", params={"unassigned": True}).json()["total"] == 5
    assert client.get("/api/v1/schools").json()["total"] == 2
    assert client.get("/api/v1/schools", params={"district": "d1"}).json()["items"][0]["id"] == "s1"
    assert client.get("/api/v1/rooms", params={"school": "s1"}).json()["items"][0]["kind"] == "computer_lab"
    assert client.get("/api/v1/districts").json()["items"] == [{"id": "d1", "name": "Quận 1"}]


def test_device_detail_with_state_and_incident_texts(seeded):
    client = _client(*seeded)
    first = client.get("/api/v1/devices", params={"school": "s1", "q": "pc-0"}).json()["items"][0]
    detail = client.get(f"/api/v1/devices/{first['id']}").json()
    assert detail["state"]["online"] is True and detail["state"]["cpu_pct"] == 12.5
    assert detail["incidents"][0]["code"] == "disk.low"
    assert detail["incidents"][0]["text"] == "Ổ đĩa sắp đầy"
    en = client.get(f"/api/v1/devices/{first['id']}", params={"lang": "en"}).json()
    assert en["incidents"][0]["text"] == "Disk space low"


def test_invalid_requests_get_clear_errors(seeded):
    client = _client(*seeded)
    assert client.get("/api/v1/devices/999999").status_code == 404
    bad_kind = client.get("/api/v1/devices", params={"kind": "toaster"})
    assert bad_kind.status_code == 422 and "kind must be one of" in bad_kind.text
    assert client.get("/api/v1/devices", params={"limit": 5000}).status_code == 422
    assert client.get("/api/v1/devices", params={"health": "fine"}).status_code == 422


def test_metrics_read_the_store(seeded):
    client = _client(*seeded)
    text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    up = {(s.labels["school"], s.labels["device"]): s.value for s in families["classfleet_device_up"].samples}
    assert len(up) == 5 and all(v == 1.0 for v in up.values())
    counts = {(s.labels["school"], s.labels["health"]): s.value for s in families["classfleet_devices"].samples}
    assert counts[("s1", "degraded")] == 1 and counts[("s1", "ok")] == 2 and counts[("s2", "offline")] == 0
    assert "classfleet_ingest_rejected" in families
    assert "classfleet_ingest_batch_commit_seconds" in families


def test_metrics_are_gzipped_for_scrapers_that_ask(seeded):
    import gzip

    client = _client(*seeded)
    plain = client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    response = client.send(client.build_request("GET", "/metrics", headers={"Accept-Encoding": "gzip"}), stream=True)
    assert response.headers["content-encoding"] == "gzip" and response.headers["vary"] == "Accept-Encoding"
    body = b"".join(response.iter_raw())  # the bytes as sent, not decoded by the client
    response.close()
    # The same (cached) rendering either way, a fraction of the bytes.
    assert gzip.decompress(body).decode() == plain.text and len(body) < len(plain.content) / 3


def test_metrics_token_and_probes(seeded):
    client = _client(*seeded, metrics_token="s3cret")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz").json()
    assert ready == {"status": "ok", "checks": {"store": "ok", "mqtt": "ok"}}
    assert client.get("/openapi.json").json()["info"]["title"] == "classfleet"


def test_console_overview_in_vietnamese_and_english(seeded):
    client = _client(*seeded)
    vi = client.get("/console")
    assert vi.status_code == 200 and "Tổng quan thiết bị" in vi.text
    assert "THCS A" in vi.text and "Ổ đĩa sắp đầy" in vi.text  # the degraded device with its fault
    en = client.get("/console", params={"lang": "en"})
    assert "Fleet overview" in en.text and "Disk space low" in en.text
    assert client.get("/", follow_redirects=False).headers["location"] == "/console"
    assert client.get("/console", params={"lang": "fr"}).status_code == 422


def test_device_inventory_endpoint(seeded):
    engine, _ = seeded
    import json
    import time

    raw = json.dumps({"v": 1, "session": 1, "seq": 9, "ts": time.time(), "hash": "abcdef012345",
                      "hardware": {"hostname": "lab-pc", "vendor": "HP"}, "software": []}).encode()
    BatchWriter(engine).write([Accepted(decode("classfleet/v1/s2/pc-0/inventory", raw), NOW)], [])
    client = _client(*seeded)
    device = client.get("/api/v1/devices", params={"school": "s2", "q": "pc-0"}).json()["items"][0]
    assert device["vendor"] == "HP"
    inventory = client.get(f"/api/v1/devices/{device['id']}/inventory").json()
    assert inventory["hardware"]["hostname"] == "lab-pc" and inventory["hash"] == "abcdef012345"
    other = client.get("/api/v1/devices", params={"school": "s1", "q": "pc-1"}).json()["items"][0]
    assert client.get(f"/api/v1/devices/{other['id']}/inventory").status_code == 404


def _audit_from(engine) -> dict[str, object]:
    """Each audit row's action → its recorded client address."""
    from sqlalchemy import select

    from controller.store.models import AuditLog

    with Session(engine) as session:
        return {row.action: row.detail.get("from") for row in session.scalars(select(AuditLog).order_by(AuditLog.id))}


def test_every_api_write_records_the_client_address_in_the_audit_log(seeded):
    from controller.enrolment import create_token

    engine, tmp_path = seeded
    client = _client(*seeded)
    school_device = client.get("/api/v1/devices", params={"school": "s1", "q": "pc-0"}).json()["items"][0]
    incident = client.get(f"/api/v1/devices/{school_device['id']}").json()["incidents"][0]["id"]
    assert client.post("/api/v1/commands", json={"school": "s1", "action": "message",
                                                 "args": {"text": "xin chào"}}).status_code == 201
    assert client.post(f"/api/v1/incidents/{incident}/acknowledge", json={}).status_code == 200
    assert client.post(f"/api/v1/incidents/{incident}/comments", json={"text": "đang xử lý"}).status_code == 201
    assert client.post(f"/api/v1/incidents/{incident}/resolve").status_code == 200
    assert client.post("/api/v1/maintenance-windows", json={
        "school": "s1", "starts_at": "2027-02-05T00:00:00+07:00", "ends_at": "2027-02-12T00:00:00+07:00",
        "reason": "Tết"}).status_code == 201
    with Session(engine) as session, session.begin():
        token = create_token(session, "s2", actor="test").token
    assert client.post("/api/v1/enrolments", json={"token": token, "device": "new-pc"}).status_code == 201
    recorded = _audit_from(engine)
    for action in ("command.message", "incident.acknowledge", "incident.comment", "incident.resolve",
                   "maintenance.add", "device.enrol"):
        assert recorded[action] == "testclient", action  # TestClient's peer name
    assert recorded["enrolment_token.create"] is None  # written outside any request (here, the CLI's path)


@pytest.mark.parametrize(("settings", "peer", "expected"), [
    ({}, "127.0.0.1", "127.0.0.1"),  # no header configured: the header is ignored
    ({"proxy_client_header": "X-Forwarded-For"}, "127.0.0.1", "203.0.113.9"),  # a trusted proxy (loopback)
    ({"proxy_client_header": "X-Forwarded-For", "trusted_proxies": ["127.0.0.2/32"]}, "127.0.0.1", "127.0.0.1"),
])
def test_a_proxy_header_is_believed_only_when_configured_and_from_a_trusted_proxy(seeded, settings, peer, expected):
    engine, tmp_path = seeded
    cfg = Settings(data_dir=tmp_path, auth=False, **settings)
    registry, _ = build_registry(engine, cfg.offline_after_s)
    client = TestClient(create_app(cfg, engine, registry), client=(peer, 40000))
    made = client.post("/api/v1/commands", json={"school": "s2", "action": "run_check"},
                       headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9"})
    assert made.status_code == 201
    assert _audit_from(engine)["command.run_check"] == expected


def test_resolve_client_walks_the_forwarded_chain_from_the_right():
    import ipaddress

    from controller.api.origin import resolve_client

    trusted = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.0.0.0/8")]
    header = "X-Forwarded-For"
    assert resolve_client("127.0.0.1", "198.51.100.7, 10.1.1.1", header, trusted) == "198.51.100.7"
    assert resolve_client("127.0.0.1", "10.1.1.1, 10.2.2.2", header, trusted) == "10.1.1.1"  # all proxies
    assert resolve_client("127.0.0.1", "not-an-ip", header, trusted) == "127.0.0.1"
    assert resolve_client("127.0.0.1", "[2001:db8::1]", header, trusted) == "2001:db8::1"
    assert resolve_client("127.0.0.1", "198.51.100.7", None, trusted) == "127.0.0.1"  # not configured
    assert resolve_client("testclient", "198.51.100.7", header, trusted) == "testclient"  # peer not an address
    assert resolve_client(None, "198.51.100.7", header, trusted) is None
