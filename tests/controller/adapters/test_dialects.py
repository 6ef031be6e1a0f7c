"""The dialects' decoders on payloads as Tasmota's and Shelly's documentation shows them (unit tests)."""

from __future__ import annotations

import json

import pytest

from controller.adapters import registry
from controller.adapters.base import AdapterError, Reading


def _decode(topic: str, payload: bytes | str) -> Reading | None:
    found = registry.route(topic)
    assert found is not None, topic
    adapter, where = found
    return adapter.decode(where, payload.encode() if isinstance(payload, str) else payload)


TASMOTA_STATE = {"Time": "2024-02-24T22:20:38", "Uptime": "0T00:10:11", "UptimeSec": 611, "Heap": 24,
                 "SleepMode": "Dynamic", "Sleep": 50, "LoadAvg": 19, "MqttCount": 1, "POWER": "OFF",
                 "Wifi": {"AP": 1, "SSId": "ESP-Network", "Channel": 3, "RSSI": 44, "Signal": -78}}
TASMOTA_SENSOR = {"Time": "2024-02-24T22:20:38", "ENERGY": {
    "TotalStartTime": "2024-01-01T10:00:00", "Total": 12.345, "Yesterday": 3.2, "Today": 1.1, "Period": 5,
    "Power": 850, "ApparentPower": 860, "ReactivePower": 120, "Factor": 0.99, "Voltage": 231, "Current": 3.72}}
SHELLY_STATUS = {"id": 0, "source": "init", "output": True, "apower": 850.2, "voltage": 231.4, "current": 3.69,
                 "aenergy": {"total": 12345.678, "by_minute": [14.1, 14.2, 14.2], "minute_ts": 1717000000},
                 "temperature": {"tC": 41.2, "tF": 106.2}}


def test_tasmota_payloads_as_documented():
    assert _decode("tele/tasmota_9CF9D1/LWT", "Online") == Reading(reachable=True)
    assert _decode("tele/tasmota_9CF9D1/LWT", "Offline") == Reading(reachable=False)
    assert _decode("tele/tasmota_9CF9D1/STATE", json.dumps(TASMOTA_STATE)) == Reading(power_on=False)
    assert _decode("tele/tasmota_9CF9D1/SENSOR", json.dumps(TASMOTA_SENSOR)) == \
        Reading(power_w=850.0, energy_kwh_total=12.345)
    assert _decode("stat/tasmota_9CF9D1/POWER", "ON") == Reading(power_on=True)
    assert _decode("stat/tasmota_9CF9D1/RESULT", '{"POWER":"OFF"}') == Reading(power_on=False)
    assert _decode("stat/tasmota_9CF9D1/RESULT", '{"POWER1":"ON"}') == Reading(power_on=True)
    # Results of other commands and sensors of plugs without metering say nothing about the relay.
    assert _decode("stat/tasmota_9CF9D1/RESULT", '{"TelePeriod":60}') is None
    assert _decode("tele/tasmota_9CF9D1/SENSOR", '{"Time":"2024-02-24T22:20:38","Switch1":"ON"}') is None
    assert registry.route("cmnd/tasmota_9CF9D1/POWER") is None  # our own commands are never read back


def test_shelly_payloads_as_documented():
    assert _decode("shellyplusplugs-e86bea123456/online", "true") == Reading(reachable=True)
    assert _decode("shellyplusplugs-e86bea123456/online", "false") == Reading(reachable=False)
    reading = _decode("shellyplusplugs-e86bea123456/status/switch:0", json.dumps(SHELLY_STATUS))
    assert reading == Reading(power_on=True, power_w=850.2, energy_kwh_total=pytest.approx(12.345678))
    note = {"src": "shellyplusplugs-e86bea123456", "dst": "shellyplusplugs-e86bea123456/events",
            "method": "NotifyStatus", "params": {"ts": 1745708765.60,
                                                 "switch:0": {"id": 0, "output": False, "source": "button"}}}
    assert _decode("shellyplusplugs-e86bea123456/events/rpc", json.dumps(note)) == Reading(power_on=False)
    note["params"] = {"ts": 1745708765.6, "switch:0": {"id": 0, "temperature": {"tC": 42.0, "tF": 107.6}}}
    assert _decode("shellyplusplugs-e86bea123456/events/rpc", json.dumps(note)) is None
    event = {"src": "x", "dst": "x/events", "method": "NotifyEvent",
             "params": {"ts": 1.0, "events": [{"component": "input:0", "event": "single_push"}]}}
    assert _decode("shellyplusplugs-e86bea123456/events/rpc", json.dumps(event)) is None
    answer = {"id": "c1:status", "src": "shellyplusplugs-e86bea123456", "dst": "classfleet-plugs/p",
              "result": {**SHELLY_STATUS, "output": False, "apower": 0.0}}
    assert _decode("classfleet-plugs/shellyplusplugs-e86bea123456/rpc", json.dumps(answer)) == \
        Reading(power_on=False, power_w=0.0, energy_kwh_total=pytest.approx(12.345678))
    set_answer = {"id": "c1", "src": "shellyplusplugs-e86bea123456", "dst": "p", "result": {"was_on": True}}
    assert _decode("classfleet-plugs/shellyplusplugs-e86bea123456/rpc", json.dumps(set_answer)) is None


def test_switch_messages_follow_each_dialect():
    assert registry.switch_messages("tasmota", "tasmota_9CF9D1", False, "c1") == [("cmnd/tasmota_9CF9D1/POWER", b"OFF")]
    (set_topic, set_frame), (get_topic, get_frame) = registry.switch_messages("shelly", "plug-1", False, "c1")
    assert set_topic == get_topic == "plug-1/rpc"
    assert json.loads(set_frame) == {"id": "c1", "src": "classfleet-plugs/plug-1", "method": "Switch.Set",
                                     "params": {"id": 0, "on": False}}
    assert json.loads(get_frame)["method"] == "Switch.GetStatus"


@pytest.mark.parametrize(("topic", "payload", "reason", "words"), [
    ("tele/t1/LWT", "Maybe", "schema", "Online or Offline"),
    ("stat/t1/POWER", "50%", "schema", "ON or OFF"),
    ("tele/t1/STATE", "{not json", "invalid_json", "not JSON"),
    ("tele/t1/STATE", '{"Time":"2024-02-24T22:20:38"}', "schema", "no POWER"),
    ("tele/t1/STATE", '["POWER","ON"]', "schema", "JSON object"),
    ("tele/t1/SENSOR", '{"ENERGY":{"Power":"lots"}}', "schema", "ENERGY.Power must be a number"),
    ("tele/t1/SENSOR", '{"ENERGY":{"Total":NaN}}', "invalid_json", "not JSON"),
    ("stat/t1/POWER", b"\xff\xfe", "invalid_utf8", "not UTF-8"),
    ("p1/online", "yes", "schema", "true or false"),
    ("p1/status/switch:0", '{"id":0,"apower":3}', "schema", "no output"),
    ("p1/status/switch:0", '{"id":0,"output":"on"}', "schema", "output must be true or false"),
    ("p1/status/switch:0", '{"id":0,"output":true,"aenergy":12}', "schema", "aenergy"),
    ("p1/events/rpc", '{"params":{}}', "schema", "method"),
    ("classfleet-plugs/p1/rpc", '{"id":1}', "schema", "result or error"),
    ("stat/t1/POWER", "O" * (64 * 1024 + 1), "oversized", "bytes"),
])
def test_malformed_payloads_are_refused_with_a_reason(topic, payload, reason, words):
    with pytest.raises(AdapterError) as caught:
        _decode(topic, payload)
    assert caught.value.reason == reason and words in caught.value.detail


def test_addresses_are_one_topic_level():
    assert registry.valid_address("tasmota_9CF9D1") and registry.valid_address("shellyplusplugs-e86bea123456")
    for bad in ("", "a/b", "plug+", "#", "$SYS", "có dấu", "x" * 129):
        assert not registry.valid_address(bad), bad
