"""Ingest throughput: committed messages/s of one controller process, against a peer ceiling.

Run by hand, never in CI (see bench/README.md), from the project root:

    .venv/bin/python bench/ingest.py                          # 1,000 agents x 100 heartbeats, all phases
    .venv/bin/python bench/ingest.py --agents 200 --per-agent 10 --phases ceiling,sqlite

Every phase starts a fresh private Mosquitto (``controller.broker.PrivateBroker``: the controller's
own configuration, with persistence, no queue cap and max_inflight 1000) in a temp dir, then one
measured consumer process, then the same publisher load: ``--agents`` paho-mqtt MQTT 5 clients
(one client id per simulated agent) spread over ``--procs`` processes, each client publishing
``--per-agent`` valid QoS 1 heartbeats (session 1, seq 1..N) with up to ``--inflight``
unacknowledged at a time. Publishers connect first and start together.

Phases:

- ``ceiling``: a bare paho subscriber (MQTT 5, QoS 1 on ``classfleet/v1/#``, automatic acks, the
  same persistent session and Receive Maximum as the controller) that only counts messages;
- ``sqlite`` / ``postgresql``: the real ingest, ``IngestService`` + ``BatchWriter`` on a fresh
  migrated database (acks are sent after each commit). A message counts when its batch has been
  committed (``on_batch``); at the end the observations table must hold exactly the total.

The rate is taken from the moment the consumer holds 10% of the total (``--warmup``), so
connection, device registration and the first batches are excluded, to the moment it holds all
of it. The rate from the first message/batch is reported as well.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import pwd
import queue
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.fixtures / tests.helpers live in the project root, not the package

PHASES = ("ceiling", "sqlite", "postgresql")
SESSION_EXPIRY_S = 7 * 24 * 3600  # the session expiry IngestService asks for
DEVICES_PER_SCHOOL = 250
CONNECT_CHUNK = 50  # publishers connect this many clients, then wait for their CONNACKs
STALL_S = 60.0  # a consumer that sees no progress for this long gives up
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fleet(agents: int) -> list[tuple[str, str]]:
    """(school, device) of every simulated agent, DEVICES_PER_SCHOOL per school."""
    return [(f"bench-school-{i // DEVICES_PER_SCHOOL + 1:02d}", f"pc-{i + 1:05d}") for i in range(agents)]


def receive_maximum(batch_max: int) -> int:
    """The Receive Maximum IngestService announces; the ceiling subscriber uses the same."""
    return min(65535, max(2 * batch_max, 100))


def warm_mark(total: int, warmup: float) -> int:
    return max(1, min(total, math.ceil(total * warmup)))


# --------------------------------------------------------------------------------------------
# Child processes (started with the "spawn" method: fresh interpreters, nothing inherited).
# Each reports on the shared queue as (kind, who, payload) tuples.


@dataclass(frozen=True)
class PubJob:
    index: int
    port: int
    devices: list[tuple[str, str]]
    per_agent: int
    inflight: int
    client_prefix: str
    deadline: float  # time.monotonic() (system-wide on Linux) after which the process gives up


@dataclass(frozen=True)
class ConsumerJob:
    phase: str
    port: int
    total: int
    mark: int
    batch_max: int
    url: str | None
    schools: list[str]
    deadline: float


def _child_setup() -> None:
    # Ctrl+C goes to the whole process group: only the parent handles it (and stops the children).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))


def _cpu_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _guarded(who: str, results: Any, body: Callable[[], None]) -> None:
    try:
        body()
    except BaseException:
        results.put(("error", who, traceback.format_exc()))
        raise


class _Agent:
    __slots__ = ("acked", "next_seq", "topic")

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.next_seq = 1
        self.acked = 0


def publisher_main(job: PubJob, results: Any, go: Any, stop: Any) -> None:
    """Connect one paho client per agent, then publish every agent's heartbeats with a window."""
    _child_setup()
    _guarded(f"publishers-{job.index}", results, lambda: _publish(job, results, go, stop))


def _publish(job: PubJob, results: Any, go: Any, stop: Any) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    from tests.helpers import heartbeat  # the payload the tests send: valid per the wire contract

    who = f"publishers-{job.index}"
    sel = selectors.DefaultSelector()
    rw = selectors.EVENT_READ | selectors.EVENT_WRITE
    expected = len(job.devices) * job.per_agent
    st = {"connected": 0, "acked": 0, "failed_acks": 0, "disconnects": 0, "refused": 0}
    stopping = False

    # External event loop: one selector for all clients, paho tells us when a socket wants writing.
    def on_open(client: mqtt.Client, _ud: object, sock: Any) -> None:
        sel.register(sock, selectors.EVENT_READ, client)

    def on_close(_client: mqtt.Client, _ud: object, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(sock)

    def on_register_write(client: mqtt.Client, _ud: object, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.modify(sock, rw, client)

    def on_unregister_write(client: mqtt.Client, _ud: object, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.modify(sock, selectors.EVENT_READ, client)

    def on_connect(_client: mqtt.Client, _agent: _Agent, _flags: object, reason: Any, _props: object) -> None:
        if reason.is_failure:
            st["refused"] += 1
        else:
            st["connected"] += 1

    def on_disconnect(_client: mqtt.Client, _agent: _Agent, _flags: object, _reason: object, _p: object) -> None:
        if not stopping:
            st["disconnects"] += 1

    def on_publish(client: mqtt.Client, agent: _Agent, _mid: int, reason: Any, _props: object) -> None:
        if reason.is_failure:
            st["failed_acks"] += 1
        agent.acked += 1
        st["acked"] += 1
        if agent.next_seq <= job.per_agent:  # keep the window full: one out, one in
            client.publish(agent.topic, heartbeat(1, agent.next_seq), qos=1)
            agent.next_seq += 1

    last_misc = time.monotonic()

    def pump(timeout: float) -> None:
        nonlocal last_misc
        for key, mask in sel.select(timeout):
            client = key.data
            if mask & selectors.EVENT_READ:
                client.loop_read()
            if mask & selectors.EVENT_WRITE:
                client.loop_write()
        now = time.monotonic()
        if now - last_misc > 5:  # keepalive pings
            last_misc = now
            for c in clients:
                c.loop_misc()

    def check(what: str) -> None:
        if time.monotonic() > job.deadline:
            raise TimeoutError(f"{who}: deadline passed while {what}")
        if st["refused"] or st["disconnects"]:
            raise RuntimeError(f"{who}: {st['refused']} connections refused, {st['disconnects']} lost ({what})")

    clients: list[mqtt.Client] = []
    for school, device in job.devices:
        agent = _Agent(f"classfleet/v1/{school}/{device}/heartbeat")
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{job.client_prefix}-{school}-{device}",
                             protocol=MQTTProtocolVersion.MQTTv5, userdata=agent)
        client.max_inflight_messages_set(job.inflight)
        client.on_socket_open = on_open
        client.on_socket_close = on_close
        client.on_socket_register_write = on_register_write
        client.on_socket_unregister_write = on_unregister_write
        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        client.connect("127.0.0.1", job.port, keepalive=60)
        clients.append(client)
        if len(clients) % CONNECT_CHUNK == 0 or len(clients) == len(job.devices):
            while st["connected"] < len(clients):
                check("connecting")
                pump(0.05)
    results.put(("ready", who, os.getpid()))

    while not go.is_set():
        check("waiting for go")
        if stop.is_set():
            return
        pump(0.02)
    t_start = time.monotonic()
    cpu_start = _cpu_self()
    for client in clients:
        agent = client.user_data_get()
        for _ in range(min(job.inflight, job.per_agent)):
            client.publish(agent.topic, heartbeat(1, agent.next_seq), qos=1)
            agent.next_seq += 1
    while st["acked"] < expected and not stop.is_set():
        check("publishing")
        pump(0.2)
    t_done = time.monotonic()
    results.put(("published", who, {"acked": st["acked"], "failed_acks": st["failed_acks"], "t_start": t_start,
                                    "t_done": t_done, "cpu_s": _cpu_self() - cpu_start}))
    # Stay connected (idle, answering pings) until the consumer is done, so nothing else moves.
    while not stop.is_set() and time.monotonic() < job.deadline:
        pump(0.2)
    stopping = True
    for client in clients:
        client.disconnect()
    end = time.monotonic() + 1.0
    while time.monotonic() < end and sel.get_map():
        pump(0.05)


def _await_total(progress: Callable[[], int], done: threading.Event, stop: Any, deadline: float) -> str:
    """Wait until ``done``; give up on stop, on the deadline, or after STALL_S without progress."""
    last, last_t = -1, time.monotonic()
    while not done.wait(0.2):
        now = time.monotonic()
        if stop.is_set():
            return "stopped"
        if now > deadline:
            return "timeout"
        n = progress()
        if n != last:
            last, last_t = n, now
        elif n > 0 and now - last_t > STALL_S:
            return "stalled"
    return "ok"


def _wait_stop(stop: Any, deadline: float) -> None:
    while not stop.wait(0.2) and time.monotonic() < deadline:
        pass


def ceiling_main(job: ConsumerJob, results: Any, stop: Any, shared: bool = False) -> None:
    """The peer ceiling: a bare paho subscriber that counts, with automatic acks.

    ``shared`` puts it on the controller's shared subscription, the ceiling bench/scale_out.py compares
    its replicas against.
    """
    _child_setup()
    _guarded("consumer", results, lambda: _ceiling(job, results, stop, shared))


def _ceiling(job: ConsumerJob, results: Any, stop: Any, shared: bool) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from classfleet_wire.topics import subscription

    st: dict[str, Any] = {"n": 0, "points": [], "cpu_mark": None, "cpu_end": None}
    done, subscribed = threading.Event(), threading.Event()

    def on_connect(client: mqtt.Client, _ud: object, _flags: object, reason: Any, _props: object) -> None:
        if not reason.is_failure:
            client.subscribe(subscription(shared), qos=1)

    def on_message(_client: mqtt.Client, _ud: object, _msg: mqtt.MQTTMessage) -> None:
        n = st["n"] = st["n"] + 1
        if n == 1 or n == job.mark or n == job.total:
            st["points"].append((time.monotonic(), n))
            if n == job.mark:
                st["cpu_mark"] = _cpu_self()
            if n == job.total:
                st["cpu_end"] = _cpu_self()
                done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-shared-ceiling" if shared else "bench-ceiling",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.on_connect = on_connect
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    props.ReceiveMaximum = receive_maximum(job.batch_max)
    client.connect("127.0.0.1", job.port, keepalive=30, clean_start=False, properties=props)
    client.loop_start()
    try:
        if not subscribed.wait(30):
            raise RuntimeError("ceiling subscriber did not subscribe within 30 s")
        results.put(("ready", "consumer", {"pid": os.getpid(), "db_pid": None}))
        status = _await_total(lambda: st["n"], done, stop, job.deadline)
        results.put(("consumer", "consumer", {
            "status": status, "received": st["n"], "points": st["points"],
            "cpu_mark": st["cpu_mark"], "cpu_end": st["cpu_end"],
        }))
        _wait_stop(stop, job.deadline)
        results.put(("extra", "consumer", {"received_after": st["n"]}))
    finally:
        client.disconnect()
        client.loop_stop()


def ingest_main(job: ConsumerJob, results: Any, stop: Any) -> None:
    """The real controller ingest on a fresh migrated database, timed by its on_batch callback."""
    _child_setup()
    _guarded("consumer", results, lambda: _ingest(job, results, stop))


def _ingest(job: ConsumerJob, results: Any, stop: Any) -> None:
    from prometheus_client import CollectorRegistry
    from sqlalchemy import func, select, text

    from controller.ingest.service import BrokerAddress, IngestService
    from controller.metrics import IngestMetrics
    from controller.store import db
    from controller.store.models import Observation
    from controller.store.writer import BatchOutcome, BatchWriter
    from tests.helpers import add_school

    assert job.url is not None
    db.upgrade(job.url)
    engine = db.make_engine(job.url)
    for school in job.schools:
        add_school(engine, school, f"Benchmark {school}")
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    done = threading.Event()
    st: dict[str, Any] = {"cum": 0, "points": [], "sizes": [], "duplicates": 0, "rejected": 0, "registered": 0,
                          "cpu_mark": None, "cpu_end": None}

    def on_batch(outcome: BatchOutcome) -> None:  # on the writer thread, after commit and acks
        now = time.monotonic()
        applied = sum(outcome.applied.values())
        rejected = sum(outcome.rejected.values())
        st["cum"] += applied - outcome.duplicates
        st["duplicates"] += outcome.duplicates
        st["rejected"] += rejected
        st["registered"] += outcome.registered
        st["sizes"].append(applied + rejected)
        st["points"].append((now, st["cum"]))
        if st["cpu_mark"] is None and st["cum"] >= job.mark:
            st["cpu_mark"] = _cpu_self()
        if st["cum"] >= job.total and not done.is_set():
            st["cpu_end"] = _cpu_self()
            done.set()

    service = IngestService(BrokerAddress("127.0.0.1", job.port), BatchWriter(engine), metrics,
                            client_id="bench-controller", batch_max=job.batch_max, on_batch=on_batch)
    db_pid = None
    if engine.dialect.name == "postgresql":  # the pooled connection the writer thread will reuse
        with engine.connect() as conn:
            db_pid = conn.scalar(text("SELECT pg_backend_pid()"))
    service.start()
    try:
        if not service.wait_connected(30):
            raise RuntimeError("ingest did not connect to the broker within 30 s")
        results.put(("ready", "consumer", {"pid": os.getpid(), "db_pid": db_pid}))
        status = _await_total(lambda: st["cum"], done, stop, job.deadline)
        with engine.connect() as conn:
            rows = int(conn.scalar(select(func.count()).select_from(Observation)) or 0)
        commit_sum = registry.get_sample_value("classfleet_ingest_batch_commit_seconds_sum") or 0.0
        commit_n = registry.get_sample_value("classfleet_ingest_batch_commit_seconds_count") or 0.0
        results.put(("consumer", "consumer", {
            "status": status, "received": st["cum"], "rows": rows, "points": list(st["points"]),
            "sizes": list(st["sizes"]), "duplicates": st["duplicates"], "rejected": st["rejected"],
            "registered": st["registered"], "cpu_mark": st["cpu_mark"], "cpu_end": st["cpu_end"],
            "commit_mean_s": commit_sum / commit_n if commit_n else None,
            "commit_failures": registry.get_sample_value("classfleet_ingest_commit_failures_total") or 0.0,
        }))
        _wait_stop(stop, job.deadline)
        with engine.connect() as conn:
            rows_after = int(conn.scalar(select(func.count()).select_from(Observation)) or 0)
        results.put(("extra", "consumer", {"received_after": st["cum"], "rows_after": rows_after}))
    finally:
        service.stop(timeout=10)
        engine.dispose()


# --------------------------------------------------------------------------------------------
# The parent: one phase at a time, everything cleaned up in finally blocks.


class Inbox:
    """Messages from the children; fails fast if a child dies or reports an error."""

    def __init__(self, q: Any, procs: list[Any]) -> None:
        self._q = q
        self._procs = procs
        self.got: list[tuple[str, str, Any]] = []

    def _pull(self, timeout: float) -> None:
        with contextlib.suppress(queue.Empty):
            self.got.append(self._q.get(timeout=timeout))
        for kind, who, payload in self.got:
            if kind == "error":
                raise RuntimeError(f"{who} failed:\n{payload}")
        for p in self._procs:
            if p.exitcode not in (None, 0):
                raise RuntimeError(f"{p.name} exited with code {p.exitcode}")

    def wait(self, pred: Callable[[tuple[str, str, Any]], bool], count: int, deadline: float,
             what: str) -> list[tuple[str, str, Any]]:
        while True:
            found = [m for m in self.got if pred(m)]
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out waiting for {what}")
            self._pull(min(0.5, remaining))


def _proc_cpu(pid: int | None) -> float | None:
    """CPU seconds (user + system) a process has used, from /proc."""
    if pid is None:
        return None
    try:
        rest = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def _machine_busy() -> float | None:
    """CPU seconds all cores of the machine have been busy (everything, not only us)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLK_TCK


def _cpu_snapshot(pids: dict[str, list[int | None]]) -> dict[str, float | None]:
    snap: dict[str, float | None] = {"machine": _machine_busy()}
    for name, group in pids.items():
        values = [_proc_cpu(p) for p in group]
        snap[name] = None if not values or None in values else sum(v or 0.0 for v in values)
    return snap


def cpu_percent(cpu0: dict[str, float | None], cpu1: dict[str, float | None], wall: float) -> dict[str, float | None]:
    """% of one core each group used between two snapshots ``wall`` seconds apart (None where unknown)."""
    return {k: (100 * (cpu1[k] - cpu0[k]) / wall if cpu0.get(k) is not None and cpu1.get(k) is not None
                and wall > 0 else None) for k in cpu0}


def _broker_state_dir(work: Path) -> None:
    """Let a root-started Mosquitto write its state (see the note in bench/README.md).

    Started as root, Mosquitto drops privileges to the ``mosquitto`` user, which cannot write into a
    root-owned 0700 temp dir: persistence and the log then fail silently ("Permission denied" on
    stderr only). Pre-create the state dir PrivateBroker uses, owned by that user.
    """
    state = work / "mosquitto"
    state.mkdir(exist_ok=True)
    if os.geteuid() != 0:
        return
    try:
        user = pwd.getpwnam("mosquitto")
    except KeyError:
        return
    work.chmod(0o711)
    os.chown(state, user.pw_uid, user.pw_gid)


def _mosquitto() -> str:
    found = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if found is None:
        raise RuntimeError("mosquitto is not installed (sudo apt-get install -y mosquitto)")
    return found


def _start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        log("py-spy not found (pip install py-spy into the venv); not profiling")
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    errlog = (out.with_suffix(".log")).open("wb")
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        [exe, "record", "--pid", str(pid), "--rate", "100", "--format", "raw", "--threads", "--nonblocking",
         "--output", str(out)], stdin=subprocess.DEVNULL, stdout=errlog, stderr=errlog,
    )
    errlog.close()
    log(f"py-spy recording pid {pid} to {out}")
    return proc


def _stop_py_spy(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def window_rates(points: list[tuple[float, int]], total: int, mark: int) -> dict[str, float | None]:
    """Rates from (time, cumulative count) points: from the warm-up mark, and from the first point."""
    t_end = next(t for t, c in points if c >= total)
    t_mark, c_mark = next((t, c) for t, c in points if c >= mark)
    t_first, c_first = points[0]
    return {"t_first": t_first, "t_mark": t_mark, "t_end": t_end, "window_messages": total - c_mark,
            "window_seconds": t_end - t_mark,
            "rate": (total - c_mark) / (t_end - t_mark) if t_end > t_mark else None,
            "rate_from_first": (total - c_first) / (t_end - t_first) if t_end > t_first else None}


@dataclass
class Settings:
    agents: int
    per_agent: int
    procs: int
    inflight: int
    batch_max: int
    warmup: float
    workdir: str | None
    py_spy: Path | None

    @property
    def total(self) -> int:
        return self.agents * self.per_agent


def run_phase(phase: str, cfg: Settings, deadline: float, pg: Any) -> dict[str, Any]:
    """One phase: fresh broker, consumer, publishers, go, wait for the total; always cleaned up."""
    from controller.broker import PrivateBroker, free_port

    total, mark = cfg.total, warm_mark(cfg.total, cfg.warmup)
    devices = fleet(cfg.agents)
    schools = sorted({s for s, _ in devices})
    work = Path(tempfile.mkdtemp(prefix=f"cf-bench-{phase}-", dir=cfg.workdir))
    ctx = mp.get_context("spawn")
    results, go, stop = ctx.Queue(), ctx.Event(), ctx.Event()
    procs: list[Any] = []
    broker = None
    spy = None
    url: str | None = None
    child_deadline = deadline + 20  # children give up on their own if the parent vanished
    out: dict[str, Any] = {"phase": phase, "total": total}
    try:
        _broker_state_dir(work)
        broker = PrivateBroker(work, free_port(), binary=_mosquitto())
        broker.start()
        if phase == "sqlite":
            url = f"sqlite:///{work / 'classfleet.db'}"
        elif phase == "postgresql":
            url = pg.create_database()
        job = ConsumerJob(phase, broker.port, total, mark, cfg.batch_max, url, schools, child_deadline)
        target = ceiling_main if phase == "ceiling" else ingest_main
        consumer = ctx.Process(target=target, args=(job, results, stop), name=f"{phase}-consumer", daemon=True)
        consumer.start()
        procs.append(consumer)
        inbox = Inbox(results, procs)
        ready = inbox.wait(lambda m: m[:2] == ("ready", "consumer"), 1, deadline, "the consumer to subscribe")
        db_pid = ready[0][2]["db_pid"]
        chunks = [devices[i :: cfg.procs] for i in range(cfg.procs)]
        for i, chunk in enumerate(chunks):
            pjob = PubJob(i, broker.port, chunk, cfg.per_agent, cfg.inflight, f"bench-{phase}", child_deadline)
            p = ctx.Process(target=publisher_main, args=(pjob, results, go, stop), name=f"publishers-{i}", daemon=True)
            p.start()
            procs.append(p)
        t_conn = time.monotonic()
        inbox.wait(lambda m: m[0] == "ready" and m[1].startswith("publishers"), cfg.procs, deadline,
                   f"{cfg.agents} publisher connections")
        log(f"{phase}: {cfg.agents} agents connected in {time.monotonic() - t_conn:.1f}s; publishing {total:,}")
        if cfg.py_spy is not None and phase != "ceiling":
            spy = _start_py_spy(consumer.pid, cfg.py_spy / f"ingest-{phase}.txt")
            time.sleep(1.0)
        broker_pid = getattr(getattr(broker, "_proc", None), "pid", None)
        pids = {"consumer": [consumer.pid], "broker": [broker_pid], "publishers": [p.pid for p in procs[1:]],
                "db_server": [db_pid] if db_pid else []}
        cpu0 = _cpu_snapshot(pids)
        t_go = time.monotonic()
        go.set()
        consumer_msg = inbox.wait(lambda m: m[0] == "consumer", 1, deadline, f"{total:,} messages at the consumer")
        t_seen = time.monotonic()
        cpu1 = _cpu_snapshot(pids)
        published = inbox.wait(lambda m: m[0] == "published", cfg.procs, deadline, "the publishers to finish")
        _stop_py_spy(spy)
        res = consumer_msg[0][2]
        stop.set()
        extra = inbox.wait(lambda m: m[0] == "extra", 1, min(deadline, time.monotonic() + 15), "final counts")
        out.update(_summarise(phase, cfg, res, [m[2] for m in published], extra[0][2], t_go, t_seen, cpu0, cpu1))
        return out
    finally:
        stop.set()
        _stop_py_spy(spy)
        end = time.monotonic() + 10
        for p in procs:
            p.join(max(0.1, end - time.monotonic()))
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(3)
            if p.is_alive():
                p.kill()
                p.join(3)
        results.close()
        results.cancel_join_thread()
        if broker is not None:
            broker.stop()
        if url is not None and phase == "postgresql":
            try:
                pg.drop_database(url)
            except Exception as exc:  # report, keep cleaning up
                log(f"could not drop {url}: {exc}")
        shutil.rmtree(work, ignore_errors=True)


def _summarise(phase: str, cfg: Settings, res: dict[str, Any], published: list[dict[str, Any]],
               extra: dict[str, Any], t_go: float, t_seen: float, cpu0: dict[str, float | None],
               cpu1: dict[str, float | None]) -> dict[str, Any]:
    total, mark = cfg.total, warm_mark(cfg.total, cfg.warmup)
    out: dict[str, Any] = {"status": res["status"], "received": res["received"]}
    problems: list[str] = []
    if res["status"] != "ok":
        problems.append(f"consumer {res['status']} at {res['received']:,} of {total:,}")
    acked = sum(p["acked"] for p in published)
    failed = sum(p["failed_acks"] for p in published)
    if acked != total or failed:
        problems.append(f"publishers: {acked:,} acknowledged, {failed} with a failure reason")
    pub_done = max(p["t_done"] for p in published)
    pub_start = min(p["t_start"] for p in published)
    out["publish_seconds"] = pub_done - pub_start
    out["publish_rate"] = total / out["publish_seconds"] if out["publish_seconds"] > 0 else None
    out["publishers_cpu_s"] = sum(p["cpu_s"] for p in published)
    if res["status"] == "ok":
        out.update(window_rates(res["points"], total, mark))
        out["drain_after_publishers_s"] = max(0.0, out["t_end"] - pub_done)
        out["first_after_go_s"] = out["t_first"] - t_go
        if res.get("cpu_mark") is not None and res.get("cpu_end") is not None and out["window_seconds"] > 0:
            out["consumer_cpu_window_pct"] = 100 * (res["cpu_end"] - res["cpu_mark"]) / out["window_seconds"]
        for k in ("t_first", "t_mark", "t_end"):
            out.pop(k)
    out["cpu_pct_go_to_end"] = cpu_percent(cpu0, cpu1, t_seen - t_go)
    ours = sum(v for k, v in out["cpu_pct_go_to_end"].items() if k != "machine" and v is not None)
    machine = out["cpu_pct_go_to_end"].get("machine")
    out["cpu_pct_go_to_end"]["rest_of_machine"] = max(0.0, machine - ours) if machine is not None else None
    if phase == "ceiling":
        if extra["received_after"] != total:
            problems.append(f"subscriber received {extra['received_after']:,} messages (expected {total:,})")
    else:
        sizes = res["sizes"]
        out["rows"] = res["rows"]
        out["rows_after_settle"] = extra["rows_after"]
        out["batches"] = len(sizes)
        out["mean_batch"] = sum(sizes) / len(sizes) if sizes else None
        # batches committed after the warm-up mark, i.e. inside the measured window
        at_mark = next((i for i, (_, c) in enumerate(res["points"]) if c >= mark), len(sizes))
        window = sizes[at_mark + 1 :]
        out["mean_batch_window"] = sum(window) / len(window) if window else None
        out["full_batches_pct"] = 100 * sum(1 for s in sizes if s >= cfg.batch_max) / len(sizes) if sizes else None
        out["mean_commit_ms"] = res["commit_mean_s"] * 1000 if res["commit_mean_s"] is not None else None
        out["duplicates"] = res["duplicates"]
        out["rejected"] = res["rejected"]
        out["registered_devices"] = res["registered"]
        out["commit_failures"] = res["commit_failures"]
        if res["rows"] != total or extra["rows_after"] != total:
            problems.append(f"observations table holds {res['rows']:,} rows ({extra['rows_after']:,} after "
                            f"settling), expected exactly {total:,}")
        if res["rejected"]:
            problems.append(f"{res['rejected']} messages dead-lettered")
    out["problems"] = problems
    return out


@contextlib.contextmanager
def pg_server(admin_url: str | None) -> Iterator[Any]:
    from tests.fixtures.services import PostgresServer, postgres

    if admin_url:
        yield PostgresServer(admin_url)
    else:
        with postgres() as server:
            yield server


# --------------------------------------------------------------------------------------------
# Output


def _fmt(v: Any, spec: str = ",.0f", none: str = "-") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return none
    return format(v, spec)


def render(report: dict[str, Any]) -> str:
    cfg = report["config"]
    rows = report["phases"]
    ceiling = next((r.get("rate") for r in rows if r["phase"] == "ceiling" and r.get("rate")), None)
    lines = [
        f"classfleet ingest benchmark: {cfg['agents']:,} agents x {cfg['per_agent']:,} heartbeats = "
        f"{cfg['total']:,} QoS 1 messages per phase",
        f"publishers: {cfg['procs']} processes, {cfg['inflight']} in flight per client; batch_max "
        f"{cfg['batch_max']}; rate measured from {cfg['warmup']:.0%} to 100% of the total",
        f"machine: {cfg['cpus']} CPUs, load average before the run {cfg['loadavg']}",
        "",
        f"{'phase':<11} {'messages':>9} {'measured':>9} {'seconds':>8} {'msg/s':>8} {'vs ceiling':>10}"
        f"   {'from first':>10} {'publish':>8} {'batches':>7} {'mean batch':>10} {'commit ms':>9}",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['phase']:<11} ERROR: {r['error'].splitlines()[0] if r['error'] else ''}")
            continue
        ratio = r.get("rate") / ceiling if ceiling and r.get("rate") else None
        if r["phase"] == "ceiling":
            ratio = 1.0 if r.get("rate") else None
        done = r.get("rows", r.get("received"))
        lines.append(
            f"{r['phase']:<11} {_fmt(done):>9} {_fmt(r.get('window_messages')):>9} "
            f"{_fmt(r.get('window_seconds'), '.2f'):>8} {_fmt(r.get('rate')):>8} {_fmt(ratio, '.2f'):>10}"
            f"   {_fmt(r.get('rate_from_first')):>10} {_fmt(r.get('publish_rate')):>8} {_fmt(r.get('batches')):>7} "
            f"{_fmt(r.get('mean_batch'), '.0f'):>10} {_fmt(r.get('mean_commit_ms'), '.1f'):>9}"
        )
    lines += [
        "",
        "messages: verified total (rows in observations for the databases); measured/seconds/msg/s: the",
        "measured window; from first: msg/s from the first message/commit; publish: msg/s the publishers",
        "had acknowledged by the broker; commit ms: mean BatchWriter.write time per batch.",
        "",
        f"{'CPU, % of one core':<19} {'consumer':>9} {'in window':>9} {'broker':>7} {'publishers':>10} "
        f"{'db server':>9} {'rest':>5}  {'drain after publishers s':>24}",
    ]
    for r in rows:
        if "error" in r:
            continue
        cpu = r.get("cpu_pct_go_to_end", {})
        lines.append(
            f"{r['phase']:<19} {_fmt(cpu.get('consumer')):>9} {_fmt(r.get('consumer_cpu_window_pct')):>9} "
            f"{_fmt(cpu.get('broker')):>7} {_fmt(cpu.get('publishers')):>10} {_fmt(cpu.get('db_server')):>9} "
            f"{_fmt(cpu.get('rest_of_machine')):>5}  {_fmt(r.get('drain_after_publishers_s'), '.2f'):>24}"
        )
    lines += [
        "CPU from go to the last message: consumer = the measured process (in window: its own CPU",
        "between the 10% mark and the end); db server = its PostgreSQL backend; rest = everything",
        "else on the machine (other processes, kernel networking). Drain: how long the consumer kept",
        "working after the publishers had all their messages acknowledged by the broker.",
    ]
    problems = [f"{r['phase']}: {p}" for r in rows for p in r.get("problems", [])]
    problems += [f"{r['phase']}: {r['error']}" for r in rows if "error" in r]
    done = {r["phase"] for r in rows}
    problems += [f"{p}: not run" for p in cfg["phases"] if p not in done]
    lines.append("")
    lines += [f"PROBLEM {p}" for p in problems] or ["all phases complete; counts verified"]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def load_parser(doc: str) -> argparse.ArgumentParser:
    """A parser with the publisher load's options (agents, per agent, processes, in flight, warm-up), which
    bench/scale_out.py shares."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--agents", type=int, default=1000, help="simulated agents (one MQTT connection each)")
    ap.add_argument("--per-agent", type=int, default=100, help="heartbeats each agent publishes")
    ap.add_argument("--procs", type=int, default=2, help="publisher processes")
    ap.add_argument("--inflight", type=int, default=20, help="unacknowledged QoS 1 messages per client")
    ap.add_argument("--warmup", type=float, default=0.1, help="share of the total excluded as warm-up")
    return ap


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = load_parser(__doc__)
    ap.add_argument("--phases", default=",".join(PHASES), help="comma-separated, from: " + ", ".join(PHASES))
    ap.add_argument("--batch-max", type=int, default=500, help="IngestService batch_max")
    ap.add_argument("--pg-url", default=None,
                    help="PostgreSQL admin URL to create a throwaway database in (default: "
                         "tests.fixtures.services.postgres(): one on 127.0.0.1:5432, or a temporary cluster)")
    ap.add_argument("--workdir", default=None, help="where the temp dirs (broker state, SQLite file) go")
    ap.add_argument("--timeout", type=float, default=600, help="overall limit in seconds")
    ap.add_argument("--py-spy", type=Path, default=None, metavar="DIR",
                    help="record the ingest process with py-spy (raw collapsed stacks) into DIR")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = ap.parse_args(argv)
    args.phase_list = [p.strip() for p in args.phases.split(",") if p.strip()]
    bad = [p for p in args.phase_list if p not in PHASES]
    if bad or not args.phase_list:
        ap.error(f"unknown phase(s) {bad}; choose from {', '.join(PHASES)}")
    if args.agents < 1 or args.per_agent < 1 or args.procs < 1 or args.inflight < 1 or args.batch_max < 1:
        ap.error("--agents, --per-agent, --procs, --inflight and --batch-max must be positive")
    args.procs = min(args.procs, args.agents)
    if not 0 <= args.warmup < 1:
        ap.error("--warmup must be in [0, 1)")
    return args


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def prepare_parent(agents: int) -> None:
    """Clean up on Ctrl+C, kill or a closed terminal, and let the broker hold every agent's connection."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * agents + 1024  # the broker (inherits this) holds every connection
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    prepare_parent(args.agents)
    cfg = Settings(args.agents, args.per_agent, args.procs, args.inflight, args.batch_max, args.warmup,
                   args.workdir, args.py_spy)
    deadline = time.monotonic() + args.timeout
    report: dict[str, Any] = {
        "config": {"agents": cfg.agents, "per_agent": cfg.per_agent, "total": cfg.total, "procs": cfg.procs,
                   "inflight": cfg.inflight, "batch_max": cfg.batch_max, "warmup": cfg.warmup,
                   "phases": args.phase_list, "cpus": os.cpu_count(),
                   "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()), "python": sys.version.split()[0]},
        "phases": [],
    }
    code = 0
    try:
        with contextlib.ExitStack() as stack:
            pg = None
            for phase in args.phase_list:
                log(f"phase {phase}: start")
                try:
                    if phase == "postgresql" and pg is None:
                        pg = stack.enter_context(pg_server(args.pg_url))
                    result = run_phase(phase, cfg, deadline, pg)
                except TimeoutError as exc:
                    report["phases"].append({"phase": phase, "error": f"overall --timeout reached: {exc}"})
                    code = 1
                    break
                except Exception as exc:
                    report["phases"].append({"phase": phase, "error": f"{type(exc).__name__}: {exc}"})
                    log(f"phase {phase} failed: {exc}")
                    code = 1
                    continue
                report["phases"].append(result)
                if result["problems"]:
                    code = 1
                log(f"phase {phase}: {_fmt(result.get('rate'))} msg/s")
    except KeyboardInterrupt:
        log("interrupted; everything stopped")
        return 130
    ceiling = next((r.get("rate") for r in report["phases"] if r["phase"] == "ceiling" and r.get("rate")), None)
    for r in report["phases"]:
        r["ratio_to_ceiling"] = r["rate"] / ceiling if ceiling and r.get("rate") else None
    print(json.dumps(report, indent=2) if args.json else render(report), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
