"""A misbehaving agent flooding malformed messages does not hold up other devices' heartbeats."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from controller.store.models import DeadLetter, Device, Observation
from tests.helpers import add_school, count, heartbeat, publish_all, publisher, running_ingest, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_ten_thousand_malformed_messages_do_not_delay_others_by_5_seconds(sqlite_url, broker):
    with running_ingest(sqlite_url, broker.port) as (_, engine, metrics):
        add_school(engine, "s1")
        flood, good = publisher(broker.port, "flooder"), publisher(broker.port, "good")
        published: dict[int, float] = {}
        appeared: dict[int, float] = {}
        stop = threading.Event()

        def watch() -> None:  # when each good heartbeat became visible in the store
            while not stop.is_set():
                with engine.connect() as conn:
                    top = conn.scalar(select(func.max(Observation.seq)).join(Device, Device.id == Observation.device_id)
                                      .where(Device.uid == "pc-good")) or 0
                now = time.monotonic()
                for seq in range(1, top + 1):
                    appeared.setdefault(seq, now)
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        junk = [("classfleet/v1/s1/pc-bad/heartbeat", b'{"v":1,"session":1,"seq":"x' + str(i).encode())
                for i in range(10_000)]
        sender = threading.Thread(target=publish_all, args=(flood, junk))
        sender.start()
        for seq in range(1, 41):
            published[seq] = time.monotonic()
            publish_all(good, [("classfleet/v1/s1/pc-good/heartbeat", heartbeat(1, seq))])
            time.sleep(0.1)
        sender.join(120)
        wait_for(lambda: count(engine, DeadLetter) >= 10_000, timeout=120, what="10,000 dead letters")
        wait_for(lambda: len(appeared) >= 40, timeout=30, what="every good heartbeat")
        stop.set()
        watcher.join(5)
        delays = [appeared[s] - published[s] for s in published]
        assert max(delays) < 5.0, f"worst delay {max(delays):.2f} s"
        assert count(engine, DeadLetter) == 10_000 and count(engine, Observation) == 40
        assert metrics.rejected.labels("invalid_json")._value.get() == 10_000
        flood.disconnect()
        good.disconnect()
