"""The assembled controller takes its settings to the parts it builds: ``CLASSFLEET_PLUG_COMMAND_TIMEOUT_S``
reaches the command dispatcher, so a plug that never reports fails after that long (real private Mosquitto,
SQLite, a simulated Tasmota plug)."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import insert, select

from controller.adapters.simulator import SimulatedPlug
from controller.broker import free_port
from controller.commands import Target, create_commands
from controller.config import load_settings
from controller.runtime import Controller
from controller.store.db import session_factory
from controller.store.models import Command, Device, DeviceState
from tests.helpers import add_school, wait_for

pytestmark = pytest.mark.integration


def test_plug_command_timeout_setting_fails_a_silent_plug_in_time(monkeypatch, tmp_path):
    for name, value in {"CLASSFLEET_DATA_DIR": str(tmp_path), "CLASSFLEET_MQTT_PORT": str(free_port()),
                        "CLASSFLEET_PLUG_COMMAND_TIMEOUT_S": "2.5", "CLASSFLEET_SNMP_INTERVAL_S": "0",
                        "CLASSFLEET_PJLINK_INTERVAL_S": "0", "CLASSFLEET_ONVIF_INTERVAL_S": "0"}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.plug_command_timeout_s == 2.5
    controller = Controller(settings)
    controller.start()
    plug = None
    try:
        engine = controller.engine
        assert engine is not None and controller.broker is not None
        add_school(engine, "s1")
        with engine.begin() as conn:
            device_id = conn.execute(insert(Device).values(school_id="s1", uid="ac-1", kind="air_conditioner",
                                                           watched_by="tasmota", mgmt_address="tasmota_RT0001")
                                     .returning(Device.id)).scalar_one()
        plug = SimulatedPlug("tasmota", "tasmota_RT0001", "127.0.0.1", controller.broker.port, obey=False)
        plug.start()

        def online() -> bool:
            with engine.connect() as conn:
                return bool(conn.scalar(select(DeviceState.online).where(DeviceState.device_id == device_id)))

        wait_for(online, timeout=30, what="the plug online through the controller's ingest")
        with session_factory(engine).begin() as session:
            command_id = create_commands(session, Target(device_id=device_id), "power_off", {}, actor="test",
                                         expires_in=dt.timedelta(minutes=10))[0].id

        def settled() -> tuple[str, str | None] | None:
            with engine.connect() as conn:
                row = conn.execute(select(Command.state, Command.detail).where(Command.id == command_id)).one()
            return (row.state, row.detail) if row.state not in ("pending", "sent") else None

        started = time.monotonic()
        state, detail = wait_for(settled, timeout=40, interval=0.2, what="the plug command settled")
        assert (state, detail) == ("failed", "the plug did not report off within 2.5 s")
        assert time.monotonic() - started >= 2.5
        assert plug.commands == ["OFF"]  # it was told; it never answered
    finally:
        if plug is not None:
            plug.stop()
        controller.stop()
