"""The coordinator: owns cadence, concurrency, backoff and the error policy for many SNMP targets.

One ``SnmpPoller`` lives on one event loop with one transport (one pysnmp engine, one socket).
It polls a device, decodes, and asks that device's ``DeviceTracker`` what the poll means; it never
writes anything itself (results go to ``controller.store.polls.record_polls`` through the service).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from ...store.polls import PollResult
from .decode import Raw, Snapshot, decode, fetch
from .meaning import DeviceTracker
from .modules import Catalogue, Module, default_catalogue
from .transport import PysnmpTransport, SnmpError, Target, Transport

log = logging.getLogger(__name__)


def _without(module: Module, absent: frozenset[str]) -> Module:
    """The module minus what the device showed it does not have."""
    if not absent & module.names:
        return module
    tables = {t: {c: o for c, o in cols.items() if c not in absent} for t, cols in module.tables.items()}
    return Module(module.name, {k: v for k, v in module.scalars.items() if k not in absent},
                  {t: cols for t, cols in tables.items() if cols}, module.every_s)


def utcnow() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class PollTarget:
    """One device to poll: the store's id, how to reach it, and what to read (class/profile)."""

    device_id: int
    target: Target | None
    kind: str = "switch"
    profile: str | None = None
    label: str = ""
    is_school_uplink: bool = False
    uplink_port: str | None = None
    config_error: str | None = None


@dataclass(slots=True)
class Schedule:
    """When a device is next due; a failing device backs off exponentially (with jitter)."""

    next_due: float = 0.0
    in_flight: bool = False


class SnmpPoller:
    """Polls targets with bounded concurrency and per-target timeouts; logs failures and recoveries once."""

    def __init__(self, transport: Transport | None = None, catalogue: Catalogue | None = None, *,
                 concurrency: int = 64, interval_s: float = 60.0, backoff_max_s: float = 900.0,
                 fail_threshold: int = 3, jitter: float = 0.1, absent_recheck_s: float = 900.0,
                 clock: Callable[[], dt.datetime] = utcnow,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.transport: Transport = transport or PysnmpTransport()
        self.catalogue = catalogue or default_catalogue()
        self.interval_s = interval_s
        self.backoff_max_s = backoff_max_s
        self.fail_threshold = fail_threshold
        self.jitter = jitter
        self.clock = clock
        self.monotonic = monotonic
        self.trackers: dict[int, DeviceTracker] = {}
        self.schedules: dict[int, Schedule] = {}
        self._limit = concurrency
        # per device: module name → (monotonic time read, sysUpTime then, what it answered)
        self._slow: dict[int, dict[str, tuple[float, int, Raw]]] = {}
        # per device: (when probed, sysUpTime then, scalars/columns that answered nothing): not asked again
        # until ``absent_recheck_s`` passes, so a switch without PoE or 32-bit counters costs nothing for them
        self._absent: dict[int, tuple[float, int, frozenset[str]]] = {}
        self.absent_recheck_s = absent_recheck_s
        self._semaphore: asyncio.Semaphore | None = None
        self._semaphore_loop: asyncio.AbstractEventLoop | None = None

    def tracker(self, pt: PollTarget) -> DeviceTracker:
        """The device's tracker, created on first sight and kept in step with its configuration."""
        tracker = self.trackers.get(pt.device_id)
        if tracker is None:
            tracker = DeviceTracker(pt.device_id, kind=pt.kind, fail_threshold=self.fail_threshold)
            self.trackers[pt.device_id] = tracker
        tracker.kind, tracker.is_school_uplink = pt.kind, pt.is_school_uplink
        tracker.configured_uplink = pt.uplink_port
        return tracker

    async def read(self, pt: PollTarget) -> Snapshot:
        """Fetch and decode one device, with an overall deadline so a slow agent cannot hold a slot forever."""
        if pt.target is None:
            raise SnmpError("config", pt.config_error or "no SNMP target")
        modules = self.catalogue.modules_for(pt.profile, pt.kind)
        cache = self._slow.setdefault(pt.device_id, {})
        now = self.monotonic()
        wanted = [m for m in modules if not m.every_s or m.name not in cache or now - cache[m.name][0] >= m.every_s]
        since, absent_uptime, absent = self._absent.get(pt.device_id, (0.0, 0, frozenset()))
        probing = now - since >= self.absent_recheck_s or not since
        asked = [_without(m, frozenset() if probing else absent) for m in wanted]
        raw = await self._fetch(pt.target, [m for m in asked if m.names])
        uptime = raw.scalars.get("sysUpTime")
        if probing:  # remember what this device does not have, and stop asking for it for a while
            names = set().union(*(m.names for m in asked)) if asked else set()
            self._absent[pt.device_id] = (now, uptime if isinstance(uptime, int) else 0,
                                          frozenset(names - set(raw.scalars) - set(raw.columns)))
        elif isinstance(uptime, int) and uptime < absent_uptime:
            self._absent.pop(pt.device_id, None)  # rebooted: maybe new firmware, probe everything next time
        stale = [m for m in modules if m not in wanted and isinstance(uptime, int) and uptime < cache[m.name][1]]
        if stale:  # rebooted since the slow modules were read: the hardware or firmware may have changed
            extra = await self._fetch(pt.target, stale)
            raw.scalars.update(extra.scalars)
            raw.columns.update(extra.columns)
            wanted += stale
        for module in modules:
            names = module.names
            if module in wanted and module.every_s:
                part = Raw({k: v for k, v in raw.scalars.items() if k in names},
                           {k: v for k, v in raw.columns.items() if k in names})
                cache[module.name] = (now, uptime if isinstance(uptime, int) else 0, part)
            elif module not in wanted:
                raw.scalars.update(cache[module.name][2].scalars)
                raw.columns.update(cache[module.name][2].columns)
        return decode(raw, self.catalogue)

    async def _fetch(self, target: Target, modules: list[Module]) -> Raw:
        """Fetch with an overall deadline: a walk is many requests, so bound the whole poll, not each one."""
        deadline = max(10.0, target.timeout_s * (target.retries + 1) * 8)
        try:
            return await asyncio.wait_for(fetch(self.transport, target, modules), deadline)
        except TimeoutError:
            raise SnmpError("timeout", f"{target.address}: poll took longer than {deadline:g}s") from None

    async def poll(self, pt: PollTarget) -> PollResult:
        """Poll one device (waiting for a concurrency slot) and return what the store should record."""
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._semaphore_loop is not loop:
            self._semaphore, self._semaphore_loop = asyncio.Semaphore(self._limit), loop
        tracker = self.tracker(pt)
        schedule = self.schedules.setdefault(pt.device_id, Schedule())
        schedule.in_flight = True
        try:
            async with self._semaphore:
                started = self.monotonic()
                try:
                    snap = await self.read(pt)
                except SnmpError as exc:
                    return self._failed(pt, tracker, schedule, exc.reason, exc.detail, started)
                except Exception as exc:  # noqa: BLE001 - one broken device must not stop the round
                    log.debug("SNMP poll of %s crashed", pt.label, exc_info=True)
                    return self._failed(pt, tracker, schedule, "internal", f"{type(exc).__name__}: {exc}", started)
            if tracker.failures:
                log.info("SNMP %s (device %s) answers again after %d failed poll(s)", pt.label, pt.device_id,
                         tracker.failures)
            result = tracker.observe(snap, self.clock())
            result.figures["poll_s"] = round(self.monotonic() - started, 3)
            schedule.next_due = self.monotonic() + self._jittered(self.interval_s)
            return result
        finally:
            schedule.in_flight = False

    def _failed(self, pt: PollTarget, tracker: DeviceTracker, schedule: Schedule, reason: str,
                detail: str, started: float) -> PollResult:
        """Record a failure; log it when it starts or its reason changes, never on every repeat."""
        if tracker.failures == 0 or tracker.last_reason != reason:
            log.warning("SNMP %s (device %s) failed: %s", pt.label, pt.device_id, detail)
        result = tracker.failed(self.clock(), reason, detail)
        result.figures["poll_s"] = round(self.monotonic() - started, 3)  # a timeout's time is a check's too
        backoff = min(self.backoff_max_s, self.interval_s * 2 ** max(0, tracker.failures - 1))
        schedule.next_due = self.monotonic() + self._jittered(max(self.interval_s, backoff))
        return result

    def _jittered(self, seconds: float) -> float:
        """Spread polls so a province's switches are not all asked in the same second."""
        return seconds * (1 + random.uniform(-self.jitter, self.jitter))

    def due(self, targets: list[PollTarget]) -> list[PollTarget]:
        """Targets whose time has come and that are not being polled already."""
        now = self.monotonic()
        out = []
        for pt in targets:
            schedule = self.schedules.setdefault(pt.device_id, Schedule())
            if not schedule.in_flight and schedule.next_due <= now:
                out.append(pt)
        return out

    def forget(self, device_id: int) -> None:
        """Drop what is kept about a device that is no longer polled (deleted, retired, another shard's)."""
        self.trackers.pop(device_id, None)
        self.schedules.pop(device_id, None)
        self._slow.pop(device_id, None)
        self._absent.pop(device_id, None)

    def poll_soon(self, device_id: int) -> None:
        """Make a device due now (a trap arrived, a technician asked)."""
        self.schedules.setdefault(device_id, Schedule()).next_due = 0.0

    async def poll_all(self, targets: list[PollTarget]) -> list[PollResult]:
        """Poll every target once, concurrently (bounded), results in the targets' order."""
        return list(await asyncio.gather(*(self.poll(pt) for pt in targets)))
