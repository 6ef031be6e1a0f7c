"""The real agent against a real broker and the real ingest: spooling through outages, commands."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import pytest
from sqlalchemy import select

from agents.core import Agent, AgentConfig
from agents.facts import SimulatedFacts
from controller.broker import PrivateBroker
from controller.store.models import Command, DeviceState, Observation
from tests.helpers import add_school, count, publish_all, publisher, running_ingest, wait_for

pytestmark = pytest.mark.integration


def _agent(port: int, state_dir, device: str = "pc-1", **kw) -> Agent:
    config = AgentConfig(school="s1", device=device, port=port, state_dir=state_dir, heartbeat_interval_s=1.0, **kw)
    return Agent(config, SimulatedFacts(seed=3))


def _tick_until(agent: Agent, predicate, timeout: float = 20, what: str = "") -> None:
    def step():
        agent.tick()
        return predicate()
    wait_for(step, timeout=timeout, interval=0.05, what=what)


def test_agent_spools_while_the_broker_is_away_and_replays_after(tmp_path, sqlite_url, broker):
    with running_ingest(sqlite_url, broker.port) as (_, engine, _m):
        add_school(engine, "s1")
        agent = _agent(broker.port, tmp_path / "agent")
        agent.start()
        _tick_until(agent, lambda: agent.connected, what="agent connected")
        for _ in range(5):
            agent.send_heartbeat()
        _tick_until(agent, lambda: len(agent.spool) == 0, what="first heartbeats acknowledged")
        wait_for(lambda: count(engine, Observation, Observation.kind == "heartbeat") >= 5)

        broker.broker.stop()  # the school's link to the broker goes down
        _tick_until(agent, lambda: not agent.connected, what="agent notices the outage")
        for _ in range(10):
            agent.send_heartbeat()
        assert len(agent.spool) >= 10  # kept on disk, not lost

        restarted = PrivateBroker(tmp_path / "broker", broker.port)  # same port, same persistence
        restarted.start()
        try:
            _tick_until(agent, lambda: agent.connected and len(agent.spool) == 0, timeout=40,
                        what="spool flushed after the broker came back")
            total = agent.seq
            wait_for(lambda: count(engine, Observation) >= total, timeout=30, what="all messages stored")
            assert count(engine, Observation) == total
            replayed = count(engine, Observation, Observation.replayed.is_(True))
            assert replayed >= 10
            with engine.connect() as conn:
                state = conn.execute(select(DeviceState)).one()
            assert state.online is True
        finally:
            agent.stop()
            restarted.stop()


def test_agent_restart_bumps_session_and_sends_what_a_crash_left(tmp_path, sqlite_url, broker):
    state_dir = tmp_path / "agent"
    with running_ingest(sqlite_url, broker.port) as (_, engine, _m):
        add_school(engine, "s1")
        offline = _agent(1, state_dir)  # port 1: nothing listens, every message stays in the spool
        assert offline.session == 1
        for _ in range(4):
            offline.send_heartbeat()
        offline.stop(graceful=False)  # the machine loses power

        agent = _agent(broker.port, state_dir)
        assert agent.session == 2
        agent.start()
        _tick_until(agent, lambda: agent.connected and len(agent.spool) == 0, what="old spool flushed")
        wait_for(lambda: count(engine, Observation) >= 4 + agent.seq)
        with engine.connect() as conn:
            sessions = sorted(set(conn.execute(select(Observation.session)).scalars()))
            state = conn.execute(select(DeviceState)).one()
        assert sessions == [1, 2]
        assert state.session == 2 and state.online
        agent.stop()


def test_commands_are_acknowledged_through_their_lifecycle(tmp_path, sqlite_url, broker):
    with running_ingest(sqlite_url, broker.port) as (_, engine, _m):
        add_school(engine, "s1")
        agent = _agent(broker.port, tmp_path / "agent")
        agent.start()
        _tick_until(agent, lambda: agent.connected, what="agent connected")
        agent.tick()
        wait_for(lambda: count(engine, DeviceState) == 1)
        with engine.connect() as conn:
            device_id = conn.execute(select(DeviceState.device_id)).scalar_one()
        now = time.time()
        ok, expired, later = (str(uuid.uuid4()) for _ in range(3))
        with engine.begin() as conn:
            for cid in (ok, expired, later):
                conn.execute(Command.__table__.insert().values(
                    id=cid, device_id=device_id, action="collect_inventory", args={}, state="sent",
                    expires=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5), created_at=dt.datetime.now(dt.UTC)))
        topic = "classfleet/v1/s1/pc-1/cmd"
        client = publisher(broker.port, "controller-commands")
        publish_all(client, [
            (topic, json.dumps({"v": 1, "id": ok, "action": "collect_inventory", "expires": now + 60})),
            (topic, json.dumps({"v": 1, "id": expired, "action": "collect_inventory", "expires": now - 1})),
            (topic, json.dumps({"v": 1, "id": later, "action": "run_check", "not_before": now + 2,
                                "expires": now + 60})),
            (topic, json.dumps({"v": 1, "id": str(uuid.uuid4()), "action": "format_disk", "expires": now + 60})),
        ])

        def states():
            agent.tick()
            with engine.connect() as conn:
                return dict(conn.execute(select(Command.id, Command.state)).all())

        wait_for(lambda: states()[ok] == "done" and states()[expired] == "rejected"
                 and states()[later] == "accepted", timeout=20, what="first acks")
        wait_for(lambda: states()[later] == "done", timeout=20, what="scheduled command done")
        with engine.connect() as conn:
            detail = conn.execute(select(Command.detail).where(Command.id == expired)).scalar_one()
        assert detail == "expired"
        client.disconnect()
        agent.stop()
