"""The ONVIF poller service: checks every ONVIF-watched device on an interval and records the results.

It owns cadence, backoff and the log-once/recover-once policy (the checker owns the I/O). Its event
loop runs in a thread of its own, so a round of a thousand cameras never blocks the controller's API
or ingest; the store is touched only through ``record_polls`` and one read of the device list, both
in worker threads so the loop never blocks on the database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import threading
from collections.abc import Callable, Mapping

from sqlalchemy import Engine, select

from controller.pollers.loop import PollerLoop
from controller.store.models import Device
from controller.store.polls import FaultCheck, PollResult, record_polls

from .check import CameraTarget, CheckReport, CheckSettings, OnvifChecker, utcnow
from .events import CameraEvent, PullPointSubscription

log = logging.getLogger(__name__)




def targets_from_store(engine: Engine, environ: Mapping[str, str]) -> tuple[list[CameraTarget], list[str]]:
    """The active ONVIF-watched devices as check targets, and a note for each one that cannot be checked.

    ``credential_ref`` names an environment variable holding ``user:password``; the secret itself is
    never stored or logged.
    """
    with engine.connect() as conn:
        rows = conn.execute(select(Device.id, Device.uid, Device.kind, Device.mgmt_address, Device.credential_ref)
                            .where(Device.watched_by == "onvif", Device.lifecycle == "active")).all()
    targets, problems = [], []
    for row in rows:
        if not row.mgmt_address:
            problems.append(f"device {row.uid} (id {row.id}) has no mgmt_address")
            continue
        user = password = None
        if not row.credential_ref:
            problems.append(f"device {row.uid} has no credential_ref: its login will be refused")
        else:
            secret = environ.get(row.credential_ref)
            if secret is None:
                problems.append(f"device {row.uid}: credential variable {row.credential_ref} is not set")
            else:
                user, _, password = secret.partition(":")
        try:
            targets.append(CameraTarget.parse(row.mgmt_address, user, password, device_id=row.id,
                                              nvr=row.kind == "nvr"))
        except ValueError as exc:
            problems.append(f"device {row.uid}: {exc}")
    return targets, problems


class OnvifPoller(PollerLoop):
    """Checks the store's ONVIF devices every ``interval_s`` in its own thread; ``start()``/``stop()``."""

    name = "ONVIF"
    what = "camera"

    def __init__(self, engine: Engine, interval_s: float = 60.0, settings: CheckSettings | None = None,
                 environ: Mapping[str, str] | None = None, clock: Callable[[], dt.datetime] = utcnow,
                 max_backoff_s: float = 900.0, events: bool = False, event_pull_s: float = 10.0) -> None:
        super().__init__(interval_s, max_backoff_s)
        self.engine = engine
        self.settings = settings or CheckSettings()
        self.environ = environ if environ is not None else os.environ
        self.clock = clock
        self.events = events  # PullPoint tamper events: off by default (issue #6)
        self.event_pull_s = event_pull_s
        self._watchers: dict[int, tuple[CameraTarget, asyncio.Task[None]]] = {}
        self._tamper: dict[int, dict[str, bool]] = {}
        self._background: set[asyncio.Future[None]] = set()

    async def _main(self, ready: threading.Event) -> None:
        """Rounds with one checker (and its shared HTTP pool) until ``stop``; watchers are torn down last."""
        self._ready(ready)
        async with OnvifChecker(self.settings, self.clock) as checker:
            await self._rounds(lambda: self.run_round(checker))
            await self._stop_watchers(list(self._watchers))

    # -- one round -------------------------------------------------------------------------------

    async def run_round(self, checker: OnvifChecker) -> int:
        """Check every due device, recording results in batches as they come in; returns how many."""
        targets, problems = await asyncio.to_thread(targets_from_store, self.engine, self.environ)
        self._log_problems(problems)
        if self.events:
            self._reconcile_watchers(checker, self._mine(targets))  # event watchers follow the shard too
        return await self._check_and_record(self.engine, checker.check_many(self._due(targets)), self._track)

    def _track(self, target: CameraTarget, report: CheckReport) -> None:
        """Backoff for cameras that do not answer; log a failure once and its recovery once."""
        state = report.failure if report.failure in ("timeout", "unreachable", "auth") else None
        if state is None and report.active_faults():
            state = "faults:" + ",".join(sorted(report.active_faults()))
        self._note(target, state, report.error, report.failure in ("timeout", "unreachable"))

    def _reconcile_watchers(self, checker: OnvifChecker, targets: list[CameraTarget]) -> None:
        """One PullPoint watcher per device: start new ones, stop those removed or re-addressed."""
        wanted = {t.device_id: t for t in targets if t.device_id is not None}
        stale = [d for d, (t, _task) in self._watchers.items() if wanted.get(d) != t]
        if stale:
            stopping = asyncio.ensure_future(self._stop_watchers(stale))
            self._background.add(stopping)  # hold a reference until it is done
            stopping.add_done_callback(self._background.discard)
        for device_id, target in wanted.items():
            if device_id in self._watchers:
                continue
            sub = PullPointSubscription(checker, target, pull_timeout_s=self.event_pull_s)
            task = asyncio.ensure_future(sub.run(lambda events, t=target: self._on_events(t, events)))
            self._watchers[device_id] = (target, task)

    async def _stop_watchers(self, device_ids: list[int]) -> None:
        """Cancel watchers; each unsubscribes on its way out (bounded by the call timeout)."""
        tasks = [self._watchers.pop(d)[1] for d in device_ids if d in self._watchers]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self.settings.call_timeout_s + 1)

    async def _on_events(self, target: CameraTarget, events: list[CameraEvent]) -> None:
        """Tamper events raise or clear camera.tamper through record_polls; other events are not kept."""
        assert target.device_id is not None
        states = self._tamper.setdefault(target.device_id, {})
        changed = False
        for event in events:
            if event.is_tamper and event.state is not None:
                source = event.source.get("Source") or ",".join(sorted(event.source.values())) or "camera"
                states[source] = event.state
                changed = True
        if not changed:
            return
        tampered = sorted(source for source, on in states.items() if on)
        check = FaultCheck("camera.tamper", bool(tampered), detail={"sources": tampered} if tampered else {})
        result = PollResult(target.device_id, self.clock(), True, {"event": "tamper"}, faults=(check,))
        await asyncio.to_thread(record_polls, self.engine, [result])
