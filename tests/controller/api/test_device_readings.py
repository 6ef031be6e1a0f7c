"""The device API shows a polled device's latest reading from its newest poll history row: a smart plug's relay,
power and energy (stored by the real plug ingest from Tasmota and Shelly payloads) and a projector's power, input
and lamp hours (one round of the real PJLink poller against a simulated projector). Only the single-device
endpoint reads it: the list endpoint's queries do not grow with the number of devices (no N+1)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, insert
from sqlalchemy.engine import Engine

from controller.adapters.service import PlugIngest
from controller.pollers.pjlink.check import CheckSettings
from controller.pollers.pjlink.service import PJLinkPoller
from controller.pollers.pjlink.simulator import ProjectorSimulator, SimProjector
from controller.store import db
from controller.store.models import Device
from tests.helpers import add_school, make_app, make_user

pytestmark = pytest.mark.integration
T0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


def _device(engine: Engine, school: str, uid: str, kind: str, watched_by: str, address: str | None = None) -> int:
    with engine.begin() as conn:
        return int(conn.execute(insert(Device).values(school_id=school, uid=uid, kind=kind, watched_by=watched_by,
                                                      mgmt_address=address).returning(Device.id)).scalar_one())


def seed_readings(engine: Engine) -> dict[str, int]:
    """Schools a and b; in a: two plugs with reports, a projector polled once, an agent PC; in b: a plug."""
    add_school(engine, "a")
    add_school(engine, "b")
    ids = {"tasmota": _device(engine, "a", "ac-1", "air_conditioner", "tasmota", "tasmota_A1"),
           "shelly": _device(engine, "a", "ac-2", "air_conditioner", "shelly", "shellyplusplugs-a2"),
           "silent": _device(engine, "a", "ac-3", "air_conditioner", "tasmota", "tasmota_A3"),
           "pc": _device(engine, "a", "pc-1", "pc", "mqtt"),
           "other": _device(engine, "b", "ac-9", "air_conditioner", "tasmota", "tasmota_B9")}
    at = [T0 + dt.timedelta(seconds=n) for n in range(8)]
    energy = {"ENERGY": {"Total": 152.372, "Power": 845, "Voltage": 230, "Current": 3.67}}
    switch = {"id": 0, "source": "timer", "output": True, "apower": 1020.5, "aenergy": {"total": 98765.4}}
    outcome, rejected = PlugIngest(engine).write([
        ("tele/tasmota_A1/LWT", b"Online", at[0]),
        ("tele/tasmota_A1/STATE", json.dumps({"POWER": "ON"}).encode(), at[1]),
        ("tele/tasmota_A1/SENSOR", json.dumps(energy).encode(), at[2]),
        ("shellyplusplugs-a2/online", b"true", at[3]),
        ("shellyplusplugs-a2/status/switch:0", json.dumps(switch).encode(), at[4]),
        ("tele/tasmota_B9/LWT", b"Online", at[5]),
        ("stat/tasmota_B9/POWER", b"OFF", at[6]),
    ])
    assert not rejected, rejected
    sim = ProjectorSimulator().start()
    try:
        port = sim.add(SimProjector(power="on", input="31", lamp_hours=[1850, 920]))
        ids["projector"] = _device(engine, "a", "pj-1", "projector", "pjlink", f"127.0.0.1:{port}")
        poller = PJLinkPoller(engine, interval_s=3600, environ={},
                              settings=CheckSettings(connect_timeout_s=2, read_timeout_s=2, check_timeout_s=5))
        poller.start()
        try:
            assert poller.wait_rounds(1, 30)
        finally:
            poller.stop()
    finally:
        sim.stop()
    return ids


@pytest.fixture
def readings(db_url: str, tmp_path: Any) -> Any:
    engine = db.make_engine(db_url)
    ids = seed_readings(engine)
    yield TestClient(make_app(engine, tmp_path)), engine, ids
    engine.dispose()


def test_plug_and_projector_readings_on_the_device_endpoint(readings: Any) -> None:
    client, engine, ids = readings
    auth = make_user(engine, "tech-a", "technician", schools=("a",))
    tasmota = client.get(f"/api/v1/devices/{ids['tasmota']}", headers=auth).json()["latest_poll"]
    assert tasmota["power_on"] is True and tasmota["power_w"] == 845 and tasmota["energy_kwh_total"] == 152.372
    assert tasmota["reachable"] is True and dt.datetime.fromisoformat(tasmota["at"]) == T0 + dt.timedelta(seconds=2)
    assert tasmota["power"] is None and tasmota["lamp_hours"] is None  # a plug says nothing of lamps
    shelly = client.get(f"/api/v1/devices/{ids['shelly']}", headers=auth).json()["latest_poll"]
    assert (shelly["power_on"], shelly["power_w"], shelly["energy_kwh_total"]) == (True, 1020.5, 98.7654)
    projector = client.get(f"/api/v1/devices/{ids['projector']}", headers=auth).json()["latest_poll"]
    assert projector["reachable"] is True and projector["error"] is None
    assert (projector["power"], projector["input"], projector["input_name"]) == ("on", "31", "digital 1")
    assert projector["lamp_hours"] == 1850  # the most worn of its two lamps
    assert projector["power_on"] is None and projector["energy_kwh_total"] is None
    # nothing polled: an agent and a plug that never reported
    assert client.get(f"/api/v1/devices/{ids['pc']}", headers=auth).json()["latest_poll"] is None
    assert client.get(f"/api/v1/devices/{ids['silent']}", headers=auth).json()["latest_poll"] is None
    # school b's plug is not school a's technician's to see, reading or not
    assert client.get(f"/api/v1/devices/{ids['other']}", headers=auth).status_code == 404
    admin = make_user(engine, "admin", "admin", all_schools=True)
    other = client.get(f"/api/v1/devices/{ids['other']}", headers=admin).json()["latest_poll"]
    assert other["power_on"] is False and other["power_w"] is None  # the relay changed: the power is unknown


def test_the_list_endpoint_reads_no_reading_per_device(readings: Any) -> None:
    client, engine, ids = readings
    auth = make_user(engine, "admin", "admin", all_schools=True)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    def listed() -> tuple[int, int]:
        statements.clear()
        body = client.get("/api/v1/devices", params={"limit": 500}, headers=auth).json()
        assert all("latest_poll" not in d for d in body["items"])
        assert not [s for s in statements if "observations" in s.lower()]  # no history read for a list
        return body["total"], len(statements)

    total, before = listed()
    for n in range(30):
        _device(engine, "a", f"ac-x{n}", "air_conditioner", "tasmota", f"tasmota_X{n}")
    assert listed() == (total + 30, before)  # as many queries for 36 devices as for 6
