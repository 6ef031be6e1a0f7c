"""Must-show of issue 7 against a RUNNING DEMO: ``classfleet demo`` (agents, ONVIF cameras and an NVR, PJLink
projectors, SNMP switches served by snmpsim) as a subprocess; ``promtool check metrics`` passes on its
/metrics; Debian's real ``prometheus`` scrapes it, and every PromQL expression of the dashboards and the
alert rules parses, and every panel's query returns data (at least one number, not NaN)."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controller.broker import free_port
from tests.dashboards.test_prometheus import (
    _binary,
    _expressions,
    _substitute,
    prometheus,
    query,
    wait_scraped_twice,
)
from tests.helpers import stop_process, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]
QUERY_DEADLINE_S = 180  # pollers run every 15–30 s in the demo; rate windows need two of their rounds
# No panel is exempt: a panel that cannot have data in the demo is a demo or a panel to fix.
EXEMPT: dict[str, str] = {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie is gone for our purposes
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    return True


@contextlib.contextmanager
def running_demo(data_dir: Path) -> Iterator[str]:
    """``classfleet demo`` on free loopback ports (a small fleet: the machine is shared); yields its URL.
    Afterwards the demo must exit cleanly and its snmpsim must be gone."""
    port, mqtt_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASSFLEET_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller", "demo", "--port", str(port), "--mqtt-port", str(mqtt_port),
         "--data-dir", str(data_dir), "--agents", "40", "--heartbeat", "5"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    pid_file = data_dir / "switches" / "snmpsim.pid"
    try:
        def ready() -> bool:
            assert proc.poll() is None, "the demo exited early"
            try:
                switches = httpx.get(f"{base}/api/v1/devices", params={"kind": "switch"}, timeout=2).json()
            except (httpx.HTTPError, ValueError):
                return False
            return switches.get("total") == 2 and all(d["health"] != "unknown" for d in switches["items"])

        wait_for(ready, timeout=90, interval=0.5, what="the demo with its two switches polled")
        yield base
    finally:
        out = stop_process(proc)
        snmpsim = int(pid_file.read_text()) if pid_file.exists() else None
        leftover = snmpsim is not None and not _wait_gone(snmpsim, 10)
        if leftover:
            os.kill(snmpsim, signal.SIGKILL)  # type: ignore[arg-type]
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    assert snmpsim is not None, "the demo started no snmpsim"
    assert not leftover, "the demo left snmpsim running"


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.2)
    return False


def _has_number(result: list[dict]) -> bool:
    """At least one sample that is a number (histogram_quantile over no observations gives NaN)."""
    return any(not math.isnan(float(r["value"][1])) for r in result)


def test_promtool_and_every_panel_against_a_running_demo(tmp_path):
    with running_demo(tmp_path / "demo") as base:
        exposition = httpx.get(f"{base}/metrics", timeout=30).text
        checked = subprocess.run([_binary("promtool"), "check", "metrics"], input=exposition, capture_output=True,
                                 text=True, timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        for name in ("classfleet_switch_ports", "classfleet_switch_uplink_up", "classfleet_poll_duration_seconds",
                     'device_kind="camera"', 'device_kind="projector"', "classfleet_devices_planned"):
            assert name in exposition, f"the demo exports no {name}"

        with prometheus(base.removeprefix("http://"), tmp_path) as api:
            wait_scraped_twice(api, "two scrapes of the demo")
            expressions = _expressions()
            assert len(expressions) >= 30
            pending = {(where, expr): needs_data for where, expr, needs_data in expressions}
            problems: dict[tuple[str, str], str] = {}
            deadline = time.monotonic() + QUERY_DEADLINE_S
            while pending and time.monotonic() < deadline:
                for (where, expr), needs_data in list(pending.items()):
                    answer = query(api, _substitute(expr))
                    if answer.get("status") != "success":  # a parse error does not heal: fail now
                        pytest.fail(f"{where}: {answer.get('error')} in {_substitute(expr)}")
                    if not needs_data or where in EXEMPT or _has_number(answer["data"]["result"]):
                        del pending[(where, expr)]
                        problems.pop((where, expr), None)
                    else:
                        problems[(where, expr)] = f"{where}: no data for {_substitute(expr)}"
                if pending:
                    time.sleep(2)
            assert not pending, "\n".join(problems.values())
            up = query(api, 'up{job="classfleet"}')["data"]["result"]
            assert up and up[0]["value"][1] == "1"
