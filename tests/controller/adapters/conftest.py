"""Fixtures: a school with air conditioners behind smart plugs, and the controller's ingest reading plug topics
(``tests.helpers.running_ingest`` with the plug adapters)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from controller.adapters.service import PlugIngest
from controller.ingest.service import IngestService
from controller.metrics import IngestMetrics
from controller.store import db
from controller.store.models import Device, Room
from tests.helpers import add_school, running_ingest

PLUGS = {"ac-p201-1": ("tasmota", "tasmota_9CF9D1"), "ac-p201-2": ("shelly", "shellyplusplugs-e86bea123456")}


def seed_plugs(engine: Engine, school: str = "s1") -> dict[str, int]:
    """School ``school``, room P201 with two air conditioners, one behind each dialect's plug; uid → device id."""
    add_school(engine, school)
    with Session(engine) as session, session.begin():
        room = Room(school_id=school, code="P201", name="Phòng 201", kind="smart_l2")
        session.add(room)
        session.flush()
        devices = [Device(school_id=school, uid=uid, kind="air_conditioner", room_id=room.id, watched_by=dialect,
                          mgmt_address=address, name=f"Điều hòa {uid}") for uid, (dialect, address) in PLUGS.items()]
        session.add_all(devices)
        session.flush()
        return {d.uid: d.id for d in devices}


@pytest.fixture
def plugs(db_url: str, broker: Any) -> Iterator[tuple[IngestService, Engine, IngestMetrics, dict[str, int]]]:
    """Seeded plugs and a running ingest."""
    seed = db.make_engine(db_url)
    ids = seed_plugs(seed)
    seed.dispose()
    with running_ingest(db_url, broker.port, client_id="plug-test-controller", foreign=PlugIngest) as (
            service, engine, metrics):
        yield service, engine, metrics, ids
