"""Resident memory and CPU of one real agent process (run by hand, not in CI).

Starts a private Mosquitto on a free loopback port, runs ``classfleet-agent run`` (the real CLI,
real psutil facts, dry-run commands) at a 10 s heartbeat for ``--duration`` seconds, samples its
RSS every second and its CPU time at the end, and prints the figures beside a bare
``mosquitto_sub``-style idle paho client measured the same way (the floor of any MQTT agent in
Python). Usage: ``.venv/bin/python bench/agent_footprint.py [--duration 300] [--heartbeat 10]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller.broker import PrivateBroker, free_port  # noqa: E402

IDLE_CLIENT = """
import sys, time, paho.mqtt.client as m
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
c = m.Client(CallbackAPIVersion.VERSION2, client_id="idle-floor", protocol=MQTTProtocolVersion.MQTTv5)
c.connect("127.0.0.1", int(sys.argv[1])); c.loop_start()
while True:
    c.publish("bench/idle", b"{}", qos=1); time.sleep(float(sys.argv[2]))
"""


def measure(argv: list[str], duration: float) -> dict[str, float]:
    """Run ``argv`` for ``duration`` seconds; RSS samples every second, CPU seconds over the run."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ps = psutil.Process(proc.pid)
    time.sleep(3)  # start-up (imports, first inventory) is not the steady state
    cpu0 = sum(ps.cpu_times()[:2])
    t0 = time.monotonic()
    rss = []
    while time.monotonic() - t0 < duration:
        if proc.poll() is not None:
            raise SystemExit(f"{argv[0]} exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        rss.append(ps.memory_info().rss)
        time.sleep(1)
    cpu = sum(ps.cpu_times()[:2]) - cpu0
    elapsed = time.monotonic() - t0
    proc.terminate()
    proc.wait(10)
    return {"rss_mib_mean": statistics.mean(rss) / 2**20, "rss_mib_max": max(rss) / 2**20,
            "cpu_pct_of_one_core": 100 * cpu / elapsed, "seconds": elapsed}


def main() -> None:
    """Parse options, run both measurements, print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--heartbeat", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cf-footprint-") as tmp:
        broker = PrivateBroker(Path(tmp), free_port())
        broker.start()
        try:
            config = Path(tmp) / "agent.toml"
            config.write_text(f'school = "bench"\ndevice = "pc-01"\n[broker]\nurl = "mqtt://127.0.0.1:{broker.port}"\n'
                              f'[agent]\nheartbeat_interval_s = {args.heartbeat}\ndry_run = true\n'
                              f'state_dir = "{Path(tmp) / "state"}"\n')
            agent = measure([sys.executable, "-m", "agents.cli", "run", "--config", str(config)], args.duration)
            floor = measure([sys.executable, "-c", IDLE_CLIENT, str(broker.port), str(args.heartbeat)],
                            args.duration)
        finally:
            broker.stop()
    results = {"agent": agent, "bare_paho_client": floor,
               "ratio_rss": agent["rss_mib_mean"] / floor["rss_mib_mean"]}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'process':<20}{'RSS mean MiB':>14}{'RSS max MiB':>13}{'CPU % of 1 core':>17}{'seconds':>9}")
    for name, r in (("classfleet-agent", agent), ("bare paho client", floor)):
        print(f"{name:<20}{r['rss_mib_mean']:>14.1f}{r['rss_mib_max']:>13.1f}{r['cpu_pct_of_one_core']:>17.3f}"
              f"{r['seconds']:>9.0f}")
    print(f"agent RSS / bare client RSS: {results['ratio_rss']:.2f}  (targets: ≤ 40 MiB, ≤ 0.5 % of one core)")


if __name__ == "__main__":
    main()
