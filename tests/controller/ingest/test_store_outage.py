"""A database outage mid-stream: a throwaway PostgreSQL cluster owned by this test is stopped
(``pg_ctl stop -m fast``) for 30 s while 20 publishers keep sending QoS 1 heartbeats to a real
controller process (``python -m controller controller``). Ingest pauses (no commits, so no acks: the
broker keeps the stream in the controller's session), the controller's memory stays bounded, and
after the cluster is back every message sent is stored exactly once."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from controller.broker import free_port, wait_for_port
from controller.store import db
from controller.store.models import DeviceState, Observation
from tests.fixtures.services import _pg_bin
from tests.helpers import add_school, count, heartbeat, publisher, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PUBLISHERS = 20
DEVICES_PER_PUBLISHER = 10
ROUNDS = 100  # heartbeats per device
ROUND_S = 0.5  # 200 devices x 2/s: 400 messages/s for 50 s
OUTAGE_S = 30.0
RSS_GROWTH_MAX = 100 * 1024 * 1024


class OwnedPostgres:
    """A PostgreSQL cluster in a temp dir on a free loopback port, run as ``postgres`` when we are root
    (initdb and postgres refuse root), that the test may stop and start."""

    def __init__(self) -> None:
        initdb, self._pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if not initdb or not self._pg_ctl:
            pytest.skip("initdb/pg_ctl not installed (apt-get install -y postgresql)")
        # mkdtemp, not tmp_path: pytest's base directory is private to root, so 'postgres' cannot enter it.
        self.base = Path(tempfile.mkdtemp(prefix="cf-pg-outage-"))
        self._data, sock = self.base / "data", self.base / "sock"
        sock.mkdir()
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres")
            shutil.chown(sock, "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self._opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {sock} -c fsync=off -c max_connections=100"
        subprocess.run([*self._as, initdb, "-D", str(self._data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run([*self._as, self._pg_ctl, "-D", str(self._data), *args], check=True, capture_output=True,
                       timeout=120)

    def start(self) -> None:
        self._ctl("-o", self._opts, "-l", str(self.base / "log"), "-w", "start")
        assert wait_for_port(self.port, timeout=30), (self.base / "log").read_text()[-2000:]

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def owned_postgres() -> Iterator[OwnedPostgres]:
    """A started cluster, stopped and removed afterwards whatever happened."""
    pg = OwnedPostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.remove()


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def scrape(base: str) -> dict[str, float]:
    """The controller's own ingest samples from /metrics, summed over labels."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("classfleet_ingest_") or sample.name == "classfleet_store_scrape_error":
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


@pytest.mark.timeout(600)
def test_database_stopped_30s_pauses_ingest_bounds_memory_and_loses_nothing(tmp_path, broker):
    with owned_postgres() as pg:
        db.upgrade(pg.url)
        engine = db.make_engine(pg.url)
        add_school(engine, "s1")
        http_port = free_port()
        env = {**os.environ, "CLASSFLEET_DATABASE_URL": pg.url, "CLASSFLEET_MQTT_URL": broker.url,
               "CLASSFLEET_MQTT_CLIENT_ID": "ctl-outage", "CLASSFLEET_PORT": str(http_port),
               "CLASSFLEET_DATA_DIR": str(tmp_path / "ctl"), "CLASSFLEET_METRICS_PUBLIC": "true",
               "CLASSFLEET_METRICS_CACHE_S": "0", "CLASSFLEET_SNMP_INTERVAL_S": "0",
               "CLASSFLEET_ONVIF_INTERVAL_S": "0", "CLASSFLEET_PJLINK_INTERVAL_S": "0"}
        log_path = tmp_path / "controller.log"
        with log_path.open("ab") as log:
            ctl = subprocess.Popen([sys.executable, "-m", "controller", "controller"], env=env, stdout=log,
                                   stderr=log)
        base = f"http://127.0.0.1:{http_port}"
        clients = [publisher(broker.port, f"pub-{i}") for i in range(PUBLISHERS)]
        acked = [0] * PUBLISHERS
        stop = threading.Event()

        def ready() -> bool:
            assert ctl.poll() is None, log_path.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            return False

        def send(i: int) -> None:  # paced: every device one heartbeat per round
            def on_publish(*_: object) -> None:
                acked[i] += 1

            clients[i].on_publish = on_publish
            start = time.monotonic()
            infos = []
            for seq in range(1, ROUNDS + 1):
                for d in range(DEVICES_PER_PUBLISHER):
                    topic = f"classfleet/v1/s1/pc-{i:02d}-{d}/heartbeat"
                    infos.append(clients[i].publish(topic, heartbeat(1, seq), qos=1))
                if stop.wait(max(0.0, start + seq * ROUND_S - time.monotonic())):
                    return
            for info in infos:
                info.wait_for_publish(60)

        senders = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(PUBLISHERS)]
        total = PUBLISHERS * DEVICES_PER_PUBLISHER * ROUNDS
        try:
            wait_for(ready, timeout=60, what="controller ready")
            for t in senders:
                t.start()
            wait_for(lambda: count(engine, Observation) >= 2000, timeout=60, what="ingest under way")
            baseline = 0
            for _ in range(10):  # while ingesting normally
                baseline = max(baseline, rss_bytes(ctl.pid))
                time.sleep(0.1)
            before = scrape(base)

            pg.stop("fast")
            down_at, rss, samples = time.monotonic(), [], []
            while time.monotonic() - down_at < OUTAGE_S:
                rss.append(rss_bytes(ctl.pid))
                if len(rss) % 25 == 5:  # every ~5 s, from 1 s in
                    samples.append((sum(acked), scrape(base)))
                time.sleep(0.2)
            readiness = httpx.get(f"{base}/readyz", timeout=10)
            pg.start()

            for t in senders:
                t.join(120)
            assert sum(acked) == total, f"the broker acknowledged {sum(acked)} of {total} publishes"
            wait_for(lambda: count(engine, Observation) >= total, timeout=240, what=f"{total} observations")
            time.sleep(2.0)  # anything extra (there must be nothing) would arrive now
            after = scrape(base)

            # While the store was down: no batch committed, so none acknowledged; the publishers went on.
            (acked_first, first), (acked_last, last) = samples[0], samples[-1]
            committed = "classfleet_ingest_messages_total"
            assert first[committed] == last[committed], "a batch was committed while the database was down"
            assert last["classfleet_ingest_commit_failures_total"] > first["classfleet_ingest_commit_failures_total"]
            assert acked_last - acked_first > 2000, "the stream did not go on during the outage"
            assert max(s["classfleet_ingest_queue_depth"] for _, s in samples) <= 1000  # Receive Maximum
            assert before["classfleet_ingest_shed_total"] == after["classfleet_ingest_shed_total"] == 0
            assert readiness.status_code == 503 and readiness.json()["checks"]["store"].startswith("error")
            growth = max(rss) - baseline
            print(f"sent {total}, stored {count(engine, Observation)}; during the outage the broker took "
                  f"{acked_last - acked_first} more, the controller committed none; RSS {baseline / 2**20:.0f} MiB "
                  f"before, at most {max(rss) / 2**20:.0f} MiB during (+{growth / 2**20:.1f} MiB)")
            assert growth < RSS_GROWTH_MAX, f"controller RSS grew by {growth / 2**20:.0f} MiB during the outage"

            # Afterwards: every message exactly once, every device at its last heartbeat.
            with engine.connect() as conn:
                assert conn.scalar(select(func.count()).select_from(Observation)) == total
                states = conn.execute(select(DeviceState.session, DeviceState.seq)).all()
            assert len(states) == PUBLISHERS * DEVICES_PER_PUBLISHER and set(states) == {(1, ROUNDS)}
            assert after[committed] - after["classfleet_ingest_duplicates_total"] == total
            assert after["classfleet_ingest_rejected_total"] == 0
        finally:
            stop.set()
            ctl.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                ctl.wait(30)
            if ctl.poll() is None:
                ctl.kill()
            for c in clients:
                c.disconnect()
                c.loop_stop()
            engine.dispose()
