"""Shelly Gen2+ plugs (https://shelly-api-docs.shelly.cloud/gen2/): the address is the MQTT ``topic_prefix``
(by default the device id, e.g. ``shellyplusplugs-e86bea123456``); its relay is the ``Switch`` component 0.

What it publishes:

- ``<prefix>/online``: ``true`` when it connects, ``false`` as its Last Will (not JSON);
- ``<prefix>/status/switch:0`` ("Generic status update over MQTT", ``status_ntf``): the whole switch status,
  ``{"id":0,"source":"init","output":true,"apower":850.2,"voltage":231.4,"current":3.69,
  "aenergy":{"total":12345.678,"by_minute":[…],"minute_ts":…},"temperature":{"tC":41.2,"tF":106.2}}``
  (``apower`` in W, ``aenergy.total`` in Wh);
- ``<prefix>/events/rpc`` ("RPC status notifications", ``rpc_ntf``): ``NotifyStatus`` frames carrying only
  what changed, ``{"src":…,"dst":…,"method":"NotifyStatus","params":{"ts":…,"switch:0":{"id":0,"output":false}}}``.

It is switched by an RPC request frame on ``<prefix>/rpc``; it answers on ``<src>/rpc``. We send
``Switch.Set`` then ``Switch.GetStatus`` with ``src`` = ``classfleet-plugs/<prefix>``, so the answer to the
second is the switch's new status, on a topic only this plug may write (see ``acl``), even when the relay was
already in the requested state and so sends no notification.
"""

from __future__ import annotations

from typing import Any

import orjson

from .base import Adapter, AdapterError, Reading, Route, json_object, number, text

REPLY_ROOT = "classfleet-plugs"
ONLINE = {"true": True, "false": False}
SWITCH = "switch:0"


class ShellyAdapter(Adapter):
    """Shelly Gen2+ ``<prefix>/…`` topics and RPC over MQTT."""

    name = "shelly"

    def subscriptions(self) -> tuple[str, ...]:
        """Availability, status updates, notifications, and the answers to our own RPC requests."""
        return ("+/online", f"+/status/{SWITCH}", "+/events/rpc", f"{REPLY_ROOT}/+/rpc")

    def route(self, topic: str) -> Route | None:
        """``<prefix>/status/switch:0`` → (``<prefix>``, ``status``); answers → (``<prefix>``, ``reply``)."""
        parts = topic.split("/")
        if len(parts) == 3 and parts[0] == REPLY_ROOT and parts[2] == "rpc":
            return Route(parts[1], "reply")
        if len(parts) == 2 and parts[1] == "online":
            return Route(parts[0], "online")
        if len(parts) == 3 and parts[1:] == ["status", SWITCH]:
            return Route(parts[0], "status")
        if len(parts) == 3 and parts[1:] == ["events", "rpc"]:
            return Route(parts[0], "events")
        return None

    def decode(self, route: Route, payload: bytes) -> Reading | None:
        """``online`` is a bare ``true``/``false``; the rest are JSON objects."""
        if route.channel == "online":
            word = text(route, payload, self.name)
            if word.lower() not in ONLINE:
                raise AdapterError("schema", f"shelly online: expected true or false, got {word[:40]!r}")
            return Reading(reachable=ONLINE[word.lower()])
        body = json_object(route, payload, self.name)
        if route.channel == "status":
            return _switch(body, "shelly status/switch:0", whole=True)
        if route.channel == "events":
            method = body.get("method")
            if not isinstance(method, str):
                raise AdapterError("schema", "shelly events/rpc: a notification frame needs a method")
            params = body.get("params")
            if method not in ("NotifyStatus", "NotifyFullStatus") or not isinstance(params, dict):
                return None  # NotifyEvent (button presses, …): nothing about the relay
            status = params.get(SWITCH)
            if status is None:
                return None
            reading = _switch(status, f"shelly {method} switch:0", whole=False)
            return reading if reading.figures() else None  # only the temperature changed, say
        result = body.get("result")  # an answer: Switch.GetStatus carries the status, Switch.Set only was_on
        if isinstance(result, dict) and "output" in result:
            return _switch(result, "shelly Switch.GetStatus", whole=True)
        if "result" not in body and "error" not in body:
            raise AdapterError("schema", "shelly rpc answer: a response frame needs result or error")
        return None

    def switch(self, address: str, on: bool, command_id: str) -> list[tuple[str, bytes]]:
        """``Switch.Set`` then ``Switch.GetStatus`` (its answer reports the new state)."""
        src = f"{REPLY_ROOT}/{address}"
        frames = [{"id": command_id, "src": src, "method": "Switch.Set", "params": {"id": 0, "on": on}},
                  {"id": f"{command_id}:status", "src": src, "method": "Switch.GetStatus", "params": {"id": 0}}]
        return [(f"{address}/rpc", orjson.dumps(frame)) for frame in frames]

    def acl(self, address: str) -> tuple[list[str], list[str]]:
        """The plug writes its availability, status, notifications and answers; reads its own RPC topic."""
        writes = [f"{address}/online", f"{address}/status/#", f"{address}/events/#", f"{REPLY_ROOT}/{address}/rpc"]
        return writes, [f"{address}/rpc"]

    def controller_acl(self) -> tuple[list[str], list[str]]:
        """The controller reads every plug's topics and answers, writes RPC requests."""
        return ["+/online", "+/status/#", "+/events/rpc", f"{REPLY_ROOT}/#"], ["+/rpc"]


def _switch(status: Any, where: str, *, whole: bool) -> Reading:
    """A Switch status object (whole, or the changed part of one) as a reading; Wh become kWh."""
    if not isinstance(status, dict):
        raise AdapterError("schema", f"{where}: the switch status must be an object")
    output = status.get("output")
    if output is not None and not isinstance(output, bool):
        raise AdapterError("schema", f"{where}: output must be true or false, got {str(output)[:40]!r}")
    if whole and output is None:
        raise AdapterError("schema", f"{where}: no output in the switch status")
    power = number(status["apower"], f"{where} apower") if "apower" in status else None
    energy = status.get("aenergy")
    total = None
    if energy is not None:
        if not isinstance(energy, dict) or "total" not in energy:
            raise AdapterError("schema", f"{where}: aenergy must be an object with a total")
        total = number(energy["total"], f"{where} aenergy.total") / 1000.0
    return Reading(power_on=output, power_w=power, energy_kwh_total=total)
