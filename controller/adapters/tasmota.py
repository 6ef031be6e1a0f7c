"""Tasmota plugs (https://tasmota.github.io/docs/MQTT/), with the default FullTopic ``%prefix%/%topic%/``.

The address is the plug's ``Topic`` (``<t>``, e.g. ``tasmota_9CF9D1``). What it publishes:

- ``tele/<t>/LWT``: ``Online`` when it connects, ``Offline`` as its Last Will (retained, not JSON);
- ``tele/<t>/STATE`` every TelePeriod: ``{"Time":…,"UptimeSec":…,"POWER":"ON",…}``;
- ``tele/<t>/SENSOR`` every TelePeriod on metering plugs:
  ``{"Time":…,"ENERGY":{"Total":12.345,"Yesterday":…,"Today":…,"Power":850,"Voltage":230,"Current":3.7,…}}``
  (``Total`` in kWh, ``Power`` in W);
- ``stat/<t>/POWER``: ``ON`` / ``OFF`` (not JSON) on every change and command;
- ``stat/<t>/RESULT``: the result of a command, e.g. ``{"POWER":"OFF"}``.

It is switched with ``cmnd/<t>/POWER`` ``ON`` / ``OFF``, to which it answers on ``stat/``.
"""

from __future__ import annotations

from typing import Any

from .base import Adapter, AdapterError, Reading, Route, json_object, number, text

STATES = {"ON": True, "OFF": False}
LWT = {"ONLINE": True, "OFFLINE": False}
CHANNELS = ("tele/LWT", "tele/STATE", "tele/SENSOR", "stat/POWER", "stat/RESULT")


class TasmotaAdapter(Adapter):
    """Tasmota's ``tele/`` ``stat/`` ``cmnd/`` topics."""

    name = "tasmota"

    def subscriptions(self) -> tuple[str, ...]:
        """One filter per channel we read (never ``cmnd/``: our own commands)."""
        return tuple(f"{c.split('/')[0]}/+/{c.split('/')[1]}" for c in CHANNELS)

    def route(self, topic: str) -> Route | None:
        """``tele/<t>/STATE`` → (``<t>``, ``tele/STATE``)."""
        parts = topic.split("/")
        if len(parts) != 3 or f"{parts[0]}/{parts[2]}" not in CHANNELS:
            return None
        return Route(parts[1], f"{parts[0]}/{parts[2]}")

    def decode(self, route: Route, payload: bytes) -> Reading | None:
        """LWT and POWER are bare words; STATE, SENSOR and RESULT are JSON objects."""
        if route.channel == "tele/LWT":
            word = text(route, payload, self.name)
            if word.upper() not in LWT:
                raise AdapterError("schema", f"tasmota tele/LWT: expected Online or Offline, got {word[:40]!r}")
            return Reading(reachable=LWT[word.upper()])
        if route.channel == "stat/POWER":
            return Reading(power_on=_state(text(route, payload, self.name), "stat/POWER"))
        body = json_object(route, payload, self.name)
        if route.channel == "tele/SENSOR":
            energy = body.get("ENERGY")
            if energy is None:
                return None  # a plug without metering reports other sensors here
            if not isinstance(energy, dict):
                raise AdapterError("schema", "tasmota tele/SENSOR: ENERGY must be an object")
            power = number(energy["Power"], "tasmota ENERGY.Power") if "Power" in energy else None
            total = number(energy["Total"], "tasmota ENERGY.Total") if "Total" in energy else None
            if power is None and total is None:
                return None
            return Reading(power_w=power, energy_kwh_total=total)
        # tele/STATE and stat/RESULT: the relay is POWER (POWER1 on devices with several relays).
        value = body.get("POWER", body.get("POWER1"))
        if value is None:
            if route.channel == "tele/STATE":
                raise AdapterError("schema", "tasmota tele/STATE: no POWER in the state")
            return None  # the result of another command (TelePeriod, Status…)
        return Reading(power_on=_state(value, route.channel))

    def switch(self, address: str, on: bool, command_id: str) -> list[tuple[str, bytes]]:
        """``cmnd/<t>/POWER`` ``ON``/``OFF``: Tasmota answers on ``stat/<t>/RESULT`` and ``stat/<t>/POWER``."""
        return [(f"cmnd/{address}/POWER", b"ON" if on else b"OFF")]

    def acl(self, address: str) -> tuple[list[str], list[str]]:
        """The plug writes its own ``tele/`` (LWT included) and ``stat/``, reads its own ``cmnd/``."""
        return [f"tele/{address}/#", f"stat/{address}/#"], [f"cmnd/{address}/#"]

    def controller_acl(self) -> tuple[list[str], list[str]]:
        """The controller reads every plug's ``tele/`` and ``stat/``, writes ``cmnd/``."""
        return ["tele/#", "stat/#"], ["cmnd/#"]


def _state(value: Any, where: str) -> bool:
    if not isinstance(value, str) or value.strip().upper() not in STATES:
        raise AdapterError("schema", f"tasmota {where}: POWER must be ON or OFF, got {str(value)[:40]!r}")
    return STATES[value.strip().upper()]
