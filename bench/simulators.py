"""What the poller benches share: simulator processes on loopback, spread evenly, started and stopped
together, and a hard time limit on the whole run."""

from __future__ import annotations

import contextlib
import json
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def spread(total: int, procs: int) -> list[int]:
    """``total`` split over ``procs`` as evenly as integers allow."""
    return [total // procs + (1 if i < total % procs else 0) for i in range(procs)]


def self_cpu() -> float:
    """This process's user+system CPU seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def alarm_after(seconds: float) -> None:
    """Raise TimeoutError in the main thread once the bench has run ``seconds`` (its --timeout)."""
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("bench --timeout reached")))
    signal.alarm(int(seconds))


@contextlib.contextmanager
def simulator_processes(module: str, argvs: Sequence[Sequence[str]], timeout: float = 120.0
                        ) -> Iterator[tuple[list[subprocess.Popen[str]], list[int]]]:
    """``python -m module *argv`` once per argv; yields the processes and every simulated device's port (read
    from their JSON lines up to ``{"ready": …}``), then terminates them, whatever happened meanwhile."""
    children: list[subprocess.Popen[str]] = []
    try:
        for argv in argvs:
            children.append(subprocess.Popen([sys.executable, "-m", module, *argv], cwd=ROOT,
                                             stdout=subprocess.PIPE, text=True, start_new_session=True))
        ports: list[int] = []
        deadline = time.monotonic() + timeout
        for child in children:
            assert child.stdout is not None
            for line in child.stdout:
                message = json.loads(line)
                if "ready" in message:
                    break
                ports.append(int(message["port"]))
                if time.monotonic() > deadline:
                    raise TimeoutError("simulators did not start in time")
        yield children, ports
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
