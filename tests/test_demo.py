"""From the command a newcomer runs: ``classfleet demo`` shows a live fleet in the API within 30 s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.broker import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_brings_up_a_live_fleet(tmp_path):
    port, mqtt_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASSFLEET_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller", "demo", "--port", str(port), "--mqtt-port", str(mqtt_port),
         "--data-dir", str(tmp_path / "demo")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        body = None
        while time.monotonic() - started < 30:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "demo exited"
            try:
                body = httpx.get(f"{base}/api/v1/devices", params={"limit": 500}, timeout=2).json()
                seen = [d for d in body["items"] if d["health"] not in ("unknown",)]
                if body["total"] >= 200 and len(seen) >= 190:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert body is not None and body["total"] >= 200, f"no fleet within 30 s: {body and body['total']}"
        healths = {d["health"] for d in body["items"]}
        assert healths <= {"ok", "degraded", "faulty", "offline", "unknown"} and "ok" in healths
        reporting = sum(d["health"] != "unknown" for d in body["items"])
        assert reporting >= 190, f"only {reporting} agents reporting within 30 s"
        school = httpx.get(f"{base}/api/v1/devices", params={"school": "demo-school-1", "limit": 500}).json()
        assert school["total"] >= 100 and {d["school_id"] for d in school["items"]} == {"demo-school-1"}
        metrics = httpx.get(f"{base}/metrics").text
        up = [s for f in text_string_to_metric_families(metrics) if f.name == "classfleet_device_up"
              for s in f.samples]
        assert len(up) >= 200, f"{len(up)} device_up series"
        assert sum(s.value for s in up) >= 150, f"only {sum(s.value for s in up)} devices up"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out.decode()[-2000:]
    assert f"{base}/api/v1/devices?limit=500" in out.decode()
