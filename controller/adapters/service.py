"""Plug messages into the store, and plug presence between their reports.

``PlugIngest`` is what the MQTT ingest hands every message outside ``classfleet/v1`` to (its writer thread,
after the batch was received, before it is acknowledged). Each message is decoded by its dialect's adapter,
matched to the registered plug by (``watched_by``, ``mgmt_address``), and stored as a poll result
(``store.polls``): one history row of kind ``poll`` with ``{"reachable", "power_on", "power_w",
"energy_kwh_total"}`` (known keys only), the device's online state, and the ``aircon.offline`` incident, raised
by the Last Will and resolved by the next sign of life.

A plug reports piecemeal (Tasmota: the relay in ``STATE``, the meter in ``SENSOR``; Shelly: only what changed),
but a poll row is a snapshot, read on its own until the next one (the energy report's rule). So each row is the
plug's previous row overlaid with what this message says, as Shelly's documentation says to apply its
``NotifyStatus``: the relay state and the energy counter carry over; the power reading does not survive a
change of the relay (unknown until measured again); a Last Will row has no figures, and the figures start
again from what the plug says once it is back. A payload that breaks the dialect, or a topic no
registered plug has, comes back as a dead letter with its reason.

``PlugPresence``: a plug reports only on change and every few minutes (Tasmota's TelePeriod is 300 s by
default), but while its Last Will has not fired the broker vouches that its session is alive; so while the
controller is connected, it keeps online plugs' ``last_seen`` fresh (no history row: nothing was measured).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine, select, update

from ..ingest.service import TRANSIENT_ERRORS
from ..periodic import PeriodicTask
from ..store.models import Device, DeviceState, Observation
from ..store.polls import FaultCheck, PollResult, record_polls
from ..store.writer import BatchOutcome, Rejected
from . import registry
from .base import AdapterError, Reading

log = logging.getLogger(__name__)

OFFLINE_CODE = "aircon.offline"
FIGURES = ("power_on", "power_w", "energy_kwh_total")
ForeignMessage = tuple[str, bytes, dt.datetime]  # topic, payload, received at


class PlugIngest:
    """Decodes and stores a batch of plug messages (called by the ingest's writer thread)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._warned_duplicates: set[tuple[str, str]] = set()

    def subscriptions(self) -> list[str]:
        """Topic filters of every dialect, for the ingest's subscription."""
        return registry.subscriptions()

    def write(self, items: Sequence[ForeignMessage]) -> tuple[BatchOutcome, list[Rejected]]:
        """Store what the messages say; return the counts and the messages to dead-letter.

        Raises only the store's transient errors (the ingest retries the batch; storing again is harmless:
        a history row is keyed by the plug and the time it was received)."""
        outcome = BatchOutcome()
        rejected: list[Rejected] = []
        decoded: list[tuple[str, str, Reading, str, bytes, dt.datetime]] = []
        for topic, payload, received_at in items:
            found = registry.route(topic)
            if found is None:
                rejected.append(Rejected(topic, "bad_topic", "not a topic of any plug dialect", payload, received_at))
                continue
            adapter, where = found
            try:
                reading = adapter.decode(where, payload)
            except AdapterError as exc:
                log.debug("rejected %s: %s", topic, exc)
                rejected.append(Rejected(topic, exc.reason, f"{exc.detail} (topic {topic})", payload, received_at))
                continue
            outcome.applied[adapter.name] += 1
            if reading is not None:
                decoded.append((adapter.name, where.address, reading, topic, payload, received_at))
        if not decoded:
            return outcome, rejected
        plugs = self._plugs({(dialect, address) for dialect, address, *_ in decoded})
        results: list[tuple[PollResult, ForeignMessage]] = []
        last_ms: dict[int, int] = {}
        known = self._latest(set(plugs.values()))
        for dialect, address, reading, topic, payload, received_at in decoded:
            device_id = plugs.get((dialect, address))
            if device_id is None:
                outcome.applied[dialect] -= 1
                rejected.append(Rejected(topic, "unknown_plug", f"no device is registered with watched_by={dialect!r} "
                                         f"and mgmt_address={address!r}", payload, received_at))
                continue
            # History is keyed by (plug, millisecond): two messages of one plug in one millisecond stay two rows.
            ms = max(int(received_at.timestamp() * 1000), last_ms.get(device_id, -1) + 1)
            last_ms[device_id] = ms
            at = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
            check = FaultCheck(OFFLINE_CODE, not reading.reachable, detail={} if reading.reachable else
                               {"dialect": dialect, "address": address})
            known[device_id] = figures = overlay(known.get(device_id), reading)
            results.append((PollResult(device_id, at, reading.reachable, figures, faults=(check,)),
                            (topic, payload, received_at)))
        rejected += self._record(results)
        return outcome, rejected

    def _latest(self, device_ids: set[int]) -> dict[int, dict[str, Any]]:
        """Each plug's last stored figures (empty after a Last Will), to overlay this batch's messages on."""
        out: dict[int, dict[str, Any]] = {}
        with self._engine.connect() as conn:
            for device_id in device_ids:
                data = conn.scalar(select(Observation.data).where(Observation.device_id == device_id,
                                                                  Observation.kind == "poll")
                                   .order_by(Observation.ts.desc()).limit(1))
                if data and data.get("reachable") is True:
                    out[device_id] = {k: data[k] for k in FIGURES if k in data}
        return out

    def _plugs(self, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Registered plugs by (dialect, address); with two devices on one address the oldest wins (logged)."""
        addresses = {a for _, a in wanted}
        out: dict[tuple[str, str], int] = {}
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(Device.id, Device.watched_by, Device.mgmt_address)
                .where(Device.watched_by.in_(registry.PLUG_WATCHERS), Device.mgmt_address.in_(addresses),
                       Device.lifecycle != "retired").order_by(Device.id))
            for device_id, dialect, address in rows:
                key = (dialect, address)
                if key in out:
                    if key not in self._warned_duplicates:
                        log.warning("two devices are registered as %s plug %r; using device %d", dialect, address,
                                    out[key])
                        self._warned_duplicates.add(key)
                    continue
                out[key] = device_id
        return out

    def _record(self, results: list[tuple[PollResult, ForeignMessage]]) -> list[Rejected]:
        """Record in one transaction; if the store refuses it, plug by plug, dead-lettering the refused."""
        if not results:
            return []
        try:
            record_polls(self._engine, [r for r, _ in results])
            return []
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            log.warning("store refused a batch of plug readings (%s); recording plug by plug", type(exc).__name__)
        by_device: dict[int, list[tuple[PollResult, ForeignMessage]]] = defaultdict(list)
        for item in results:
            by_device[item[0].device_id].append(item)
        refused: list[Rejected] = []
        for device_id, items in by_device.items():
            try:
                record_polls(self._engine, [r for r, _ in items])
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("store refused readings of plug device %d: %s", device_id, reason)
                refused += [Rejected(t, "store_rejected", reason, p, at) for _, (t, p, at) in items]
        return refused


def overlay(previous: dict[str, Any] | None, reading: Reading) -> dict[str, Any]:
    """The plug's figures after this message: the previous ones, updated by what it says (see the module)."""
    if not reading.reachable:
        return {}
    figures = dict(previous or {})
    if reading.power_on is not None and reading.power_on != figures.get("power_on") and reading.power_w is None:
        figures.pop("power_w", None)  # measured before the relay changed: no longer true
    figures.update(reading.figures())
    return figures


class PlugPresence(PeriodicTask):
    """Keeps connected plugs' ``last_seen`` fresh while the controller's own broker session is up."""

    name = "plug presence"

    def __init__(self, engine: Engine, connected: Callable[[], bool], *, interval_s: float = 30.0,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        super().__init__(interval_s)
        self._engine = engine
        self._connected = connected
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def run_once(self) -> int:
        """One round; returns how many plugs were vouched for (0 while we are not connected ourselves:
        a Last Will published meanwhile reaches us only when we are back)."""
        if not self._connected():
            return 0
        plugs = select(Device.id).where(Device.watched_by.in_(registry.PLUG_WATCHERS), Device.lifecycle == "active")
        with self._engine.begin() as conn:
            result = conn.execute(update(DeviceState).where(DeviceState.online.is_(True),
                                                            DeviceState.device_id.in_(plugs))
                                  .values(last_seen=self._clock()))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
