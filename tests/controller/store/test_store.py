"""The store on both SQLite and PostgreSQL: migrations, batch writer idempotency, queries, retention."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from classfleet_wire import decode
from controller.store import db, queries
from controller.store.models import (
    DeadLetter,
    Device,
    DeviceInventory,
    DeviceState,
    District,
    EquipmentPlan,
    Incident,
    Observation,
    Room,
    School,
)
from controller.store.writer import Accepted, BatchWriter, Rejected
from tests.helpers import add_school, count, event, heartbeat, status

NOW = dt.datetime.now(dt.UTC)


def _accepted(topic: str, raw: bytes, at: dt.datetime = NOW) -> Accepted:
    return Accepted(decode(topic, raw), at)


def test_migrations_are_at_head_and_match_the_models(db_url):
    engine = db.make_engine(db_url)
    assert db.current_revision(engine) == db.head_revision()
    command.check(db.alembic_config(db_url))  # raises if the models drifted from the migrations
    db.upgrade(db_url)  # idempotent
    engine.dispose()


def test_sqlite_runs_in_wal_mode(sqlite_url):
    engine = db.make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_inventory_hierarchy_and_uniqueness(db_url):
    engine = db.make_engine(db_url)
    with Session(engine) as session, session.begin():
        session.add(District(id="d1", name="Phòng GD&ĐT Quận 1"))
        session.add(School(id="s1", name="THCS Lê Lợi", district_id="d1"))
        session.flush()
        session.add(Room(school_id="s1", code="lab-1", name="Phòng máy 1", kind="computer_lab"))
        session.add(Device(school_id="s1", uid="pc-1", kind="pc"))
        session.add(EquipmentPlan(school_id="s1", room_kind="computer_lab", device_kind="pc", planned=40))
    with Session(engine) as session:
        school = session.get(School, "s1")
        assert school is not None and school.timezone == "Asia/Ho_Chi_Minh"
        device = session.scalar(select(Device))
        assert device is not None and device.room_id is None  # unassigned
    with pytest.raises(IntegrityError), Session(engine) as session, session.begin():
        session.add(Room(school_id="s1", code="lab-1", name="again", kind="computer_lab"))
    with pytest.raises(IntegrityError), Session(engine) as session, session.begin():
        session.add(Device(school_id="s1", uid="pc-1", kind="pc"))
    engine.dispose()


def test_writer_is_idempotent_and_registers_unknown_devices(db_url):
    engine = db.make_engine(db_url)
    add_school(engine, "s1")
    writer = BatchWriter(engine)
    t = "classfleet/v1/s1/pc-9"
    batch = [
        _accepted(f"{t}/status", status("online", 1)),
        _accepted(f"{t}/heartbeat", heartbeat(1, 1)),
        _accepted(f"{t}/event", event(1, 2)),
        _accepted(f"{t}/event", event(1, 3)),
    ]
    first = writer.write(batch, [])
    assert first.registered == 1 and first.duplicates == 0
    again = BatchWriter(engine).write(batch, [])  # a redelivery, seen by another replica's writer
    assert again.duplicates == 3
    assert count(engine, Observation) == 3
    with engine.connect() as conn:
        incident = conn.execute(select(Incident)).one()
        state = conn.execute(select(DeviceState)).one()
        device = conn.execute(select(Device)).one()
    assert incident.count == 2 and incident.code == "disk.low"
    assert state.online and (state.session, state.seq) == (1, 3)
    assert device.kind == "pc" and device.room_id is None
    engine.dispose()


def test_unknown_school_and_rejects_go_to_dead_letters(db_url):
    engine = db.make_engine(db_url)
    add_school(engine, "s1")
    writer = BatchWriter(engine)
    outcome = writer.write(
        [_accepted("classfleet/v1/nowhere/pc-1/heartbeat", heartbeat(1, 1)),
         _accepted("classfleet/v1/s1/pc-1/heartbeat", heartbeat(1, 1))],
        [Rejected("classfleet/v1/s1/pc-2/heartbeat", "invalid_json", "Expecting value", b"{", NOW)],
    )
    assert outcome.rejected == {"unknown_school": 1, "invalid_json": 1}
    with engine.connect() as conn:
        reasons = sorted(conn.execute(select(DeadLetter.reason)).scalars())
    assert reasons == ["invalid_json", "unknown_school"]
    assert count(engine, Observation) == 1
    engine.dispose()


def test_device_queries_filter_paginate_and_derive_health(db_url):
    engine = db.make_engine(db_url)
    add_school(engine, "s1")
    add_school(engine, "s2")
    writer = BatchWriter(engine)
    items = []
    for school in ("s1", "s2"):
        for i in range(5):
            t = f"classfleet/v1/{school}/pc-{i}"
            items += [_accepted(f"{t}/status", status("online", 1)), _accepted(f"{t}/heartbeat", heartbeat(1, 1))]
    items.append(_accepted("classfleet/v1/s1/pc-0/event", event(1, 2)))  # a warning: degraded
    writer.write(items, [])
    writer.write([_accepted("classfleet/v1/s1/pc-1/status", status("offline", 1))], [])
    with Session(engine) as session:
        page = queries.list_devices(session, NOW, 180, queries.DeviceFilter(school="s1"), limit=2, offset=0)
        assert page.total == 5 and len(page.items) == 2
        health = {r[0].uid: r[2] for r in queries.list_devices(
            session, NOW, 180, queries.DeviceFilter(school="s1"), 100, 0).items}
        assert health == {"pc-0": "degraded", "pc-1": "offline", "pc-2": "ok", "pc-3": "ok", "pc-4": "ok"}
        # Silence longer than offline_after_s makes a device offline even without a Will.
        later = NOW + dt.timedelta(minutes=10)
        stale = queries.list_devices(session, later, 180, queries.DeviceFilter(health="offline"), 100, 0)
        assert stale.total == 10
        assert queries.list_devices(session, NOW, 180, queries.DeviceFilter(q="PC-3"), 100, 0).total == 2
    engine.dispose()


def test_retention_purges_only_old_history(db_url):
    engine = db.make_engine(db_url)
    add_school(engine, "s1")
    old = NOW - dt.timedelta(days=100)
    BatchWriter(engine).write(
        [_accepted("classfleet/v1/s1/pc-1/heartbeat", heartbeat(1, 1), at=old),
         _accepted("classfleet/v1/s1/pc-1/heartbeat", heartbeat(1, 2), at=NOW)], [])
    with Session(engine) as session, session.begin():
        deleted = queries.purge_history(session, NOW - dt.timedelta(days=90))
    assert deleted == 1 and count(engine, Observation) == 1
    engine.dispose()


def test_latest_inventory_wins_whatever_the_arrival_order(db_url):
    engine = db.make_engine(db_url)
    add_school(engine, "s1")
    t = "classfleet/v1/s1/pc-1/inventory"

    def inv(seq: int, ram: int) -> bytes:
        import json
        import time

        return json.dumps({"v": 1, "session": 1, "seq": seq, "ts": time.time(), "hash": f"hash{seq:06d}",
                           "hardware": {"vendor": "Dell", "ram_bytes": ram}, "software": [{"name": "x"}]}).encode()

    writer = BatchWriter(engine)
    writer.write([_accepted(t, inv(5, 16))], [])
    writer.write([_accepted(t, inv(3, 8))], [])  # older, arriving late
    with engine.connect() as conn:
        row = conn.execute(select(DeviceInventory)).one()
    assert (row.seq, row.hardware["ram_bytes"], row.software) == (5, 16, [{"name": "x"}])
    engine.dispose()
