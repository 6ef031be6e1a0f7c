"""PJLink poll throughput: full checks of a department's 2,753 simulated projectors, some of them silent.

Run by hand, never in CI, from the project root:

    .venv/bin/python bench/pjlink_poll.py                              # 2,753 projectors, 10 silent
    .venv/bin/python bench/pjlink_poll.py --projectors 500 --silent 0 --rounds 1

It starts ``--sim-procs`` simulator processes (``python -m controller.pollers.pjlink.simulator``,
one loopback port per projector, class 2, PJLink authentication with md5 checked on every
connection), then runs ``ProjectorChecker`` in this process over every projector, ``--rounds``
times. A full check is what the poller does: connect, greeting, CLSS (with the hash), POWR, INPT,
LAMP, ERST, NAME, INF1, INF2, INFO, SNUM, SVER on one connection. The first ``--silent`` projectors
of each simulator accept the connection and never answer: they cost their read timeout and must not
hold back the others. Wall time is from the first check started to the last report; CPU is this
process's user+system time over the same span. Everything is on 127.0.0.1; the simulators are
terminated on exit, Ctrl+C or error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.simulators import alarm_after, self_cpu, simulator_processes, spread  # noqa: E402
from controller.pollers.pjlink.check import CheckSettings, ProjectorChecker, ProjectorTarget  # noqa: E402

PASSWORD = "bench-password"


async def run(ports: list[int], args: argparse.Namespace) -> list[dict[str, object]]:
    """Check every projector ``args.rounds`` times; one result dict per round."""
    settings = CheckSettings(max_concurrency=args.concurrency, read_timeout_s=args.read_timeout,
                             connect_timeout_s=3.0, check_timeout_s=max(20.0, args.read_timeout * 4))
    targets = [ProjectorTarget("127.0.0.1", p, PASSWORD) for p in ports]
    checker = ProjectorChecker(settings)
    rounds = []
    for number in range(1, args.rounds + 1):
        cpu0, t0 = self_cpu(), time.monotonic()
        faults: dict[str, int] = {}
        healthy_done = 0.0
        async for _target, report in checker.check_many(targets):
            if report.failure is None:
                healthy_done = time.monotonic() - t0
            for code in report.active_faults():
                faults[code] = faults.get(code, 0) + 1
        wall = time.monotonic() - t0
        cpu = self_cpu() - cpu0
        rounds.append({"round": number, "projectors": len(targets), "wall_s": round(wall, 2),
                       "last_healthy_s": round(healthy_done, 2), "poller_cpu_s": round(cpu, 2),
                       "poller_cpu_ms_per_projector": round(1000 * cpu / len(targets), 2),
                       "faults": faults})
        print(json.dumps(rounds[-1]), file=sys.stderr, flush=True)
    return rounds


def main() -> int:
    """Parse options, run, print the table (or JSON), clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projectors", type=int, default=2753)
    parser.add_argument("--silent", type=int, default=10)
    parser.add_argument("--sim-procs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--read-timeout", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="overall limit, seconds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.projectors <= 5000 or not 1 <= args.sim_procs <= 16 or not 0 <= args.silent <= args.projectors:
        parser.error("1..5000 projectors over 1..16 simulator processes, at most all of them silent")
    alarm_after(args.timeout)
    argvs = [["--projectors", str(n), "--password", PASSWORD, "--silent", str(quiet), "--serial-prefix", f"B{i}-"]
             for i, (n, quiet) in enumerate(zip(spread(args.projectors, args.sim_procs),
                                                spread(args.silent, args.sim_procs), strict=True)) if n]
    with simulator_processes("controller.pollers.pjlink.simulator", argvs) as (children, ports):
        print(f"{len(ports)} projectors on {len(children)} simulator processes", file=sys.stderr)
        rounds = asyncio.run(run(ports, args))
    if args.json:
        print(json.dumps(rounds, indent=2))
    else:
        print(f"{'round':>5} {'projectors':>10} {'wall s':>7} {'last healthy s':>14} {'poller CPU s':>12} "
              f"{'CPU ms/proj':>11}  faults")
        for r in rounds:
            print(f"{r['round']:>5} {r['projectors']:>10} {r['wall_s']:>7} {r['last_healthy_s']:>14} "
                  f"{r['poller_cpu_s']:>12} {r['poller_cpu_ms_per_projector']:>11}  {r['faults'] or 'none'}")
    expected = {"projector.unreachable": args.silent} if args.silent else {}
    return 0 if all(r["faults"] == expected for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
