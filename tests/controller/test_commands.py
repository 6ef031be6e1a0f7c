"""Commands from the controller: the API guard, targets, and the dispatcher against a real broker and agent."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.config import AgentConfig
from agents.core import Agent
from agents.facts import SimulatedFacts
from controller.commands import CommandDispatcher
from controller.store import db
from controller.store.models import AuditLog, Command, Device, Room
from tests.helpers import add_school, make_app, make_user, running_ingest, wait_for


def _seed(engine) -> None:
    add_school(engine, "s1")
    with Session(engine) as session, session.begin():
        lab = Room(school_id="s1", code="lab-1", name="Phòng máy 1", kind="computer_lab")
        session.add(lab)
        session.flush()
        session.add_all([Device(school_id="s1", uid=f"pc-{i}", kind="pc", room_id=lab.id) for i in range(3)])
        session.add(Device(school_id="s1", uid="board-1", kind="smart_board"))
        session.add(Device(school_id="s1", uid="cam-1", kind="camera", watched_by="onvif"))


def _client(engine, tmp_path) -> TestClient:
    return TestClient(make_app(engine, tmp_path))


def test_sending_needs_a_technician_of_the_school_and_a_valid_command(db_url, tmp_path):
    engine = db.make_engine(db_url)
    _seed(engine)
    add_school(engine, "s2")
    auth = make_user(engine, "tech1", "technician", schools=("s1",))
    auditor = make_user(engine, "audit", "auditor", all_schools=True)
    other = make_user(engine, "tech2", "technician", schools=("s2",))
    body = {"school": "s1", "action": "message", "args": {"text": "Tắt máy trước khi về"}}
    client = _client(engine, tmp_path)
    assert client.post("/api/v1/commands", json=body).status_code == 401
    assert client.post("/api/v1/commands", json=body, headers=auditor).status_code == 403
    assert client.post("/api/v1/commands", json=body, headers=other).status_code == 404
    made = client.post("/api/v1/commands", json=body, headers=auth)
    assert made.status_code == 201 and len(made.json()) == 4  # every agent device, not the camera
    with Session(engine) as session:
        room = session.scalar(select(Room))
        logged = session.execute(select(AuditLog.actor, AuditLog.target).where(AuditLog.action == "command.message"))
        assert logged.one() == ("tech1", "school:s1")
    lab = client.post("/api/v1/commands", headers=auth, json={
        "room_id": room.id, "action": "shutdown", "args": {"delay_s": 300, "notice": "Phòng máy đóng cửa"},
        "not_before": "2026-12-01T17:30:00+07:00", "expires_in_s": 1800})
    assert lab.status_code == 201 and {c["state"] for c in lab.json()} == {"pending"} and len(lab.json()) == 3
    assert lab.json()[0]["not_before"].startswith("2026-12-01T10:30:00")
    assert client.post("/api/v1/commands", headers=auth, json={**body, "action": "format_disk"}).status_code == 422
    assert client.post("/api/v1/commands", headers=auth, json={**body, "device_id": 1}).status_code == 422
    assert client.post("/api/v1/commands", headers=auth, json={"school": "nowhere", "action": "reboot"}
                       ).status_code == 404
    ledger = client.get("/api/v1/commands", params={"state": "pending"}, headers=auth).json()
    assert ledger["total"] == 7
    assert client.get("/api/v1/commands", headers=other).json()["total"] == 0  # nothing of s1 leaks
    engine.dispose()


def test_dispatcher_waits_for_the_device_and_the_time_then_the_agent_answers(tmp_path, sqlite_url, broker):
    with running_ingest(sqlite_url, broker.port, client_id="cmd-controller") as (ingest, engine, _m):
        _seed(engine)
        with Session(engine) as session:
            pc = session.scalar(select(Device).where(Device.uid == "pc-0"))
        client = _client(engine, tmp_path)
        auth = make_user(engine, "admin", "admin", all_schools=True)
        now_cmd = client.post("/api/v1/commands", headers=auth,
                              json={"device_id": pc.id, "action": "collect_inventory"}).json()[0]["id"]
        later = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)).isoformat()
        later_cmd = client.post("/api/v1/commands", headers=auth, json={
            "device_id": pc.id, "action": "message", "args": {"text": "xin chào"}, "not_before": later}
        ).json()[0]["id"]
        doomed = client.post("/api/v1/commands", headers=auth, json={
            "device_id": pc.id, "action": "run_check", "expires_in_s": 10}).json()[0]["id"]
        dispatcher = CommandDispatcher(engine, ingest.publish, interval_s=0.2)
        dispatcher.start()
        try:
            time.sleep(1.0)
            assert _state(engine, now_cmd) == "pending"  # the device is offline: the command waits
            # Time passes for the short-lived one before the device returns.
            dispatcher._clock = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(seconds=11)
            wait_for(lambda: _state(engine, doomed) == "expired", what="expired while the device was away")
            dispatcher._clock = lambda: dt.datetime.now(dt.UTC)
            agent = Agent(AgentConfig(school="s1", device="pc-0", port=broker.port, dry_run=True,
                                      heartbeat_interval_s=0.5), SimulatedFacts(seed=1))
            agent.start()

            def run_agent_until(predicate, what):
                def step():
                    agent.tick()
                    return predicate()
                return wait_for(step, timeout=20, interval=0.05, what=what)

            run_agent_until(lambda: _state(engine, now_cmd) == "done", "the first command done")
            assert _state(engine, later_cmd) == "pending"  # not before its time
            run_agent_until(lambda: _state(engine, later_cmd) == "done", "the scheduled command done")
            assert _state(engine, doomed) == "expired"
            agent.stop()
        finally:
            dispatcher.stop()


def _state(engine, command_id: str) -> str:
    with engine.connect() as conn:
        return conn.execute(select(Command.state).where(Command.id == command_id)).scalar_one()


pytestmark = pytest.mark.integration
