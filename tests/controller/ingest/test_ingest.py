"""Ingest against a real Mosquitto and real databases (SQLite and PostgreSQL), counted from the store."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import select

from classfleet_wire import MAX_PAYLOAD_BYTES
from controller.store.models import DeadLetter, Device, DeviceState, Incident, Observation
from tests.helpers import (
    add_school,
    count,
    event,
    heartbeat,
    publish_all,
    publisher,
    running_ingest,
    status,
    wait_for,
)

pytestmark = pytest.mark.integration
T = "classfleet/v1"


def test_ten_thousand_heartbeats_from_100_agents_give_exactly_10000_rows(db_url, broker):
    with running_ingest(db_url, broker.port) as (_, engine, metrics):
        add_school(engine, "school-a")
        clients = [publisher(broker.port, f"agent-{i}") for i in range(100)]

        def send(i: int) -> None:
            msgs = [(f"{T}/school-a/pc-{i:03d}/heartbeat", heartbeat(1, seq)) for seq in range(1, 101)]
            publish_all(clients[i], msgs)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        wait_for(lambda: count(engine, Observation) >= 10_000, timeout=120, what="10,000 observations")
        for c in clients:
            c.disconnect()
            c.loop_stop()
        # Let anything extra (there must be none) arrive before the exact count.
        wait_for(lambda: metrics.messages.labels("heartbeat")._value.get() >= 10_000, timeout=30)
        assert count(engine, Observation) == 10_000
        assert count(engine, Observation, Observation.kind == "heartbeat") == 10_000
        assert count(engine, Device) == 100
        # Unknown devices of a known school are registered unassigned.
        assert count(engine, Device, Device.room_id.is_(None)) == 100
        with engine.connect() as conn:
            seqs = conn.execute(select(DeviceState.session, DeviceState.seq)).all()
        assert set(seqs) == {(1, 100)}


def test_bad_messages_are_dead_lettered_while_others_flow(db_url, broker):
    with running_ingest(db_url, broker.port) as (_, engine, metrics):
        add_school(engine, "school-a")
        client = publisher(broker.port, "mixed")
        good = [(f"{T}/school-a/good-pc/heartbeat", heartbeat(1, seq)) for seq in range(1, 41)]
        bad = [
            (f"{T}/school-a/pc-1/heartbeat", b"{not json"),
            (f"{T}/school-a/pc-2/heartbeat", b'{"v":1,"pad":"' + b"x" * (MAX_PAYLOAD_BYTES + 1000) + b'"}'),
            (f"{T}/school-a/pc-3/heartbeat", heartbeat(1, 1, device="pc-999")),
            (f"{T}/school-a/pc-4/heartbeat", b'{"v":1,"session":1,"seq":1,"note":"\xff\xfe"}'),
            (f"{T}/no-such-school/pc-5/heartbeat", heartbeat(1, 1)),
            (f"{T}/school-a/pc-6/heartbeat", json.dumps({"v": 2, "session": 1, "seq": 1}).encode()),
            (f"{T}/school-a/pc-7/heartbeat", json.dumps({"v": 1, "session": 1, "seq": -5, "ts": 1}).encode()),
        ]
        interleaved = []
        for i, msg in enumerate(good):
            interleaved.append(msg)
            if i % 6 == 0 and bad:
                interleaved.append(bad.pop(0))
        interleaved.extend(bad)
        publish_all(client, interleaved)
        wait_for(lambda: count(engine, DeadLetter) >= 7, what="7 dead letters")
        wait_for(lambda: count(engine, Observation) >= 40, what="40 good heartbeats")
        with engine.connect() as conn:
            rows = {r.topic.split("/")[3]: r for r in conn.execute(select(DeadLetter))}
        assert {k: v.reason for k, v in rows.items()} == {
            "pc-1": "invalid_json", "pc-2": "oversized", "pc-3": "identity_mismatch", "pc-4": "invalid_utf8",
            "pc-5": "unknown_school", "pc-6": "unsupported_version", "pc-7": "schema",
        }
        assert rows["pc-2"].payload_size > MAX_PAYLOAD_BYTES
        assert all(r.detail for r in rows.values())
        assert count(engine, Observation) == 40
        # Nothing of the rejected devices was registered (the unknown school's device least of all).
        assert count(engine, Device) == 1
        assert metrics.rejected.labels("oversized")._value.get() == 1
        assert metrics.rejected.labels("unknown_school")._value.get() == 1
        client.disconnect()


def test_stale_will_does_not_mark_a_live_device_offline(db_url, broker):
    with running_ingest(db_url, broker.port) as (_, engine, _m):
        add_school(engine, "school-a")
        client = publisher(broker.port, "statuses")
        topic = f"{T}/school-a/board-1"
        publish_all(client, [(f"{topic}/status", status("online", 2)), (f"{topic}/heartbeat", heartbeat(2, 1))])
        wait_for(lambda: count(engine, Observation) == 1)
        # The Will of the previous session arrives late: it must be ignored.
        publish_all(client, [(f"{topic}/status", status("offline", 1)), (f"{topic}/heartbeat", heartbeat(2, 2))])
        wait_for(lambda: count(engine, Observation) == 2)
        with engine.connect() as conn:
            st = conn.execute(select(DeviceState)).one()
        assert st.online is True and st.status_session == 2
        # The Will of the current session does mark it offline.
        publish_all(client, [(f"{topic}/status", status("offline", 2)), (f"{topic}/heartbeat", heartbeat(2, 3,
                                                                                                         replayed=True))])
        wait_for(lambda: count(engine, Observation) == 3)
        with engine.connect() as conn:
            st = conn.execute(select(DeviceState)).one()
        assert st.online is False
        client.disconnect()


def test_replayed_messages_fill_history_but_never_move_last_seen_back(db_url, broker):
    with running_ingest(db_url, broker.port) as (_, engine, _m):
        add_school(engine, "school-a")
        client = publisher(broker.port, "replay")
        topic = f"{T}/school-a/pc-1/heartbeat"
        publish_all(client, [(topic, heartbeat(3, 10, cpu_pct=77.0))])
        wait_for(lambda: count(engine, Observation) == 1)
        with engine.connect() as conn:
            before = conn.execute(select(DeviceState)).one()
        publish_all(client, [(topic, heartbeat(3, s, ts=1_700_000_000 + s, replayed=True, cpu_pct=5.0))
                             for s in range(1, 10)])
        wait_for(lambda: count(engine, Observation) == 10)
        with engine.connect() as conn:
            after = conn.execute(select(DeviceState)).one()
        assert after.last_seen == before.last_seen
        assert (after.session, after.seq) == (3, 10)
        assert after.cpu_pct == 77.0  # older heartbeats do not overwrite the newest figures
        client.disconnect()


def test_redelivered_events_are_applied_once(db_url, broker):
    """The same (device, session, seq) twice: one observation, one bump of the incident count."""
    with running_ingest(db_url, broker.port) as (_, engine, metrics):
        add_school(engine, "school-a")
        client = publisher(broker.port, "dupes")
        topic = f"{T}/school-a/pc-1/event"
        msgs = [(topic, event(1, s)) for s in (1, 2, 3)]
        publish_all(client, msgs + msgs)
        wait_for(lambda: metrics.duplicates._value.get() >= 3, what="3 duplicates recognised")
        with engine.connect() as conn:
            incident = conn.execute(select(Incident)).one()
        assert incident.count == 3 and incident.state == "open"
        publish_all(client, [(topic, event(1, 4, state="cleared"))])
        wait_for(lambda: count(engine, Incident, Incident.state == "resolved") == 1)
        client.disconnect()
