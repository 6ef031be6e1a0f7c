"""Scaling down for good: a removed replica's broker session holds its share of the stream (Mosquitto keeps
dealing a shared subscription's messages to a stopped member). ``classfleet broker drain`` stores what the
session holds and ends it; nothing is lost, nothing stored twice, and the live replicas get everything after."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from controller.cluster import Cluster
from controller.store import db
from controller.store.models import Observation
from tests.helpers import add_school, count, heartbeat, publish_all, publisher, running_ingest, wait_for

pytestmark = pytest.mark.integration
DEVICES = 50


def _burst(port: int, seqs: range, name: str) -> None:
    """Every device sends one QoS 1 heartbeat per seq; returns once the broker has acknowledged them all."""
    client = publisher(port, name)
    try:
        publish_all(client, [(f"classfleet/v1/s1/pc-{d:02d}/heartbeat", heartbeat(1, seq))
                             for seq in seqs for d in range(DEVICES)])
    finally:
        client.disconnect()
        client.loop_stop()


def _settled(engine, seconds: float = 1.0) -> int:
    """The observation count once it has not moved for ``seconds``."""
    last, since = -1, time.monotonic()
    while True:
        now = count(engine, Observation)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return now
        time.sleep(0.1)


def _drain(db_url: str, port: int, tmp_path: Path, client_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLASSFLEET_DATABASE_URL": db_url, "CLASSFLEET_MQTT_URL": f"mqtt://127.0.0.1:{port}",
           "CLASSFLEET_MQTT_SHARED_SUBSCRIPTION": "true", "CLASSFLEET_MQTT_CLIENT_ID": "replica-0",
           "CLASSFLEET_DATA_DIR": str(tmp_path / "drain"), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "controller", "broker", "drain", client_id, *extra], env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_removed_replicas_session_is_drained_then_forgotten(db_url, broker, tmp_path):
    with running_ingest(db_url, broker.port, client_id="replica-0", shared=True) as (_, engine, _m):
        add_school(engine, "s1")
        with running_ingest(db_url, broker.port, client_id="replica-1", shared=True):
            pass  # replica-1 joined the share group and stopped for good; its session stays on the broker
        _burst(broker.port, range(1, 21), "burst-1")  # 1,000 messages, dealt in turn to replica-0 and replica-1
        assert _settled(engine, 2.0) < 1000  # replica-1's share waits in its session: lost if it just expired

        # drain while the devices keep sending: those go to the live replica (or the drain) and are stored once
        keep_sending = threading.Thread(target=_burst, args=(broker.port, range(21, 41), "burst-2"))
        keep_sending.start()
        cut_short = _drain(db_url, broker.port, tmp_path, "replica-1", "--quiet", "2", "--timeout", "0")
        assert cut_short.returncode == 1 and "it is kept, nothing lost" in cut_short.stderr
        assert _session_present(broker.port, "replica-1") is True
        drained = _drain(db_url, broker.port, tmp_path, "replica-1", "--quiet", "2", "--timeout", "60")
        keep_sending.join(60)
        assert drained.returncode == 0, drained.stdout + drained.stderr
        assert sum(int(run.stderr.split("replica-1: stored ")[1].split()[0]) for run in (cut_short, drained)) > 0
        assert "the broker has forgotten the session" in drained.stderr
        wait_for(lambda: count(engine, Observation) >= 2000, timeout=30, what="both bursts stored")
        assert _settled(engine) == 2000  # exactly once

        _burst(broker.port, range(41, 51), "burst-3")  # nothing more is dealt to replica-1
        wait_for(lambda: count(engine, Observation) >= 2500, timeout=20, what="the third burst, all by replica-0")
        assert _settled(engine) == 2500
        assert _session_present(broker.port, "replica-1") is False  # the broker forgot replica-1's session


def _session_present(port: int, client_id: str) -> bool:
    """Connect as ``client_id`` asking to resume its session: does the broker still have one?"""
    flags: list[bool] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
    client.on_connect = lambda c, u, f, rc, p: flags.append(f.session_present)
    client.connect("127.0.0.1", port, clean_start=False)
    client.loop_start()
    try:
        wait_for(lambda: flags, timeout=10, what="CONNACK")
    finally:
        client.disconnect()
        client.loop_stop()
    return flags[0]


def test_drain_refuses_a_running_replica_and_its_own_id(sqlite_url, broker, tmp_path):
    engine = db.make_engine(sqlite_url)
    running = Cluster(engine, "replica-2")
    running.renew_once()  # replica-2's member lease is live: it is running somewhere
    refused = _drain(sqlite_url, broker.port, tmp_path, "replica-2")
    assert refused.returncode == 2 and "replica replica-2 is running" in refused.stderr
    own = _drain(sqlite_url, broker.port, tmp_path, "replica-0")
    assert own.returncode == 2 and "this controller's own client id" in own.stderr
    engine.dispose()
