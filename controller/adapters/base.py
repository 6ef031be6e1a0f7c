"""What every plug adapter shares: the reading it produces, its errors, and the dialect interface.

A smart plug that already speaks MQTT (Tasmota, Shelly Gen2+) is a ``Device`` with ``watched_by`` = the
dialect's name and ``mgmt_address`` = its topic (Tasmota) or topic prefix (Shelly). Its adapter owns the
topics of that dialect: which to subscribe to, how to tell the plug's address from a topic, how to turn a
payload (JSON or a bare ``ON`` / ``Offline`` / ``true``) into a ``Reading``, and how to switch it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

MAX_PAYLOAD_BYTES = 64 * 1024  # the same cap as the wire contract
# One MQTT topic level a plug's address may be: no wildcards, no separators, no leading '$'.
ADDRESS_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class AdapterError(ValueError):
    """A payload the adapter cannot read; ``reason`` is the dead-letter reason, ``detail`` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Reading:
    """What one plug message says: reachable or not, and any of relay state, power (W), energy counter (kWh)."""

    reachable: bool = True
    power_on: bool | None = None
    power_w: float | None = None
    energy_kwh_total: float | None = None

    def figures(self) -> dict[str, Any]:
        """The known figures, as history keeps them (unknown keys are left out, never null)."""
        out: dict[str, Any] = {}
        if self.power_on is not None:
            out["power_on"] = self.power_on
        if self.power_w is not None:
            out["power_w"] = self.power_w
        if self.energy_kwh_total is not None:
            out["energy_kwh_total"] = self.energy_kwh_total
        return out


@dataclass(frozen=True, slots=True)
class Route:
    """A topic of the dialect, split: the plug's address and which of the dialect's channels it is."""

    address: str
    channel: str


class Adapter:
    """One MQTT dialect. Subclasses set ``name`` and implement the four methods."""

    name = ""

    def subscriptions(self) -> tuple[str, ...]:
        """Topic filters the controller subscribes to for this dialect."""
        raise NotImplementedError

    def route(self, topic: str) -> Route | None:
        """The plug address and channel of a topic, or None when the topic is not this dialect's."""
        raise NotImplementedError

    def decode(self, route: Route, payload: bytes) -> Reading | None:
        """The reading a payload carries; None when it says nothing about the relay (e.g. another command's
        result). Raises ``AdapterError`` for a payload that breaks the dialect's documented format."""
        raise NotImplementedError

    def switch(self, address: str, on: bool, command_id: str) -> list[tuple[str, bytes]]:
        """The messages (topic, payload) that switch the plug and make it report its new state."""
        raise NotImplementedError

    def acl(self, address: str) -> tuple[list[str], list[str]]:
        """Mosquitto ACL patterns for the plug's own account: (topics it may write, topics it may read)."""
        raise NotImplementedError

    def controller_acl(self) -> tuple[list[str], list[str]]:
        """Patterns for the controller's account: (read, write)."""
        raise NotImplementedError


def text(route: Route, payload: bytes, dialect: str) -> str:
    """The payload as text (stripped), or an ``AdapterError`` naming the dialect and topic."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise AdapterError("oversized", f"{dialect} {route.channel}: {len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise AdapterError("invalid_utf8", f"{dialect} {route.channel}: payload is not UTF-8") from None


def json_object(route: Route, payload: bytes, dialect: str) -> dict[str, Any]:
    """The payload as a JSON object, or an ``AdapterError`` (``invalid_json`` / ``schema``)."""
    body = text(route, payload, dialect)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise AdapterError("invalid_json", f"{dialect} {route.channel}: not JSON: {body[:80]!r}") from None
    if not isinstance(value, dict):
        raise AdapterError("schema", f"{dialect} {route.channel}: expected a JSON object")
    return value


def number(value: Any, what: str) -> float:
    """A finite number (or a list of numbers, summed: multi-channel meters), else an ``AdapterError``."""
    if isinstance(value, list) and value and all(_is_number(v) for v in value):
        return float(sum(value))
    if _is_number(value):
        return float(value)
    raise AdapterError("schema", f"{what} must be a number, got {str(value)[:40]!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value \
        and abs(value) != float("inf")
