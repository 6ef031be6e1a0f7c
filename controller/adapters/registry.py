"""The plug dialects classfleet speaks, by the ``watched_by`` name a plug device carries."""

from __future__ import annotations

from ..store.models import PLUG_WATCHERS
from .base import ADDRESS_RE, Adapter, Route
from .shelly import ShellyAdapter
from .tasmota import TasmotaAdapter

ADAPTERS: dict[str, Adapter] = {a.name: a for a in (TasmotaAdapter(), ShellyAdapter())}
# The dialects are named in the store's vocabulary (``WATCHED_BY``); an adapter missing there, or a name there
# without an adapter, is a programming error caught at import.
if tuple(ADAPTERS) != PLUG_WATCHERS:
    raise ImportError(f"plug adapters {tuple(ADAPTERS)} do not match store.models.PLUG_WATCHERS {PLUG_WATCHERS}")
__all__ = ["ADAPTERS", "PLUG_WATCHERS", "route", "subscriptions", "switch_messages", "valid_address"]


def subscriptions() -> list[str]:
    """Every dialect's topic filters."""
    return [f for adapter in ADAPTERS.values() for f in adapter.subscriptions()]


def route(topic: str) -> tuple[Adapter, Route] | None:
    """The dialect a topic belongs to, with the plug address and channel; None if none claims it."""
    for adapter in ADAPTERS.values():
        found = adapter.route(topic)
        if found is not None:
            return adapter, found
    return None


def valid_address(address: str) -> bool:
    """An address a plug may have: one MQTT topic level, no wildcards (``tasmota_9CF9D1``, ``shellyplug-…``)."""
    return bool(ADDRESS_RE.fullmatch(address))


def switch_messages(watched_by: str, address: str, on: bool, command_id: str) -> list[tuple[str, bytes]]:
    """The messages that switch one plug on or off; ``KeyError`` for a dialect we do not speak."""
    return ADAPTERS[watched_by].switch(address, on, command_id)
