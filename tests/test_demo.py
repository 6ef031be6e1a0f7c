"""From the command a newcomer runs: ``classfleet demo`` shows a live fleet in the API within 30 s, its
simulated switches polled over SNMP, air conditioners on smart plugs reporting power and energy with a
17:30 power_off schedule, an equipment plan for the audit, and leaves nothing running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.broker import free_port
from tests.helpers import wait_for

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

        def switches_polled() -> dict | None:
            found = httpx.get(f"{base}/api/v1/devices", params={"kind": "switch"}, timeout=5).json()
            return found if found["total"] == 2 and all(d["last_seen"] for d in found["items"]) else None

        wait_for(switches_polled, timeout=30, interval=0.5, what="both demo switches polled over SNMP")

        def switch_metrics() -> dict | None:  # /metrics is rendered at most every 15 s
            families = {f.name: f for f in text_string_to_metric_families(httpx.get(f"{base}/metrics").text)}
            devices = {s.labels["device"] for s in families["classfleet_switch_ports"].samples}
            return families if devices == {"sw-core", "sw-access-1"} else None

        families = wait_for(switch_metrics, timeout=40, interval=1, what="switch port metrics")
        ports = {(s.labels["device"], s.labels["status"]): s.value for s in families["classfleet_switch_ports"].samples}
        assert ports[("sw-access-1", "up")] >= 10 and ports[("sw-core", "up")] >= 3, ports
        uplinks = {s.labels["device"]: s.value for s in families["classfleet_switch_uplink_up"].samples}
        assert uplinks == {"sw-core": 1.0, "sw-access-1": 1.0}
        planned = {s.labels["device_kind"] for s in families["classfleet_devices_planned"].samples}
        assert {"pc", "laptop", "switch", "camera", "air_conditioner"} <= planned

        def plugs_reporting() -> list | None:
            found = httpx.get(f"{base}/api/v1/devices", params={"kind": "air_conditioner"}, timeout=5).json()
            items = found["items"]
            if len(items) != 3 or not all(d["last_seen"] and d["health"] == "ok" for d in items):
                return None
            details = [httpx.get(f"{base}/api/v1/devices/{d['id']}", timeout=5).json() for d in items]
            return details if all((d["latest_poll"] or {}).get("energy_kwh_total") for d in details) else None

        plugs = wait_for(plugs_reporting, timeout=30, interval=0.5, what="the three demo plugs reporting")
        assert sorted(d["watched_by"] for d in plugs) == ["shelly", "tasmota", "tasmota"]
        assert all(d["room_id"] is not None for d in plugs)  # in the computer labs
        assert all(d["latest_poll"]["power_on"] is True and d["latest_poll"]["power_w"] > 500 for d in plugs)
        schedules = httpx.get(f"{base}/api/v1/schedules", params={"school": "demo-school-1"}, timeout=5).json()
        assert [(s["action"], s["kind"], s["at_time"], s["enabled"]) for s in schedules] == \
            [("power_off", "air_conditioner", "17:30", True)]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert proc.returncode == 0, out.decode()[-2000:]
    assert f"{base}/api/v1/devices?limit=500" in out.decode() and "2 SNMP switches" in out.decode()
    assert "3 smart plugs" in out.decode()
    snmpsim = int((tmp_path / "demo" / "switches" / "snmpsim.pid").read_text())
    wait_for(lambda: not Path(f"/proc/{snmpsim}").exists() or "Z" in Path(f"/proc/{snmpsim}/stat").read_text()
             .split(")")[-1].split()[:1], timeout=10, what="snmpsim stopped with the demo")
