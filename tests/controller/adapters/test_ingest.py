"""Plug messages through the real ingest (real Mosquitto, SQLite and PostgreSQL): Tasmota and Shelly Gen2
sequences written from their documentation, non-JSON payloads included, drive an air conditioner on and off;
power and energy land in history; the Last Will marks it offline with ``aircon.offline``; bad payloads and
unknown plugs are dead-lettered and counted while the other plugs' data flows."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import select

from controller.store.models import DeadLetter, DeviceState, Incident, Observation
from tests.helpers import make_app, make_user, publish_all, wait_for

pytestmark = pytest.mark.integration


def _plug_client(port: int, will: tuple[str, str], name: str) -> mqtt.Client:
    """A connection like a plug's: MQTT 3.1.1 with a retained Last Will."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{time.monotonic_ns()}",
                         protocol=MQTTProtocolVersion.MQTTv311)
    client.will_set(will[0], will[1], qos=1, retain=True)
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    return client


def _cut(client: mqtt.Client) -> None:
    """The plug loses power: the TCP connection drops without a DISCONNECT, so the broker sends the Will."""
    client.loop_stop()
    client.socket().close()


def _history(engine, device_id: int) -> list[dict]:
    with engine.connect() as conn:
        return [dict(d) for d in conn.scalars(select(Observation.data).where(
            Observation.device_id == device_id, Observation.kind == "poll").order_by(Observation.ts))]


def _api(engine, tmp_path):
    return TestClient(make_app(engine, tmp_path)), \
        make_user(engine, "tech", "technician", schools=("s1",))


def _open_codes(engine, device_id: int) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(select(Incident.code).where(Incident.device_id == device_id,
                                                            Incident.state != "resolved")))


def test_tasmota_sequence_on_off_power_energy_and_last_will(plugs, broker, tmp_path):
    _ingest, engine, metrics, ids = plugs
    device = ids["ac-p201-1"]
    t = "tasmota_9CF9D1"
    plug = _plug_client(broker.port, (f"tele/{t}/LWT", "Offline"), "tasmota")
    state = {"Time": "2026-11-23T07:30:00", "Uptime": "0T00:00:11", "UptimeSec": 11, "Heap": 25,
             "SleepMode": "Dynamic", "Sleep": 50, "LoadAvg": 19, "MqttCount": 1, "POWER": "ON",
             "Wifi": {"AP": 1, "SSId": "truong-hoc", "BSSId": "E6:8D:8C:4B:BE:F7", "Channel": 3, "RSSI": 44,
                      "Signal": -78, "LinkCount": 1, "Downtime": "0T00:00:05"}}
    sensor_on = {"Time": "2026-11-23T07:30:00", "ENERGY": {
        "TotalStartTime": "2025-08-15T07:00:00", "Total": 12.345, "Yesterday": 6.1, "Today": 0.2, "Period": 14,
        "Power": 850, "ApparentPower": 862, "ReactivePower": 141, "Factor": 0.99, "Voltage": 231, "Current": 3.73}}
    sensor_off = {"Time": "2026-11-23T11:30:00", "ENERGY": {**sensor_on["ENERGY"], "Total": 15.745, "Power": 0,
                                                            "Current": 0.0}}
    publish_all(plug, [(f"tele/{t}/LWT", "Online")], retain=True)
    publish_all(plug, [
        (f"tele/{t}/STATE", json.dumps(state)),
        (f"tele/{t}/SENSOR", json.dumps(sensor_on)),
        (f"stat/{t}/RESULT", '{"POWER":"OFF"}'),       # someone switched it off (web UI, rule, button)
        (f"stat/{t}/POWER", "OFF"),                     # …and Tasmota says it again, as a bare word
        (f"tele/{t}/SENSOR", json.dumps(sensor_off)),
    ])
    wait_for(lambda: len(_history(engine, device)) == 6, what="six plug readings stored")
    # Each row is a snapshot: the plug's last state overlaid with what the message says (the power reading
    # does not outlive a change of the relay; the energy counter does).
    assert _history(engine, device) == [
        {"reachable": True},
        {"reachable": True, "power_on": True},
        {"reachable": True, "power_on": True, "power_w": 850.0, "energy_kwh_total": 12.345},
        {"reachable": True, "power_on": False, "energy_kwh_total": 12.345},
        {"reachable": True, "power_on": False, "energy_kwh_total": 12.345},
        {"reachable": True, "power_on": False, "power_w": 0.0, "energy_kwh_total": 15.745},
    ]
    assert metrics.messages.labels("tasmota")._value.get() == 6
    client, auth = _api(engine, tmp_path)
    shown = client.get(f"/api/v1/devices/{device}", headers=auth).json()
    assert (shown["health"], shown["watched_by"], shown["kind"], shown["state"]["online"]) == \
        ("ok", "tasmota", "air_conditioner", True)

    _cut(plug)  # the Last Will: tele/<t>/LWT Offline
    wait_for(lambda: _history(engine, device)[-1] == {"reachable": False}, what="the Will stored")
    assert _open_codes(engine, device) == {"aircon.offline"}
    shown = client.get(f"/api/v1/devices/{device}", params={"lang": "en"}, headers=auth).json()
    assert shown["health"] == "offline" and shown["state"]["online"] is False
    assert [(i["code"], i["text"]) for i in shown["incidents"]] == [("aircon.offline", "Air-conditioner plug offline")]

    back = _plug_client(broker.port, (f"tele/{t}/LWT", "Offline"), "tasmota")
    publish_all(back, [(f"tele/{t}/LWT", "Online")], retain=True)
    wait_for(lambda: not _open_codes(engine, device), what="aircon.offline resolved when the plug is back")
    assert _history(engine, device)[-2:] == [{"reachable": False}, {"reachable": True}]  # nothing stale carried
    assert client.get(f"/api/v1/devices/{device}", headers=auth).json()["health"] == "ok"
    back.disconnect()
    back.loop_stop()


def test_shelly_sequence_on_off_power_energy_and_last_will(plugs, broker, tmp_path):
    _ingest, engine, metrics, ids = plugs
    device = ids["ac-p201-2"]
    p = "shellyplusplugs-e86bea123456"
    plug = _plug_client(broker.port, (f"{p}/online", "false"), "shelly")
    status_on = {"id": 0, "source": "init", "output": True, "apower": 912.4, "voltage": 229.8, "current": 4.02,
                 "aenergy": {"total": 20123.456, "by_minute": [15.2, 15.1, 15.3], "minute_ts": 1795402200},
                 "temperature": {"tC": 44.1, "tF": 111.4}}
    switched = {"src": p, "dst": f"{p}/events", "method": "NotifyStatus",
                "params": {"ts": 1795402260.42, "switch:0": {"id": 0, "output": False, "source": "button"}}}
    metered = {"src": p, "dst": f"{p}/events", "method": "NotifyStatus",
               "params": {"ts": 1795402261.10, "switch:0": {"id": 0, "apower": 0.0, "current": 0.0}}}
    status_off = {**status_on, "source": "button", "output": False, "apower": 0.0, "current": 0.0,
                  "aenergy": {"total": 20140.0, "by_minute": [0.0, 0.0, 0.0], "minute_ts": 1795402320}}
    publish_all(plug, [(f"{p}/online", "true")], retain=True)
    publish_all(plug, [
        (f"{p}/status/switch:0", json.dumps(status_on)),
        (f"{p}/events/rpc", json.dumps(switched)),
        (f"{p}/events/rpc", json.dumps(metered)),
        (f"{p}/status/switch:0", json.dumps(status_off)),
    ])
    wait_for(lambda: len(_history(engine, device)) == 5, what="five plug readings stored")
    history = _history(engine, device)
    assert history[:4] == [
        {"reachable": True},
        {"reachable": True, "power_on": True, "power_w": 912.4, "energy_kwh_total": pytest.approx(20.123456)},
        {"reachable": True, "power_on": False, "energy_kwh_total": pytest.approx(20.123456)},
        {"reachable": True, "power_on": False, "power_w": 0.0, "energy_kwh_total": pytest.approx(20.123456)},
    ]
    assert history[4] == {"reachable": True, "power_on": False, "power_w": 0.0, "energy_kwh_total": 20.14}
    assert metrics.messages.labels("shelly")._value.get() == 5

    _cut(plug)  # the Last Will: <prefix>/online false
    wait_for(lambda: _history(engine, device)[-1] == {"reachable": False}, what="the Will stored")
    assert _open_codes(engine, device) == {"aircon.offline"}
    client, auth = _api(engine, tmp_path)
    assert client.get(f"/api/v1/devices/{device}", headers=auth).json()["health"] == "offline"
    back = _plug_client(broker.port, (f"{p}/online", "false"), "shelly")
    publish_all(back, [(f"{p}/online", "true")], retain=True)
    wait_for(lambda: not _open_codes(engine, device), what="resolved when the plug is back")
    back.disconnect()
    back.loop_stop()


def test_bad_payloads_and_unknown_plugs_are_dead_lettered_and_counted(plugs, broker):
    _ingest, engine, metrics, ids = plugs
    sender = _plug_client(broker.port, ("tele/nobody/LWT", "Offline"), "mixed")
    publish_all(sender, [
        ("tele/tasmota_9CF9D1/LWT", "Maybe"),                               # not Online/Offline
        ("stat/tasmota_9CF9D1/POWER", "50%"),                               # not ON/OFF
        ("tele/tasmota_9CF9D1/STATE", "{truncated"),                        # not JSON
        ("shellyplusplugs-e86bea123456/status/switch:0", '{"id":0,"output":"yes"}'),
        ("tele/tasmota_UNKNOWN/STATE", '{"POWER":"ON"}'),                   # nobody registered this plug
        ("stat/tasmota_9CF9D1/POWER", "ON"),                                # and the good one still flows
    ])
    wait_for(lambda: _history(engine, ids["ac-p201-1"]) == [{"reachable": True, "power_on": True}],
             what="the valid message stored")
    with engine.connect() as conn:
        wait_for(lambda: conn.scalar(select(DeadLetter.id).where(DeadLetter.reason == "unknown_plug")) is not None,
                 what="unknown plug dead-lettered")
        dead = {(t, r): d for t, r, d in conn.execute(select(DeadLetter.topic, DeadLetter.reason, DeadLetter.detail))}
    assert set(dead) == {("tele/tasmota_9CF9D1/LWT", "schema"), ("stat/tasmota_9CF9D1/POWER", "schema"),
                         ("tele/tasmota_9CF9D1/STATE", "invalid_json"),
                         ("shellyplusplugs-e86bea123456/status/switch:0", "schema"),
                         ("tele/tasmota_UNKNOWN/STATE", "unknown_plug")}
    assert "Online or Offline" in dead[("tele/tasmota_9CF9D1/LWT", "schema")]
    assert "mgmt_address='tasmota_UNKNOWN'" in dead[("tele/tasmota_UNKNOWN/STATE", "unknown_plug")]
    assert metrics.rejected.labels("schema")._value.get() == 3
    assert metrics.rejected.labels("invalid_json")._value.get() == 1
    assert metrics.rejected.labels("unknown_plug")._value.get() == 1
    with engine.connect() as conn:
        assert conn.scalar(select(DeviceState.online).where(DeviceState.device_id == ids["ac-p201-1"])) is True
    sender.disconnect()
    sender.loop_stop()
