"""Store-and-forward under a broker outage, with agents running on their own threads as in production:
every heartbeat and the fault raised during the outage reach the store exactly once, in order; and at
scale, with the broker's persistence carrying a backlog across its restart."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from agents.config import AgentConfig
from agents.core import Agent
from controller.broker import PrivateBroker, free_port
from controller.store import db
from controller.store.models import Device, DeviceState, Incident, Observation
from tests.helpers import add_school, count, running_ingest, stop_process, wait_for

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


def _stop_agents_and_wait_for_all(engine: Any, agents: list[Agent], threads: list[threading.Thread],
                                  stop: threading.Event, join_s: float, timeout: float) -> int:
    """Stop the agents (none may stop with unacknowledged messages) and wait until the store holds at least every
    message they produced; returns that number, for the caller's exactly-once check."""
    stop.set()
    for t in threads:
        t.join(join_s)
    assert all(len(a.spool) == 0 for a in agents), "an agent stopped with unacknowledged messages"
    expected = sum(a.seq for a in agents)
    wait_for(lambda: count(engine, Observation) >= expected, timeout=timeout, what=f"{expected} observations")
    return expected


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
            expected = _stop_agents_and_wait_for_all(engine, agents, threads, stop, join_s=10, timeout=30)
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


AGENTS = 24


def _controller(tmp_path: Path, url: str, broker_url: str) -> subprocess.Popen[bytes]:
    """``python -m controller controller`` on its own process, ready when /readyz says so."""
    port = free_port()
    env = {**os.environ, "CLASSFLEET_DATABASE_URL": url, "CLASSFLEET_MQTT_URL": broker_url,
           "CLASSFLEET_MQTT_CLIENT_ID": "sf-ctl", "CLASSFLEET_PORT": str(port),
           "CLASSFLEET_DATA_DIR": str(tmp_path / "ctl"), "CLASSFLEET_SNMP_INTERVAL_S": "0",
           "CLASSFLEET_ONVIF_INTERVAL_S": "0", "CLASSFLEET_PJLINK_INTERVAL_S": "0"}
    log_path = tmp_path / "controller.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "controller", "controller"], env=env, stdout=log, stderr=log)

    def ready() -> bool:
        assert proc.poll() is None, log_path.read_text()[-3000:]
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
        return False

    wait_for(ready, timeout=60, what="controller ready")
    return proc


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_broker_restart_mid_stream_with_24_spooling_agents_loses_nothing(tmp_path, sqlite_url, broker):
    """24 agents stream heartbeats (20 a second each). The controller stops, so the broker holds a backlog
    in the controller's persistent session; then the broker itself is stopped (SIGTERM: it writes its
    persistence file) while the agents spool to disk, and restarted from that file; the controller comes
    back. Every message each agent produced is stored exactly once."""
    engine = db.make_engine(sqlite_url)
    add_school(engine, "s1")
    ctl = _controller(tmp_path, sqlite_url, broker.url)
    agents = [Agent(AgentConfig(school="s1", device=f"pc-{i:02d}", port=broker.port, heartbeat_interval_s=0.05,
                                state_dir=tmp_path / f"agent-{i}", dry_run=True), DialFacts()) for i in range(AGENTS)]
    stop = threading.Event()
    threads = [threading.Thread(target=a.run, args=(stop,), daemon=True) for a in agents]
    restarted: PrivateBroker | None = None
    try:
        for t in threads:
            t.start()
        wait_for(lambda: count(engine, Observation) >= 1000, timeout=60, what="1,000 live observations")

        stop_process(ctl, signal.SIGTERM)  # its session stays on the broker, which queues the stream for it
        stored_at_ctl_stop = count(engine, Observation)
        time.sleep(5.0)
        broker.broker.stop()  # SIGTERM: Mosquitto saves sessions and queued messages to its persistence file
        # Acknowledged by the broker to the agents (so gone from their spools) yet not stored: only in the file.
        held_by_broker = sum(a.seq - len(a.spool) for a in agents) - stored_at_ctl_stop
        assert held_by_broker > 1000, f"the broker held only {held_by_broker} messages when it stopped"
        assert (tmp_path / "broker" / "mosquitto" / "mosquitto.db").exists(), "no persistence file was written"
        time.sleep(5.0)
        spooled = [len(a.spool) for a in agents]
        assert all(n > 20 for n in spooled), f"agents did not spool during the outage: {spooled}"

        restarted = PrivateBroker(tmp_path / "broker", broker.port)
        restarted.start()
        ctl = _controller(tmp_path, sqlite_url, broker.url)  # same client id: the persisted session
        wait_for(lambda: all(a.connected and len(a.spool) <= 5 for a in agents), timeout=120,
                 what="spools drained after the broker returned")
        time.sleep(1.0)
        expected = _stop_agents_and_wait_for_all(engine, agents, threads, stop, join_s=15, timeout=180)
        time.sleep(2.0)  # anything extra (there must be nothing) would arrive now
        assert count(engine, Observation) == expected  # exactly once
        with engine.connect() as conn:
            devices = dict(conn.execute(select(Device.uid, Device.id)).all())
            for i, agent in enumerate(agents):
                seqs = sorted(conn.scalars(select(Observation.seq)
                                           .where(Observation.device_id == devices[f"pc-{i:02d}"])).all())
                assert seqs == list(range(1, agent.seq + 1)), f"pc-{i:02d}: a gap or a duplicate"
        replayed = count(engine, Observation, Observation.replayed.is_(True))
        assert replayed >= sum(spooled)
        print(f"{AGENTS} agents sent {expected} messages, {expected} stored; the broker held {held_by_broker} "
              f"across its restart, the agents spooled {sum(spooled)}, {replayed} stored as replayed")
    finally:
        stop.set()
        for t in threads:
            t.join(15)
        stop_process(ctl, signal.SIGTERM)
        if restarted is not None:
            restarted.stop()
        engine.dispose()
