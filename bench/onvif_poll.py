"""ONVIF poll throughput: full health checks of 1,000 simulated cameras, wall time and poller CPU per camera.

Run by hand, never in CI, from the project root:

    .venv/bin/python bench/onvif_poll.py                         # 1,000 cameras over 4 simulator processes
    .venv/bin/python bench/onvif_poll.py --cameras 200 --rounds 1 --concurrency 100

It starts ``--sim-procs`` simulator processes (``python -m controller.pollers.onvif.simulator``, one
loopback port per camera, WS-UsernameToken digest checked on every call, HTTP digest on the
snapshot), then runs ``OnvifChecker`` in this process over every camera, ``--rounds`` times. A
full check is what the poller does: GetSystemDateAndTime, GetDeviceInformation, GetServices,
GetCapabilities, GetProfiles, GetStreamUri per profile (2), GetVideoSources, GetSnapshotUri and
the snapshot fetch. Wall time is from the first check started to the last report; CPU is this
process's user+system time over the same span (the simulators' CPU is reported apart: on a
shared 2-core machine they compete with the poller). The target is all 1,000 within 30 s.
Everything is on 127.0.0.1; the simulators are terminated on exit, Ctrl+C or error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.simulators import alarm_after, self_cpu, simulator_processes, spread  # noqa: E402
from controller.pollers.onvif.check import CameraTarget, CheckSettings, OnvifChecker  # noqa: E402


def cpu_of(pids: list[int]) -> float:
    """User+system CPU seconds of other processes, from /proc (Linux)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


async def run(ports: list[int], args: argparse.Namespace, sim_pids: list[int]) -> list[dict[str, object]]:
    """Check every camera ``args.rounds`` times; one result dict per round."""
    settings = CheckSettings(max_concurrency=args.concurrency, call_timeout_s=args.call_timeout,
                             check_timeout_s=max(30.0, args.call_timeout * 10))
    targets = [CameraTarget("127.0.0.1", p, "admin", "Passw0rd") for p in ports]
    rounds = []
    async with OnvifChecker(settings) as checker:  # WSDLs are parsed here, outside the measurement
        for number in range(1, args.rounds + 1):
            cpu0, sim0, t0 = self_cpu(), cpu_of(sim_pids), time.monotonic()
            faults: dict[str, int] = {}
            slowest = 0.0
            async for _target, report in checker.check_many(targets):
                slowest = max(slowest, report.elapsed_s)
                for code in report.active_faults():
                    faults[code] = faults.get(code, 0) + 1
            wall = time.monotonic() - t0
            cpu, sim = self_cpu() - cpu0, cpu_of(sim_pids) - sim0
            per_camera_ms = round(1000 * cpu / len(targets), 2)
            rounds.append({"round": number, "cameras": len(targets), "wall_s": round(wall, 2),
                           "poller_cpu_s": round(cpu, 2), "poller_cpu_ms_per_camera": per_camera_ms,
                           "simulators_cpu_s": round(sim, 2), "slowest_check_s": round(slowest, 2),
                           "cameras_with_faults": faults, "within_30s": wall <= 30.0})
            print(json.dumps(rounds[-1]), file=sys.stderr, flush=True)
    return rounds


def main() -> int:
    """Parse options, run, print the table (or JSON), clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=1000)
    parser.add_argument("--sim-procs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--call-timeout", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="overall limit, seconds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.cameras <= 5000 or not 1 <= args.sim_procs <= 16:
        parser.error("1..5000 cameras over 1..16 simulator processes")
    alarm_after(args.timeout)
    per_process = spread(args.cameras, args.sim_procs)
    argvs = [["--cameras", str(n), "--serial-prefix", f"B{i}-"] for i, n in enumerate(per_process) if n]
    with simulator_processes("controller.pollers.onvif.simulator", argvs) as (children, ports):
        print(f"{len(ports)} cameras on {len(children)} simulator processes", file=sys.stderr)
        rounds = asyncio.run(run(ports, args, [c.pid for c in children]))
    if args.json:
        print(json.dumps(rounds, indent=2))
    else:
        print(f"{'round':>5} {'cameras':>7} {'wall s':>7} {'poller CPU s':>12} {'CPU ms/camera':>13} "
              f"{'sims CPU s':>10} {'slowest s':>9}  faults")
        for r in rounds:
            print(f"{r['round']:>5} {r['cameras']:>7} {r['wall_s']:>7} {r['poller_cpu_s']:>12} "
                  f"{r['poller_cpu_ms_per_camera']:>13} {r['simulators_cpu_s']:>10} {r['slowest_check_s']:>9}  "
                  f"{r['cameras_with_faults'] or 'none'}")
    return 0 if all(r["cameras_with_faults"] == {} for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
