"""The cadence every poller shares: rounds every ``interval_s`` on a thread with its own event loop
(so nothing a poller does can block the controller's), sooner on ``poll_now``, abandoned on ``stop``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class PollerLoop:
    """Subclasses implement ``_main(ready)``: set up their checker, then ``await self._rounds(fn)``."""

    name = "poller"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.rounds = 0
        self.last_round_s: float | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._round_task: asyncio.Future[int] | None = None
        self._stopping = threading.Event()
        self._round_done = threading.Condition()

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
                log.warning("%s poller did not stop within %.0f s", self.name, timeout)
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
            self._round_task = asyncio.ensure_future(run_round())
            try:
                await self._round_task
            except asyncio.CancelledError:
                log.info("%s poll round abandoned: stopping", self.name)
            except Exception:  # the database may be away for a moment; the next round retries
                log.exception("%s poll round failed", self.name)
            self._round_task = None
            self.last_round_s = time.monotonic() - started
            with self._round_done:
                self.rounds += 1
                self._round_done.notify_all()
            self._wake.clear()
            if self._stopping.is_set():
                break
            wait = max(0.0, self.interval_s - self.last_round_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
