"""A job that runs every few seconds on its own thread, logging a failure once and its recovery once
(the command dispatcher, the fault sweeper, the notifier). With several replicas, ``gate`` (set by the
runtime from ``controller.cluster``) lets a round run only on the replica holding the task's lease."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class PeriodicTask:
    """Calls ``run_once()`` every ``interval_s`` until ``stop()``; subclasses implement ``run_once``."""

    name = "periodic task"

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.gate: Callable[[], bool] | None = None  # None: always run (a lone controller, the tests)

    def start(self) -> None:
        """Run on its own thread."""
        self._thread = threading.Thread(target=self._run, name=self.name.replace(" ", "-"), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current round."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(20)

    def run_once(self) -> object:
        """One round."""
        raise NotImplementedError

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self._interval_s):
            if self.gate is not None and not self.gate():
                continue  # another replica runs this task; we take over if its lease expires
            try:
                self.run_once()
                if failing:
                    log.info("%s recovered", self.name)
                failing = False
            except Exception:  # the store is away: the next round retries
                if not failing:
                    log.exception("%s failed; retrying", self.name)
                failing = True
