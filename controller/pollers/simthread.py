"""The thread API the device simulators share: their asyncio servers run on a loop in a thread of
their own, so blocking test or demo code never stalls them."""

from __future__ import annotations

import asyncio
import signal
import threading
from typing import Any, Self


class ThreadedSimulator:
    """Mixin for a simulator with ``astart``/``astop``/``aadd``/``akill``/``arevive`` coroutines."""

    thread_name = "simulator"
    _loop: asyncio.AbstractEventLoop | None
    _thread: threading.Thread | None

    async def astart(self) -> None:
        raise NotImplementedError

    async def astop(self) -> None:
        raise NotImplementedError

    async def aserve_until_signalled(self) -> None:
        """For a simulator run as its own process (demo, bench): serve until SIGINT or SIGTERM, then close."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await self.astop()

    def start(self) -> Self:
        """Run the simulator's loop in its thread; returns once it listens."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self.astart())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.astop())
            loop.close()

        self._thread = threading.Thread(target=run, name=self.thread_name, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"{self.thread_name} did not start")
        return self

    def _run(self, coro: Any) -> Any:
        """Run ``coro`` on the simulator's loop from another thread, waiting at most 10 s."""
        assert self._loop is not None, "start() first"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def add(self, device: Any, port: int = 0, listening: bool = True) -> int:
        """Thread-safe ``aadd``."""
        return int(self._run(self.aadd(device, port, listening)))  # type: ignore[attr-defined]

    def kill(self, port: int) -> None:
        """Thread-safe ``akill``."""
        self._run(self.akill(port))  # type: ignore[attr-defined]

    def revive(self, port: int) -> None:
        """Thread-safe ``arevive``."""
        self._run(self.arevive(port))  # type: ignore[attr-defined]

    def _release(self) -> None:
        """On the loop, just before it stops: let go of whatever is held open on purpose."""

    def stop(self) -> None:
        """Stop the loop thread; ``astop`` then closes every port."""
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._release)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(15)
        self._loop = None
