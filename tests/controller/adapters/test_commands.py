"""Switching a plug from the command ledger (real Mosquitto, SQLite and PostgreSQL): the command reaches the
plug's own command topic, and is ``done`` when the plug reports the new state, ``failed`` when it never does
within the timeout; a command to an offline plug waits until it is back; plug actions target plugs only."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.adapters.simulator import SimulatedPlug
from controller.commands import CommandDispatcher
from controller.store.models import AuditLog, Command, Device, DeviceState, Observation
from tests.helpers import make_app, make_user, wait_for

from .conftest import PLUGS

pytestmark = pytest.mark.integration


class _Watcher:
    """A test-side MQTT client that records what reaches the plugs' command topics."""

    def __init__(self, port: int, filters: list[str]) -> None:
        self.seen: list[tuple[str, bytes]] = []
        ready = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{time.monotonic_ns()}",
                                   protocol=MQTTProtocolVersion.MQTTv5)
        self._client.on_message = lambda c, u, m: self.seen.append((m.topic, m.payload))
        self._client.on_subscribe = lambda *_: ready.set()
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        self._client.subscribe([(f, 1) for f in filters])
        assert ready.wait(10)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _api(engine, tmp_path):
    return TestClient(make_app(engine, tmp_path)), \
        make_user(engine, "tech", "technician", schools=("s1",))


def _command(engine, command_id: str) -> tuple[str, str | None]:
    with engine.connect() as conn:
        row = conn.execute(select(Command.state, Command.detail).where(Command.id == command_id)).one()
        return row.state, row.detail


def _online(engine, device_id: int) -> bool:
    with engine.connect() as conn:
        return bool(conn.scalar(select(DeviceState.online).where(DeviceState.device_id == device_id)))


def _settle(dispatcher: CommandDispatcher, engine, command_id: str, state: str, timeout: float = 20) -> str | None:
    def step() -> bool:
        dispatcher.dispatch_once()
        return _command(engine, command_id)[0] == state
    wait_for(step, timeout=timeout, interval=0.1, what=f"command {state}")
    return _command(engine, command_id)[1]


@pytest.mark.parametrize("uid", ["ac-p201-1", "ac-p201-2"])
def test_power_off_reaches_the_plug_and_is_done_when_it_reports_off(plugs, broker, tmp_path, uid):
    ingest, engine, _metrics, ids = plugs
    dialect, address = PLUGS[uid]
    watcher = _Watcher(broker.port, [f"cmnd/{address}/#", f"{address}/rpc"])
    plug = SimulatedPlug(dialect, address, "127.0.0.1", broker.port, load_w=900.0)
    plug.start()
    try:
        wait_for(lambda: _online(engine, ids[uid]), what="plug online")
        client, auth = _api(engine, tmp_path)
        made = client.post("/api/v1/commands", headers=auth, json={"device_id": ids[uid], "action": "power_off"})
        assert made.status_code == 201, made.text
        command_id = made.json()[0]["id"]
        dispatcher = CommandDispatcher(engine, ingest.publish, plug_timeout_s=30)
        detail = _settle(dispatcher, engine, command_id, "done")
        assert detail == "the plug reported off"
        assert plug.on is False
        if dialect == "tasmota":
            assert watcher.seen == [(f"cmnd/{address}/POWER", b"OFF")]
        else:
            frames = [json.loads(p) for t, p in watcher.seen if t == f"{address}/rpc"]
            assert [(f["method"], f["params"]) for f in frames] == [("Switch.Set", {"id": 0, "on": False}),
                                                                    ("Switch.GetStatus", {"id": 0})]
            assert frames[0]["id"] == command_id and frames[0]["src"] == f"classfleet-plugs/{address}"
        with engine.connect() as conn:
            last = conn.scalars(select(Observation.data).where(Observation.device_id == ids[uid])
                                .order_by(Observation.ts.desc())).first()
        assert last["power_on"] is False
        with Session(engine) as session:
            assert session.scalar(select(AuditLog.target).where(AuditLog.action == "command.power_off")) == \
                f"device:{ids[uid]}"
        # Switching on again the same way.
        again = client.post("/api/v1/commands", headers=auth, json={"device_id": ids[uid], "action": "power_on"})
        assert _settle(dispatcher, engine, again.json()[0]["id"], "done") == "the plug reported on"
        assert plug.on is True
    finally:
        plug.stop()
        watcher.close()


def test_a_plug_that_never_reports_fails_after_the_timeout(plugs, broker, tmp_path):
    ingest, engine, _metrics, ids = plugs
    plug = SimulatedPlug("tasmota", PLUGS["ac-p201-1"][1], "127.0.0.1", broker.port, obey=False)
    plug.start()
    try:
        wait_for(lambda: _online(engine, ids["ac-p201-1"]), what="plug online")
        client, auth = _api(engine, tmp_path)
        command_id = client.post("/api/v1/commands", headers=auth, json={
            "device_id": ids["ac-p201-1"], "action": "power_off"}).json()[0]["id"]
        dispatcher = CommandDispatcher(engine, ingest.publish, plug_timeout_s=1.5)
        started = time.monotonic()
        detail = _settle(dispatcher, engine, command_id, "failed")
        assert time.monotonic() - started >= 1.5
        assert detail == "the plug did not report off within 1.5 s"
        assert plug.commands == ["OFF"]  # it got the command, it just never answered
    finally:
        plug.stop()


def test_a_command_to_an_offline_plug_waits_until_it_is_back(plugs, broker, tmp_path):
    ingest, engine, _metrics, ids = plugs
    device = ids["ac-p201-2"]
    plug = SimulatedPlug("shelly", PLUGS["ac-p201-2"][1], "127.0.0.1", broker.port)
    plug.start()
    wait_for(lambda: _online(engine, device), what="plug online")
    plug.drop()  # power cut: the Will marks it offline
    wait_for(lambda: not _online(engine, device), what="plug offline")
    client, auth = _api(engine, tmp_path)
    command_id = client.post("/api/v1/commands", headers=auth, json={
        "device_id": device, "action": "power_off"}).json()[0]["id"]
    dispatcher = CommandDispatcher(engine, ingest.publish, plug_timeout_s=30)
    for _ in range(5):
        dispatcher.dispatch_once()
        time.sleep(0.1)
    assert _command(engine, command_id)[0] == "pending"
    back = SimulatedPlug("shelly", PLUGS["ac-p201-2"][1], "127.0.0.1", broker.port)
    back.start()
    try:
        assert _settle(dispatcher, engine, command_id, "done") == "the plug reported off"
        assert back.on is False
    finally:
        back.stop()


def test_plug_actions_go_to_plugs_and_agent_actions_to_agents(plugs, tmp_path):
    _ingest, engine, _metrics, ids = plugs
    with Session(engine) as session, session.begin():
        room_id = session.scalar(select(Device.room_id).where(Device.id == ids["ac-p201-1"]))
        session.add(Device(school_id="s1", uid="pc-1", kind="pc", room_id=room_id, watched_by="mqtt"))
    client, auth = _api(engine, tmp_path)
    with Session(engine) as session:
        pc = session.scalar(select(Device.id).where(Device.uid == "pc-1"))
    # A room with both: each action reaches only the devices that can run it.
    made = client.post("/api/v1/commands", headers=auth, json={"room_id": room_id, "action": "power_off"})
    assert made.status_code == 201 and {c["device_id"] for c in made.json()} == set(ids.values())
    made = client.post("/api/v1/commands", headers=auth, json={"room_id": room_id, "action": "run_check"})
    assert made.status_code == 201 and [c["device_id"] for c in made.json()] == [pc]
    # The wrong kind of device, said clearly.
    wrong = client.post("/api/v1/commands", headers=auth, json={"device_id": pc, "action": "power_off"})
    assert wrong.status_code == 422 and "for plugs only" in wrong.json()["detail"]
    wrong = client.post("/api/v1/commands", headers=auth, json={"device_id": ids["ac-p201-1"], "action": "reboot"})
    assert wrong.status_code == 422 and "is a smart plug: use power_off or power_on" in wrong.json()["detail"]
    wrong = client.post("/api/v1/commands", headers=auth, json={"device_id": ids["ac-p201-1"], "action": "power_off",
                                                                 "args": {"delay_s": 5}})
    assert wrong.status_code == 422 and "takes no arguments" in wrong.json()["detail"]
    auditor = make_user(engine, "audit", "auditor", all_schools=True)
    assert client.post("/api/v1/commands", headers=auditor, json={"device_id": ids["ac-p201-1"],
                                                                  "action": "power_off"}).status_code == 403
