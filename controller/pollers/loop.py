"""The cadence every poller shares: rounds every ``interval_s`` on a thread with its own event loop
(so nothing a poller does can block the controller's), sooner on ``poll_now``, abandoned on ``stop``.

With several controller replicas, ``membership`` (``controller.cluster``) shards the targets by school: each
round first reads which devices belong to the schools this replica owns, and checks only those, so a member
joining or leaving moves ownership at the next round."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from ..store.polls import PollResult, record_polls

if TYPE_CHECKING:
    from ..cluster import Membership
    from ..metrics import PollMetrics

log = logging.getLogger(__name__)

FLUSH_EVERY = 200  # poll results per record_polls transaction
FLUSH_AFTER_S = 1.0  # or sooner, so a slow round still lands early results


@dataclass
class Health:
    """What the poller remembers per device between rounds: for backoff and log-once/recover-once."""

    failing: str | None = None
    failures: int = 0
    next_due: float = 0.0


class PollerLoop:
    """Subclasses implement ``_main(ready)``: set up their checker, then ``await self._rounds(fn)``."""

    name = "poller"
    what = "device"  # as a technician would say it in a log line
    engine: Engine  # set by each subclass

    def __init__(self, interval_s: float, max_backoff_s: float = 900.0) -> None:
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self._health: dict[int, Health] = {}
        self._problems_logged: set[str] = set()
        self._log = logging.getLogger(type(self).__module__)  # log lines carry the poller's own name
        self.rounds = 0
        self.last_round_s: float | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._round_task: asyncio.Future[int] | None = None
        self._stopping = threading.Event()
        self._round_done = threading.Condition()
        self.metrics: PollMetrics | None = None
        self.membership: Membership | None = None  # None: poll every school (a lone controller)
        self._owned: set[int] | None = None  # device ids of the schools this replica owns, read each round

    @property
    def kind(self) -> str:
        """The ``poller`` label of this poller's metrics (``onvif``, ``pjlink``): one per poller class."""
        return self.name.lower()

    def bind_metrics(self, metrics: PollMetrics) -> None:
        """Report round and check durations, rounds and failures into the controller's registry."""
        self.metrics = metrics
        metrics.declare(self.kind)

    def start(self) -> None:
        """Start the poller thread; the first round begins at once."""
        if self._thread is not None:
            return
        self._stopping.clear()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._thread_main, args=(ready,), name=f"classfleet-{self.name}-poller",
                                        daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop after the round in flight is abandoned; waits at most ``timeout`` seconds."""
        self._stopping.set()
        loop, wake, round_task = self._loop, self._wake, self._round_task
        if loop is not None and wake is not None:
            loop.call_soon_threadsafe(wake.set)
            if round_task is not None:
                loop.call_soon_threadsafe(round_task.cancel)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._log.warning("%s poller did not stop within %.0f s", self.name, timeout)
        self._thread = None

    def poll_now(self) -> None:
        """Start the next round without waiting for the interval (e.g. after devices were added)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            loop.call_soon_threadsafe(wake.set)

    def wait_rounds(self, count: int, timeout: float = 60.0) -> bool:
        """Block until ``count`` rounds completed since start (tests and the demo's first print)."""
        deadline = time.monotonic() + timeout
        with self._round_done:
            while self.rounds < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._round_done.wait(left)
        return True

    def _thread_main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None

    async def _main(self, ready: threading.Event) -> None:
        raise NotImplementedError

    def _ready(self, ready: threading.Event) -> None:
        """Called first thing in ``_main``: the wake-up event exists, ``start`` may return."""
        self._wake = asyncio.Event()
        ready.set()

    async def _rounds(self, run_round: Callable[[], Awaitable[int]]) -> None:
        """Rounds every ``interval_s`` (sooner on ``poll_now``) until ``stop``."""
        assert self._wake is not None
        while not self._stopping.is_set():
            started = time.monotonic()
            self._round_task = asyncio.ensure_future(self._sharded(run_round))
            finished = False
            try:
                await self._round_task
                finished = True
            except asyncio.CancelledError:
                self._log.info("%s poll round abandoned: stopping", self.name)
            except Exception:  # the database may be away for a moment; the next round retries
                self._log.exception("%s poll round failed", self.name)
                if self.metrics is not None:
                    self.metrics.round_errors.labels(self.kind).inc()
            self._round_task = None
            self.last_round_s = time.monotonic() - started
            if finished and self.metrics is not None:  # an abandoned round's time says nothing
                self.metrics.round_seconds.labels(self.kind).observe(self.last_round_s)
                self.metrics.rounds.labels(self.kind).inc()
            with self._round_done:
                self.rounds += 1
                self._round_done.notify_all()
            self._wake.clear()
            if self._stopping.is_set():
                break
            wait = max(0.0, self.interval_s - self.last_round_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _sharded(self, run_round: Callable[[], Awaitable[int]]) -> int:
        """Read this replica's share of the devices (when sharded), then run the round over it."""
        if self.membership is not None:
            from ..cluster import owned_device_ids

            self._owned = await asyncio.to_thread(owned_device_ids, self.engine, self.membership)
        return await run_round()

    def _mine(self, targets: list[Any]) -> list[Any]:
        """The targets of the schools this replica owns (all of them when not sharded)."""
        owned = self._owned
        return targets if owned is None else [t for t in targets if t.device_id in owned]

    def _log_problems(self, problems: Iterable[str]) -> None:
        """Configuration problems (a missing credential variable) are logged once each."""
        for problem in problems:
            if problem not in self._problems_logged:
                self._problems_logged.add(problem)
                self._log.warning("%s poller: %s", self.name, problem)

    def _due(self, targets: list[Any]) -> list[Any]:
        """The targets of this replica's schools that are not backing off."""
        now = time.monotonic()
        return [t for t in self._mine(targets) if self._health.setdefault(t.device_id or 0, Health()).next_due <= now]

    async def _check_and_record(self, engine: Engine, reports: AsyncIterator[tuple[Any, Any]],
                                track: Callable[[Any, Any], None]) -> int:
        """Record each report as it comes in, in batches on a worker thread; returns how many."""
        batch: list[PollResult] = []
        recorded = 0
        last_flush = time.monotonic()
        async with contextlib.aclosing(reports) as results:  # type: ignore[type-var]
            async for target, report in results:
                if self._stopping.is_set():
                    break
                assert target.device_id is not None
                track(target, report)
                elapsed = getattr(report, "elapsed_s", None)
                if self.metrics is not None and elapsed:
                    self.metrics.check_seconds.labels(self.kind).observe(elapsed)
                batch.append(report.poll_result(target.device_id))
                if len(batch) >= FLUSH_EVERY or time.monotonic() - last_flush >= FLUSH_AFTER_S:
                    recorded += await asyncio.to_thread(record_polls, engine, batch)
                    batch, last_flush = [], time.monotonic()
        if batch:
            recorded += await asyncio.to_thread(record_polls, engine, batch)
        return recorded

    def _note(self, target: Any, state: str | None, error: str | None, unanswered: bool) -> None:
        """Log a failure once and its recovery once; back off from a device that does not answer."""
        health = self._health.setdefault(target.device_id or 0, Health())
        where = f"{target.host}:{target.port} (device {target.device_id})"
        if state != health.failing:
            if state is None:
                self._log.info("%s %s %s recovered", self.name, self.what, where)
            else:
                self._log.warning("%s %s %s: %s (%s)", self.name, self.what, where, state, error or "see incidents")
            health.failing = state
        if unanswered:
            if self.metrics is not None:
                self.metrics.check_failures.labels(self.kind).inc()
            health.failures += 1
            backoff = min(self.interval_s * 2 ** (health.failures - 1), self.max_backoff_s)
            health.next_due = time.monotonic() + max(0.0, backoff - self.interval_s)
        else:
            health.failures, health.next_due = 0, 0.0
