"""The PJLink poller service: checks every PJLink-watched projector on an interval and records the results.

It owns cadence, backoff and the log-once/recover-once policy (the checker owns the I/O). Its event
loop runs in a thread of its own, so a round of two thousand projectors never blocks the controller's
API or ingest; the store is touched only through ``record_polls`` and one read of the device list,
both in worker threads so the loop never blocks on the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import Engine, select

from controller.pollers.loop import PollerLoop
from controller.store.models import Device
from controller.store.polls import PollResult, record_polls

from .check import CheckReport, CheckSettings, ProjectorChecker, ProjectorTarget, utcnow

log = logging.getLogger(__name__)
WATCHED_BY = "pjlink"
FLUSH_EVERY = 200  # poll results per record_polls transaction
FLUSH_AFTER_S = 1.0  # or sooner, so a slow round still lands early results


@dataclass(slots=True)
class _Health:
    """What the poller remembers per device between rounds: for backoff and log-once/recover-once."""

    failing: str | None = None
    failures: int = 0
    next_due: float = 0.0


def targets_from_store(engine: Engine, environ: Mapping[str, str]) -> tuple[list[ProjectorTarget], list[str]]:
    """The active PJLink-watched devices as check targets, and a note for each one that cannot be checked.

    ``credential_ref`` names an environment variable holding the PJLink password (no user: PJLink has
    none); no ``credential_ref`` means the projector is expected to run without authentication. The
    secret itself is never stored or logged.
    """
    with engine.connect() as conn:
        rows = conn.execute(select(Device.id, Device.uid, Device.mgmt_address, Device.credential_ref)
                            .where(Device.watched_by == WATCHED_BY, Device.lifecycle == "active")).all()
    targets, problems = [], []
    for row in rows:
        if not row.mgmt_address:
            problems.append(f"device {row.uid} (id {row.id}) has no mgmt_address")
            continue
        password = None
        if row.credential_ref:
            password = environ.get(row.credential_ref)
            if password is None:
                problems.append(f"device {row.uid}: credential variable {row.credential_ref} is not set")
        try:
            targets.append(ProjectorTarget.parse(row.mgmt_address, password, device_id=row.id))
        except ValueError as exc:
            problems.append(f"device {row.uid}: {exc}")
    return targets, problems


class PJLinkPoller(PollerLoop):
    """Checks the store's PJLink projectors every ``interval_s`` in its own thread; ``start()``/``stop()``."""

    name = "PJLink"

    def __init__(self, engine: Engine, interval_s: float = 60.0, settings: CheckSettings | None = None,
                 environ: Mapping[str, str] | None = None, clock: Callable[[], dt.datetime] = utcnow,
                 max_backoff_s: float = 900.0) -> None:
        super().__init__(interval_s)
        self.engine = engine
        self.settings = settings or CheckSettings()
        self.environ = environ if environ is not None else os.environ
        self.clock = clock
        self.max_backoff_s = max_backoff_s
        self._health: dict[int, _Health] = {}
        self._problems_logged: set[str] = set()

    async def _main(self, ready: threading.Event) -> None:
        """Rounds with one checker until ``stop``."""
        self._ready(ready)
        checker = ProjectorChecker(self.settings, self.clock)
        await self._rounds(lambda: self.run_round(checker))

    # -- one round -------------------------------------------------------------------------------

    async def run_round(self, checker: ProjectorChecker) -> int:
        """Check every due projector, recording results in batches as they come in; returns how many."""
        targets, problems = await asyncio.to_thread(targets_from_store, self.engine, self.environ)
        for problem in problems:
            if problem not in self._problems_logged:
                self._problems_logged.add(problem)
                log.warning("PJLink poller: %s", problem)
        now = time.monotonic()
        due = [t for t in targets if self._health.setdefault(t.device_id or 0, _Health()).next_due <= now]
        batch: list[PollResult] = []
        recorded = 0
        last_flush = time.monotonic()
        async with contextlib.aclosing(checker.check_many(due)) as reports:
            async for target, report in reports:
                if self._stopping.is_set():
                    break
                assert target.device_id is not None
                self._track(target, report)
                batch.append(report.poll_result(target.device_id))
                if len(batch) >= FLUSH_EVERY or time.monotonic() - last_flush >= FLUSH_AFTER_S:
                    recorded += await asyncio.to_thread(record_polls, self.engine, batch)
                    batch, last_flush = [], time.monotonic()
        if batch:
            recorded += await asyncio.to_thread(record_polls, self.engine, batch)
        return recorded

    def _track(self, target: ProjectorTarget, report: CheckReport) -> None:
        """Backoff for projectors that do not answer; log a failure once and its recovery once."""
        health = self._health.setdefault(target.device_id or 0, _Health())
        where = f"{target.host}:{target.port} (device {target.device_id})"
        state: str | None = report.failure
        if state is None and report.active_faults():
            state = "faults:" + ",".join(sorted(report.active_faults()))
        if state != health.failing:
            if state is None:
                log.info("PJLink projector %s recovered", where)
            else:
                log.warning("PJLink projector %s: %s (%s)", where, state, report.error or "see incidents")
            health.failing = state
        if report.failure in ("timeout", "unreachable"):
            health.failures += 1
            backoff = min(self.interval_s * 2 ** (health.failures - 1), self.max_backoff_s)
            health.next_due = time.monotonic() + max(0.0, backoff - self.interval_s)
        else:
            health.failures, health.next_due = 0, 0.0
