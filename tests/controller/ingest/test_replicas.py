"""Scale-out: three controller replicas share the stream (MQTT 5 shared subscription) into one
PostgreSQL; one is SIGKILLed mid-stream and restarted with the same client id. Every message is
applied exactly once and each device's state is its highest (session, seq), whatever replica
handled which message in which order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from controller.broker import free_port
from controller.store import db
from controller.store.models import DeviceState, Observation
from tests.helpers import add_school, count, heartbeat, publish_all, publisher, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEVICES = int(os.environ.get("CLASSFLEET_TEST_REPLICA_DEVICES", "1000"))
PER_DEVICE = 100
CONNECTIONS = 50


def _replica(tmp_path: Path, pg_url: str, broker_url: str, name: str) -> subprocess.Popen[bytes]:
    port = free_port()
    env = {**os.environ, "CLASSFLEET_DATABASE_URL": pg_url, "CLASSFLEET_MQTT_URL": broker_url,
           "CLASSFLEET_MQTT_CLIENT_ID": name, "CLASSFLEET_MQTT_SHARED_SUBSCRIPTION": "true",
           "CLASSFLEET_PORT": str(port), "CLASSFLEET_DATA_DIR": str(tmp_path / name),
           "CLASSFLEET_SNMP_INTERVAL_S": "0", "CLASSFLEET_ONVIF_INTERVAL_S": "0", "CLASSFLEET_PJLINK_INTERVAL_S": "0"}
    log = open(tmp_path / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the child
    proc = subprocess.Popen([sys.executable, "-m", "controller", "controller"], env=env, stdout=log, stderr=log)

    def ready() -> bool:
        assert proc.poll() is None, (tmp_path / f"{name}.log").read_text()[-3000:]
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=60, what=f"replica {name} ready")
    return proc


@pytest.mark.timeout(600)
def test_three_replicas_one_killed_every_message_exactly_once(tmp_path, pg_url, broker):
    engine = db.make_engine(pg_url)
    add_school(engine, "s1")
    replicas = {name: _replica(tmp_path, pg_url, broker.url, name) for name in ("ctl-a", "ctl-b", "ctl-c")}
    clients = [publisher(broker.port, f"load-{i}") for i in range(CONNECTIONS)]

    def send(i: int) -> None:
        mine = range(i, DEVICES, CONNECTIONS)
        for start in range(1, PER_DEVICE + 1, 10):
            publish_all(clients[i], [(f"classfleet/v1/s1/pc-{d:04d}/heartbeat", heartbeat(1, seq))
                                     for d in mine for seq in range(start, start + 10)])

    senders = [threading.Thread(target=send, args=(i,)) for i in range(CONNECTIONS)]
    try:
        for t in senders:
            t.start()
        total = DEVICES * PER_DEVICE
        wait_for(lambda: count(engine, Observation) >= total // 4, timeout=120, what="a quarter of the stream")
        replicas["ctl-b"].send_signal(signal.SIGKILL)
        replicas["ctl-b"].wait(10)
        assert count(engine, Observation) < total, "the stream ended before the kill; nothing was tested"
        replicas["ctl-b"] = _replica(tmp_path, pg_url, broker.url, "ctl-b")  # same client id
        for t in senders:
            t.join(300)
        wait_for(lambda: count(engine, Observation) >= total, timeout=240, what=f"{total} observations")
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Observation)) == total
            seqs = conn.execute(select(DeviceState.session, DeviceState.seq, DeviceState.hb_seq)).all()
        assert len(seqs) == DEVICES and set(seqs) == {(1, PER_DEVICE, PER_DEVICE)}
    finally:
        for proc in replicas.values():
            proc.terminate()
        for proc in replicas.values():
            proc.wait(30)
        for c in clients:
            c.disconnect()
        engine.dispose()
