"""Store-and-forward under a broker outage, with agents running on their own threads as in production:
every heartbeat and the fault raised during the outage reach the store exactly once, in order."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import select

from agents.config import AgentConfig
from agents.core import Agent
from controller.broker import PrivateBroker
from controller.store.models import Device, DeviceState, Incident, Observation
from tests.helpers import add_school, count, running_ingest, wait_for

pytestmark = pytest.mark.integration


class DialFacts:
    """A machine whose disk use the test turns like a dial (read by the agent's own thread)."""

    def __init__(self) -> None:
        self.disk_pct = 50.0

    def heartbeat(self) -> dict[str, Any]:
        return {"uptime_s": 100.0, "cpu_pct": 5.0, "mem_pct": 30.0, "temp_c": 45.0,
                "disk": [{"mount": "/", "total_bytes": 10**11, "used_pct": self.disk_pct}]}

    def live_facts(self, services: list[str]) -> dict[str, Any]:
        return {}

    def inventory(self) -> dict[str, Any]:
        return {"hardware": {"vendor": "Test"}, "software": []}

    def power(self, action: str, delay_s: int, notice: str | None, dry_run: bool) -> str:
        return "dry"

    def notify(self, text: str, dry_run: bool) -> str:
        return "dry"


def test_broker_outage_loses_nothing_and_keeps_order(tmp_path, sqlite_url, broker):
    with running_ingest(sqlite_url, broker.port, client_id="sf-controller") as (_, engine, _m):
        add_school(engine, "s1")
        facts = [DialFacts() for _ in range(3)]
        agents = [Agent(AgentConfig(school="s1", device=f"pc-{i}", port=broker.port, heartbeat_interval_s=0.25,
                                    state_dir=tmp_path / f"agent-{i}", dry_run=True), facts[i]) for i in range(3)]
        stop = threading.Event()
        threads = [threading.Thread(target=a.run, args=(stop,), daemon=True) for a in agents]
        for t in threads:
            t.start()
        wait_for(lambda: count(engine, Observation, Observation.kind == "heartbeat") >= 12, what="live heartbeats")
        with engine.connect() as conn:
            seen_before = dict(conn.execute(select(DeviceState.device_id, DeviceState.last_seen)).all())

        broker.broker.stop()  # SIGTERM: Mosquitto saves its persistence file
        time.sleep(1.0)
        for f in facts:
            f.disk_pct = 96.0  # the disks fill up while the broker is away: disk.low is raised then
        time.sleep(1.5)
        assert all(len(a.spool) > 0 for a in agents), "nothing was spooled during the outage"

        restarted = PrivateBroker(tmp_path / "broker", broker.port)
        restarted.start()
        try:
            # Heartbeats keep coming, so one may always be in flight: "drained" is at most a couple left.
            wait_for(lambda: all(a.connected and len(a.spool) <= 2 for a in agents), timeout=60,
                     what="spools drained after the broker returned")
            stop.set()
            for t in threads:
                t.join(10)
            assert all(len(a.spool) == 0 for a in agents), "an agent stopped with unacknowledged messages"
            expected = sum(a.seq for a in agents)
            wait_for(lambda: count(engine, Observation) >= expected, timeout=30, what=f"{expected} observations")
            assert count(engine, Observation) == expected  # exactly once
            with engine.connect() as conn:
                devices = dict(conn.execute(select(Device.uid, Device.id)).all())
                for i, agent in enumerate(agents):
                    device_id = devices[f"pc-{i}"]
                    rows = conn.execute(select(Observation.seq, Observation.kind, Observation.replayed,
                                               Observation.received_at)
                                        .where(Observation.device_id == device_id).order_by(Observation.id)).all()
                    seqs = [r.seq for r in rows]
                    assert seqs == list(range(1, agent.seq + 1)), "a gap, a duplicate or out of (session, seq) order"
                    assert sum(r.kind == "event" for r in rows) == 1
                    assert any(r.replayed for r in rows), "nothing was marked replayed"
                    state = conn.execute(select(DeviceState).where(DeviceState.device_id == device_id)).one()
                    live = [r.received_at for r in rows if not r.replayed]
                    assert state.last_seen == max(live) and state.last_seen >= seen_before[device_id]
                    incident = conn.execute(select(Incident).where(Incident.device_id == device_id)).one()
                    assert incident.code == "disk.low" and incident.count == 1 and incident.state == "open"
        finally:
            stop.set()
            restarted.stop()
