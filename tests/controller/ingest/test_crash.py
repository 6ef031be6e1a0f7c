"""A controller SIGKILLed mid-stream and restarted with the same client id loses nothing and
applies nothing twice: acknowledgements go out only after the batch is committed."""

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
from controller.store.models import DeviceState, Incident, Observation
from tests.helpers import add_school, count, event, heartbeat, publish_all, publisher, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEVICES = 20
PER_DEVICE = 150  # every 10th message is a 'disk.low raised' event; the rest heartbeats


def _start_controller(tmp_path: Path, db_url: str, broker_url: str, api_port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CLASSFLEET_DATABASE_URL": db_url, "CLASSFLEET_MQTT_URL": broker_url,
           "CLASSFLEET_MQTT_CLIENT_ID": "crash-test-controller", "CLASSFLEET_PORT": str(api_port),
           "CLASSFLEET_DATA_DIR": str(tmp_path / "data"), "CLASSFLEET_INGEST_BATCH_MAX": "200"}
    log = open(tmp_path / f"controller-{api_port}.log", "ab")  # noqa: SIM115 - kept open for the child
    proc = subprocess.Popen([sys.executable, "-m", "controller", "controller"], env=env, stdout=log, stderr=log)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"controller exited: {(tmp_path / f'controller-{api_port}.log').read_text()}")
        try:
            return httpx.get(f"http://127.0.0.1:{api_port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=30, what="controller ready")
    return proc


def test_sigkill_mid_stream_loses_nothing_and_applies_nothing_twice(tmp_path, db_url, broker):
    engine = db.make_engine(db_url)
    add_school(engine, "school-k")
    proc = _start_controller(tmp_path, db_url, broker.url, free_port())
    clients = [publisher(broker.port, f"crash-agent-{d}") for d in range(DEVICES)]
    done = threading.Event()

    def stream() -> None:
        for start in range(1, PER_DEVICE + 1, 10):
            for d, client in enumerate(clients):
                topic = f"classfleet/v1/school-k/pc-{d:02d}"
                msgs = []
                for seq in range(start, start + 10):
                    if seq % 10 == 0:
                        msgs.append((f"{topic}/event", event(1, seq)))
                    else:
                        msgs.append((f"{topic}/heartbeat", heartbeat(1, seq)))
                publish_all(client, msgs)
        done.set()

    sender = threading.Thread(target=stream)
    sender.start()
    wait_for(lambda: count(engine, Observation) >= 600, timeout=60, what="first part of the stream")
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    killed_at = count(engine, Observation)
    assert killed_at < DEVICES * PER_DEVICE, "the stream ended before the kill; nothing was tested"
    proc = _start_controller(tmp_path, db_url, broker.url, free_port())
    try:
        sender.join(120)
        assert done.is_set()
        total = DEVICES * PER_DEVICE
        wait_for(lambda: count(engine, Observation) >= total, timeout=90, what=f"{total} observations")
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Observation)) == total
            incidents = conn.execute(select(Incident.count)).scalars().all()
            seqs = conn.execute(select(DeviceState.seq)).scalars().all()
        # 15 'raised' events per device, each bumping its incident exactly once.
        assert sorted(incidents) == [PER_DEVICE // 10] * DEVICES
        assert seqs == [PER_DEVICE] * DEVICES
    finally:
        proc.terminate()
        proc.wait(15)
        for c in clients:
            c.disconnect()
        engine.dispose()
