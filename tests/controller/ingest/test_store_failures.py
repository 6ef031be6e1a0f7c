"""When the store fails: transient errors are retried without acknowledging; a message the store
refuses is isolated by bisection and dead-lettered, and every other message is committed. When the
writer itself fails (a bug), ingest does not stall: the broker delivers the batch again."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from controller.ingest.service import BrokerAddress, IngestService
from controller.metrics import IngestMetrics
from controller.store import db
from controller.store.models import DeadLetter, Observation
from controller.store.writer import BatchWriter
from tests.helpers import add_school, count, heartbeat, publish_all, publisher, wait_for

pytestmark = pytest.mark.integration


class FlakyWriter(BatchWriter):
    """A real writer that fails the first ``outages`` commits as if the database were down,
    and refuses any batch holding a message of device ``poison``."""

    def __init__(self, engine, outages: int = 0) -> None:
        super().__init__(engine)
        self.outages = outages
        self.calls = 0

    def write(self, accepted, rejected):
        self.calls += 1
        if self.outages > 0:
            self.outages -= 1
            raise sa_exc.OperationalError("INSERT", {}, Exception("connection refused"))
        if any(a.message.device == "poison" for a in accepted):
            raise sa_exc.DataError("INSERT", {}, Exception("value out of range"))
        return super().write(accepted, rejected)


def _service(engine, port, writer):
    metrics = IngestMetrics(CollectorRegistry())
    service = IngestService(BrokerAddress("127.0.0.1", port), writer, metrics, client_id="flaky",
                            batch_interval_s=0.2)
    service.start()
    assert service.wait_connected(10)
    return service, metrics


def test_refused_message_is_dead_lettered_and_the_rest_committed(sqlite_url, broker):
    engine = db.make_engine(sqlite_url)
    add_school(engine, "s1")
    service, metrics = _service(engine, broker.port, FlakyWriter(engine))
    try:
        client = publisher(broker.port, "p")
        msgs = [(f"classfleet/v1/s1/pc-{i}/heartbeat", heartbeat(1, 1)) for i in range(30)]
        msgs.insert(17, ("classfleet/v1/s1/poison/heartbeat", heartbeat(1, 1)))
        publish_all(client, msgs)
        wait_for(lambda: count(engine, Observation) == 30 and count(engine, DeadLetter) == 1,
                 what="30 stored, 1 dead letter")
        with engine.connect() as conn:
            dead = conn.execute(select(DeadLetter)).one()
        assert dead.reason == "store_rejected" and "poison" in dead.topic and "DataError" in dead.detail
        assert b'"session": 1' in dead.payload  # the original bytes are kept
        assert metrics.rejected.labels("store_rejected")._value.get() == 1
        client.disconnect()
    finally:
        service.stop()
        engine.dispose()


def test_store_outage_is_retried_and_nothing_is_acknowledged_before_commit(sqlite_url, broker):
    engine = db.make_engine(sqlite_url)
    add_school(engine, "s1")
    writer = FlakyWriter(engine, outages=3)
    service, metrics = _service(engine, broker.port, writer)
    try:
        client = publisher(broker.port, "p")
        publish_all(client, [("classfleet/v1/s1/pc-1/heartbeat", heartbeat(1, s)) for s in range(1, 21)])
        wait_for(lambda: count(engine, Observation) == 20, timeout=30, what="all 20 after the outage")
        assert metrics.commit_failures._value.get() == 3
        assert count(engine, DeadLetter) == 0
        client.disconnect()
    finally:
        service.stop()
        engine.dispose()


def test_a_writer_bug_on_one_batch_neither_stalls_ingest_nor_loses_the_batch(sqlite_url, broker, monkeypatch):
    """The batch's messages were committed but never acknowledged: without a reconnect they would hold the
    connection's window (receive maximum) for ever and the broker would send this replica nothing more."""
    engine = db.make_engine(sqlite_url)
    add_school(engine, "s1")
    record = IngestMetrics.record
    failures = [1]

    def record_failing_once(self, outcome):
        if failures[0]:
            failures[0] -= 1
            raise RuntimeError("a bug after the commit, before the acknowledgements")
        return record(self, outcome)

    monkeypatch.setattr(IngestMetrics, "record", record_failing_once)
    service, metrics = _service(engine, broker.port, BatchWriter(engine))
    try:
        client = publisher(broker.port, "p")
        total = 3 * service.receive_maximum  # well past one window: a stalled writer would never get them
        publish_all(client, [(f"classfleet/v1/s1/pc-{i % 50}/heartbeat", heartbeat(1, 1 + i // 50))
                             for i in range(total)])
        wait_for(lambda: count(engine, Observation) == total, timeout=60, what="every message after the bug")
        assert metrics.writer_errors._value.get() == 1
        assert metrics.duplicates._value.get() >= 1  # the failed batch came again and was recognised
        publish_all(client, [("classfleet/v1/s1/pc-0/heartbeat", heartbeat(1, 10_000))])
        wait_for(lambda: count(engine, Observation) == total + 1, what="ingest goes on")
        client.disconnect()
    finally:
        service.stop()
        engine.dispose()
