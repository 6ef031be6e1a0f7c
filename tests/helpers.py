"""Test helpers: waiting on conditions, publishing with real paho clients, running ingest in-process."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, func, select

from classfleet_wire import decode
from controller.ingest.service import BrokerAddress, IngestService
from controller.metrics import IngestMetrics
from controller.store import db
from controller.store.models import Incident, School
from controller.store.writer import Accepted, BatchWriter


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = "") -> Any:
    """Poll ``predicate`` until truthy; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate} (last: {last!r})")


def count(engine: Engine, model: Any, *where: Any) -> int:
    """SELECT count(*) with optional conditions."""
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def open_incidents(engine: Engine) -> set[tuple[int, str]]:
    """(device id, code) of every incident not resolved."""
    with engine.connect() as conn:
        return {(r.device_id, r.code) for r in conn.execute(
            select(Incident.device_id, Incident.code).where(Incident.state != "resolved"))}


def write_online_pcs(engine: Engine, school: str, count: int, now: Any) -> None:
    """``pc-0``… ``pc-<count-1>`` of ``school`` come online with one heartbeat each, written straight to the store."""
    items = []
    for i in range(count):
        topic = f"classfleet/v1/{school}/pc-{i}"
        items += [Accepted(decode(f"{topic}/status", status("online", 1)), now),
                  Accepted(decode(f"{topic}/heartbeat", heartbeat(1, 1)), now)]
    BatchWriter(engine).write(items, [])


def add_school(engine: Engine, school_id: str, name: str = "Test school") -> None:
    """Register a school so ingest accepts its messages."""
    with engine.begin() as conn:
        conn.execute(School.__table__.insert().values(id=school_id, name=name, timezone="Asia/Ho_Chi_Minh",
                                                      hours_start="07:00", hours_end="17:00"))


def publisher(port: int, client_id: str = "", host: str = "127.0.0.1") -> mqtt.Client:
    """A connected paho MQTT 5 client with its network loop running."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.connect(host, port)
    client.loop_start()
    return client


def publish_all(client: mqtt.Client, messages: list[tuple[str, bytes | str]], qos: int = 1,
                retain: bool = False, timeout: float = 60) -> None:
    """Publish and wait until the broker acknowledged every message."""
    infos = [client.publish(topic, payload, qos=qos, retain=retain) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(timeout)


def heartbeat(session: int, seq: int, ts: float | None = None, replayed: bool = False, **extra: Any) -> bytes:
    """A valid heartbeat payload."""
    body = {"v": 1, "session": session, "seq": seq, "ts": ts or time.time(), "replayed": replayed,
            "uptime_s": 100.0, "cpu_pct": 12.5, "mem_pct": 40.0,
            "disk": [{"mount": "/", "total_bytes": 10**11, "used_pct": 50.0}], **extra}
    return json.dumps(body).encode()


def status(state: str, session: int) -> bytes:
    """A status payload: online with details, or the offline Last Will."""
    body: dict[str, Any] = {"v": 1, "state": state, "session": session}
    if state == "online":
        body.update(ts=time.time(), agent="test", profile="pc")
    return json.dumps(body).encode()


def event(session: int, seq: int, code: str = "disk.low", state: str = "raised") -> bytes:
    """An event payload."""
    return json.dumps({"v": 1, "session": session, "seq": seq, "ts": time.time(), "code": code,
                       "severity": "warning", "state": state, "detail": {"value": 93.0}}).encode()


@contextlib.contextmanager
def running_ingest(url: str, port: int, client_id: str = "test-controller",
                   foreign: Callable[[Engine], Any] | None = None,
                   **kwargs: Any) -> Iterator[tuple[IngestService, Engine, IngestMetrics]]:
    """An in-process ingest service (real broker, real database), stopped afterwards; ``foreign`` builds the
    handler of foreign topics (e.g. the plug adapters' ``PlugIngest``) on the service's engine."""
    engine = db.make_engine(url)
    metrics = IngestMetrics(CollectorRegistry())
    if foreign is not None:
        kwargs["foreign"] = foreign(engine)
    service = IngestService(BrokerAddress("127.0.0.1", port), BatchWriter(engine), metrics,
                            client_id=client_id, **kwargs)
    service.start()
    assert service.wait_connected(10), "ingest did not connect to the broker"
    try:
        yield service, engine, metrics
    finally:
        service.stop()
        engine.dispose()


@contextlib.contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port in a thread; yields its base URL."""
    import threading

    import uvicorn

    from controller.broker import free_port, wait_for_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_for_port(port, timeout=10), "API server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT, timeout: float = 30) -> bytes:
    """Stop a process we started, politely first; returns what it printed (when piped)."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
    return out or b""


def make_app(engine: Engine, data_dir: Any) -> Any:
    """The controller's app on ``engine`` (auth on, its own metrics registry), its data in ``data_dir``."""
    from controller.api.app import create_app
    from controller.config import Settings
    from controller.metrics import build_registry

    registry, _ = build_registry(engine, 180)
    return create_app(Settings(data_dir=data_dir), engine, registry)


def make_user(engine: Engine, username: str, role: str, *, schools: tuple[str, ...] = (),
              all_schools: bool = False, district: str | None = None) -> dict[str, str]:
    """Create a user with an API token; returns the Authorization header for it."""
    from sqlalchemy.orm import Session

    from controller.auth import create_token, create_user

    with Session(engine) as session, session.begin():
        user = create_user(session, username, "correct horse battery", role, schools=list(schools),
                           all_schools=all_schools, district=district)
        token = create_token(session, user, "tests")
    return {"Authorization": f"Bearer {token}"}
