"""Back-pressure and limits: the per-device token bucket, QoS 0 shed from a full queue (QoS 1 never),
and the payload size limit at the broker. Counted exactly: what was sent = what was stored + what
was refused, and the refusals are in the metrics."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from classfleet_wire import MAX_PAYLOAD_BYTES
from controller.config import Settings
from controller.ingest.limits import DeviceRateLimiter, device_key, device_limiter
from controller.ingest.service import BrokerAddress, IngestService
from controller.metrics import IngestMetrics
from controller.store import db
from controller.store.models import DeadLetter, Device, Observation
from controller.store.writer import BatchWriter
from tests.helpers import add_school, count, heartbeat, publish_all, publisher, running_ingest, wait_for

T = "classfleet/v1"


class FakeClock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------------------------ unit


def test_device_key_is_school_and_device_for_every_kind_and_the_topic_otherwise():
    assert device_key(f"{T}/s1/pc-1/heartbeat") == "s1/pc-1"
    assert device_key(f"{T}/s1/pc-1/cmd/ack") == "s1/pc-1"
    assert device_key("tele/plug-7/SENSOR") == "tele/plug-7/SENSOR"


def test_bucket_allows_the_burst_then_the_rate_per_device():
    clock = FakeClock()
    limiter = DeviceRateLimiter(2.0, 5, clock=clock)
    a, b = f"{T}/s1/a/heartbeat", f"{T}/s1/b/event"
    assert [limiter.allow(a) for _ in range(7)] == [True] * 5 + [False] * 2
    assert all(limiter.allow(b) for _ in range(5)), "another device has its own bucket"
    clock.now += 1.0  # two tokens back
    assert [limiter.allow(a) for _ in range(3)] == [True, True, False]
    clock.now += 100.0  # refills to the burst, never beyond
    assert [limiter.allow(a) for _ in range(6)] == [True] * 5 + [False]


def test_table_of_buckets_is_bounded_and_forgets_only_idle_devices():
    clock = FakeClock()
    limiter = DeviceRateLimiter(1.0, 3, max_devices=100, clock=clock)
    for i in range(100):
        limiter.allow(f"{T}/s1/pc-{i}/heartbeat")
    busy = f"{T}/s1/pc-0/heartbeat"
    assert [limiter.allow(busy) for _ in range(3)] == [True, True, False]
    clock.now += 5.0  # every other device has refilled: they are forgotten when room is needed
    for i in range(1000):
        limiter.allow(f"{T}/s2/new-{i}/heartbeat")
        assert len(limiter) <= 100
    limiter = DeviceRateLimiter(0.001, 3, max_devices=10, clock=clock)
    for i in range(50):  # all busy: the table is cleared rather than grown
        for _ in range(3):
            limiter.allow(f"{T}/s1/pc-{i}/heartbeat")
        assert len(limiter) <= 10


def test_settings_build_the_limiter_or_none():
    assert device_limiter(Settings(ingest_device_rate_per_s=0)) is None
    limiter = device_limiter(Settings(ingest_device_rate_per_s=5, ingest_device_burst=50))
    assert limiter is not None and limiter.rate_per_s == 5 and limiter.burst == 50


# ------------------------------------------------------------------------------------------------ integration


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_flooding_device_is_capped_while_every_other_device_flows(sqlite_url, broker):
    rate, burst, flood_n, others, per_other = 20.0, 200, 5000, 20, 50
    with running_ingest(sqlite_url, broker.port, limiter=DeviceRateLimiter(rate, burst)) as (_, engine, metrics):
        add_school(engine, "s1")
        flooder = publisher(broker.port, "flooder")
        good = [publisher(broker.port, f"good-{i}") for i in range(others)]
        started = time.monotonic()
        flood = threading.Thread(target=publish_all, args=(flooder, [
            (f"{T}/s1/pc-flood/heartbeat", heartbeat(1, seq)) for seq in range(1, flood_n + 1)]))
        flood.start()
        senders = [threading.Thread(target=publish_all, args=(good[i], [
            (f"{T}/s1/pc-{i:02d}/heartbeat", heartbeat(1, seq)) for seq in range(1, per_other + 1)]))
            for i in range(others)]
        for t in senders:
            t.start()
        for t in [flood, *senders]:
            t.join(120)
        sent_s = time.monotonic() - started
        total = flood_n + others * per_other
        wait_for(lambda: count(engine, Observation) + count(engine, DeadLetter) >= total, timeout=120,
                 what=f"{total} messages stored or dead-lettered")
        elapsed = time.monotonic() - started
        with engine.connect() as conn:
            flood_id = conn.scalar(select(Device.id).where(Device.uid == "pc-flood"))
        stored_flood = count(engine, Observation, Observation.device_id == flood_id)
        limited = count(engine, DeadLetter, DeadLetter.reason == "rate_limited")
        assert count(engine, Observation) - stored_flood == others * per_other, "another device lost a message"
        assert count(engine, DeadLetter) == limited == flood_n - stored_flood
        assert burst <= stored_flood <= burst + rate * elapsed + 1, (stored_flood, elapsed)
        assert limited >= flood_n - burst - rate * elapsed - 1
        assert metrics.shed.labels("rate_limited")._value.get() == limited
        assert metrics.rejected.labels("rate_limited")._value.get() == limited
        assert metrics.shed.labels("queue_full")._value.get() == 0
        assert elapsed < 90, f"{total} messages took {elapsed:.0f} s (sent in {sent_s:.0f} s)"
        for c in (flooder, *good):
            c.disconnect()


class GatedWriter(BatchWriter):
    """The real writer behind a gate: a database that does not answer until the test opens it."""

    def __init__(self, engine, gate: threading.Event) -> None:
        super().__init__(engine)
        self.gate = gate

    def write(self, accepted, rejected):
        self.gate.wait(120)
        return super().write(accepted, rejected)


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_full_queue_sheds_qos0_and_counts_it_but_never_sheds_qos1(sqlite_url, broker):
    engine = db.make_engine(sqlite_url)
    add_school(engine, "s1")
    gate = threading.Event()
    registry_metrics = IngestMetrics(CollectorRegistry())
    queue_max, batch_max, qos0_n, qos1_n = 50, 100, 2000, 300
    service = IngestService(BrokerAddress("127.0.0.1", broker.port), GatedWriter(engine, gate), registry_metrics,
                            client_id="gated", batch_max=batch_max, queue_max=queue_max)
    depths: list[int] = []
    watching = threading.Event()

    def watch() -> None:  # the queue depth gauge, sampled the way Prometheus would read it
        while not watching.is_set():
            depths.append(int(registry_metrics._queue_depth._value.get()))
            time.sleep(0.01)

    service.start()
    assert service.wait_connected(10)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    shed = registry_metrics.shed.labels("queue_full")
    try:
        fast, careful = publisher(broker.port, "qos0"), publisher(broker.port, "qos1")
        publish_all(fast, [(f"{T}/s1/pc-0/heartbeat", heartbeat(1, seq)) for seq in range(1, qos0_n + 1)], qos=0)
        qos1 = threading.Thread(target=publish_all, args=(careful, [
            (f"{T}/s1/pc-1/heartbeat", heartbeat(1, seq)) for seq in range(1, qos1_n + 1)]))
        qos1.start()
        qos1.join(60)
        # The store has not answered yet: QoS 0 beyond the queue bound was shed, QoS 1 all waits.
        wait_for(lambda: shed._value.get() >= qos0_n - queue_max - batch_max, timeout=30, what="QoS 0 shed")
        time.sleep(1.0)
        shed_n = int(shed._value.get())
        assert count(engine, Observation) == 0
        gate.set()
        wait_for(lambda: count(engine, Observation) + shed_n >= qos0_n + qos1_n, timeout=60,
                 what="everything not shed is stored")
        time.sleep(0.5)
        with engine.connect() as conn:
            ids = dict(conn.execute(select(Device.uid, Device.id)).all())
        stored0 = count(engine, Observation, Observation.device_id == ids["pc-0"])
        assert stored0 + shed_n == qos0_n, "a QoS 0 message was neither stored nor counted as shed"
        assert count(engine, Observation, Observation.device_id == ids["pc-1"]) == qos1_n, "QoS 1 was shed"
        assert shed._value.get() == shed_n and registry_metrics.shed.labels("rate_limited")._value.get() == 0
        assert max(depths) <= queue_max + service.receive_maximum, max(depths)
        fast.disconnect()
        careful.disconnect()
    finally:
        gate.set()
        watching.set()
        service.stop()
        engine.dispose()


@pytest.mark.integration
def test_broker_refuses_a_payload_far_over_the_wire_limit_and_others_flow(sqlite_url, broker):
    with running_ingest(sqlite_url, broker.port) as (_, engine, metrics):
        add_school(engine, "s1")
        rogue, client = publisher(broker.port, "rogue"), publisher(broker.port, "honest")
        dropped = threading.Event()
        rogue.on_disconnect = lambda *_: dropped.set()
        rogue.publish(f"{T}/s1/pc-1/heartbeat", b'{"v":1,"pad":"' + b"x" * (1024 * 1024) + b'"}', qos=1)
        assert dropped.wait(10), "the broker took a 1 MiB payload"
        rogue.loop_stop()  # paho would resend it on every reconnect, and be dropped every time
        publish_all(client, [(f"{T}/s1/pc-2/heartbeat", b'{"v":1,"pad":"' + b"x" * MAX_PAYLOAD_BYTES + b'"}'),
                             (f"{T}/s1/pc-3/heartbeat", heartbeat(1, 1))])
        wait_for(lambda: count(engine, Observation) == 1 and count(engine, DeadLetter) == 1,
                 what="the good heartbeat stored, the slightly oversized one dead-lettered")
        time.sleep(0.5)
        with engine.connect() as conn:
            dead = conn.execute(select(DeadLetter)).one()
        assert dead.reason == "oversized" and "pc-2" in dead.topic
        assert count(engine, DeadLetter) == 1 and metrics.rejected.labels("oversized")._value.get() == 1
        assert count(engine, Device) == 1  # pc-1's message never reached the controller
        client.disconnect()
