"""The PJLink poller service: checks every PJLink-watched projector on an interval and records the results.

It owns cadence, backoff and the log-once/recover-once policy (the checker owns the I/O). Its event
loop runs in a thread of its own, so a round of two thousand projectors never blocks the controller's
API or ingest; the store is touched only through ``record_polls`` and one read of the device list,
both in worker threads so the loop never blocks on the database.
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

from .check import CheckReport, CheckSettings, ProjectorChecker, ProjectorTarget, utcnow

log = logging.getLogger(__name__)
WATCHED_BY = "pjlink"




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
    what = "projector"

    def __init__(self, engine: Engine, interval_s: float = 60.0, settings: CheckSettings | None = None,
                 environ: Mapping[str, str] | None = None, clock: Callable[[], dt.datetime] = utcnow,
                 max_backoff_s: float = 900.0) -> None:
        super().__init__(interval_s, max_backoff_s)
        self.engine = engine
        self.settings = settings or CheckSettings()
        self.environ = environ if environ is not None else os.environ
        self.clock = clock

    async def _main(self, ready: threading.Event) -> None:
        """Rounds with one checker until ``stop``."""
        self._ready(ready)
        checker = ProjectorChecker(self.settings, self.clock)
        await self._rounds(lambda: self.run_round(checker))

    # -- one round -------------------------------------------------------------------------------

    async def run_round(self, checker: ProjectorChecker) -> int:
        """Check every due projector, recording results in batches as they come in; returns how many."""
        targets, problems = await asyncio.to_thread(targets_from_store, self.engine, self.environ)
        self._log_problems(problems)
        return await self._check_and_record(self.engine, checker.check_many(self._due(targets)), self._track)

    def _track(self, target: ProjectorTarget, report: CheckReport) -> None:
        """Backoff for projectors that do not answer; log a failure once and its recovery once."""
        state: str | None = report.failure
        if state is None and report.active_faults():
            state = "faults:" + ",".join(sorted(report.active_faults()))
        self._note(target, state, report.error, report.failure in ("timeout", "unreachable"))
