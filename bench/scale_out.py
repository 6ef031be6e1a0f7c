"""Scale-out: committed messages/s with 1, 2 and 3 controller replicas sharing one subscription.

Run by hand, never in CI (see bench/README.md), from the project root:

    .venv/bin/python bench/scale_out.py                               # 1,000 agents x 100, all phases
    .venv/bin/python bench/scale_out.py --agents 200 --per-agent 20 --replicas 1,2

Every phase starts a fresh private Mosquitto (the controller's own configuration) and the same
publisher load as ``bench/ingest.py`` (whose publisher processes, ceiling subscriber, fleet and rate
window this reuses): ``--agents`` MQTT 5 clients over ``--procs`` processes, each publishing ``--per-agent`` QoS 1
heartbeats with ``--inflight`` unacknowledged. Then:

- ``ceiling``: one bare paho subscriber on the *shared* subscription
  ``$share/classfleet/classfleet/v1/#`` (MQTT 5, QoS 1, automatic acks, the controller's persistent
  session and Receive Maximum) that only counts: what the broker can hand out on this machine;
- ``N replicas``: N real controller processes (``python -m controller controller``), each with its own
  client id and ``CLASSFLEET_MQTT_SHARED_SUBSCRIPTION=true``, against one fresh PostgreSQL database;
  the parent polls ``count(*)`` of ``observations`` four times a second. At the end the table must
  hold exactly the total and there must be no dead letters.

The rate is taken from the moment 10% of the total is in (``--warmup``) to the moment all of it is.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402 - after the path set-up above
    STALL_S,
    ConsumerJob,
    Inbox,
    PubJob,
    _broker_state_dir,
    _cpu_snapshot,
    _mosquitto,
    ceiling_main,
    cpu_percent,
    fleet,
    load_parser,
    log,
    pg_server,
    prepare_parent,
    publisher_main,
    warm_mark,
    window_rates,
)


class Replicas:
    """N controller processes sharing the subscription, stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, n: int, db_url: str, broker_port: int, work: Path) -> None:
        from controller.broker import free_port

        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports = [free_port() for _ in range(n)]
        for i, port in enumerate(self.ports):
            env = {**os.environ, "CLASSFLEET_DATABASE_URL": db_url, "CLASSFLEET_MQTT_URL": f"mqtt://127.0.0.1:"
                   f"{broker_port}", "CLASSFLEET_MQTT_CLIENT_ID": f"bench-replica-{i}",
                   "CLASSFLEET_MQTT_SHARED_SUBSCRIPTION": "true", "CLASSFLEET_PORT": str(port),
                   "CLASSFLEET_DATA_DIR": str(work / f"replica-{i}"), "CLASSFLEET_SNMP_INTERVAL_S": "0",
                   "CLASSFLEET_ONVIF_INTERVAL_S": "0", "CLASSFLEET_PJLINK_INTERVAL_S": "0",
                   "CLASSFLEET_LOG_LEVEL": "WARNING"}
            with (work / f"replica-{i}.log").open("ab") as out:
                self.procs.append(subprocess.Popen(  # noqa: S603 - fixed argv
                    [sys.executable, "-m", "controller", "controller"], env=env, cwd=ROOT, stdout=out, stderr=out,
                    stdin=subprocess.DEVNULL, start_new_session=True))
        self._work = work

    def wait_ready(self, deadline: float) -> None:
        import httpx

        for i, (proc, port) in enumerate(zip(self.procs, self.ports, strict=True)):
            while True:
                if proc.poll() is not None:
                    tail = (self._work / f"replica-{i}.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"replica {i} exited with {proc.returncode}:\n{tail}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"replica {i} not ready")
                time.sleep(0.2)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _count_rows(engine: Any) -> tuple[int, int]:
    from sqlalchemy import func, select

    from controller.store.models import DeadLetter, Observation

    with engine.connect() as conn:
        return (int(conn.scalar(select(func.count()).select_from(Observation)) or 0),
                int(conn.scalar(select(func.count()).select_from(DeadLetter)) or 0))


def run_phase(name: str, replicas: int, args: argparse.Namespace, deadline: float, pg: Any) -> dict[str, Any]:
    """One phase (replicas 0: the ceiling): fresh broker and database, consumers, publishers, go, count."""
    from controller.broker import PrivateBroker, free_port
    from controller.store import db
    from tests.helpers import add_school

    total = args.agents * args.per_agent
    mark = warm_mark(total, args.warmup)
    devices = fleet(args.agents)
    work = Path(tempfile.mkdtemp(prefix="cf-scale-", dir=args.workdir))
    ctx = mp.get_context("spawn")
    results, go, stop = ctx.Queue(), ctx.Event(), ctx.Event()
    procs: list[Any] = []
    broker = ctl = engine = None
    url: str | None = None
    child_deadline = deadline + 20
    out: dict[str, Any] = {"phase": name, "replicas": replicas, "total": total, "problems": []}
    try:
        _broker_state_dir(work)
        broker = PrivateBroker(work, free_port(), binary=_mosquitto())
        broker.start()
        inbox = Inbox(results, procs)
        pids: dict[str, list[int | None]] = {"broker": [getattr(getattr(broker, "_proc", None), "pid", None)]}
        if replicas == 0:
            job = ConsumerJob(name, broker.port, total, mark, args.batch_max, None, [], child_deadline)
            consumer = ctx.Process(target=ceiling_main, args=(job, results, stop, True), name="ceiling", daemon=True)
            consumer.start()
            procs.append(consumer)
            inbox.wait(lambda m: m[:2] == ("ready", "consumer"), 1, deadline, "the ceiling subscriber")
            pids["consumers"] = [consumer.pid]
        else:
            url = pg.create_database()
            db.upgrade(url)
            engine = db.make_engine(url)
            for school in sorted({s for s, _ in devices}):
                add_school(engine, school, f"Benchmark {school}")
            ctl = Replicas(replicas, url, broker.port, work)
            ctl.wait_ready(deadline)
            pids["consumers"] = [p.pid for p in ctl.procs]
        for i in range(args.procs):
            pjob = PubJob(i, broker.port, devices[i :: args.procs], args.per_agent, args.inflight, f"scale-{name}",
                          child_deadline)
            p = ctx.Process(target=publisher_main, args=(pjob, results, go, stop), name=f"publishers-{i}", daemon=True)
            p.start()
            procs.append(p)
        inbox.wait(lambda m: m[0] == "ready" and m[1].startswith("publishers"), args.procs, deadline,
                   f"{args.agents} publisher connections")
        pids["publishers"] = [p.pid for p in procs if p.name.startswith("publishers")]
        log(f"{name}: {args.agents} agents connected; publishing {total:,}")
        cpu0 = _cpu_snapshot(pids)
        t_go = time.monotonic()
        go.set()
        if replicas == 0:
            res = inbox.wait(lambda m: m[0] == "consumer", 1, deadline, f"{total:,} at the ceiling")[0][2]
            points, status = res["points"], res["status"]
        else:
            points, status = _poll_store(engine, total, deadline, inbox)
        t_end = time.monotonic()
        cpu1 = _cpu_snapshot(pids)
        published = [m[2] for m in inbox.wait(lambda m: m[0] == "published", args.procs, deadline, "publishers")]
        acked = sum(p["acked"] for p in published)
        if acked != total or any(p["failed_acks"] for p in published):
            out["problems"].append(f"publishers: {acked:,} of {total:,} acknowledged")
        if status != "ok":
            out["problems"].append(f"consumer {status}")
        else:
            out.update({k: v for k, v in window_rates(points, total, mark).items() if not k.startswith("t_")})
        if engine is not None:
            time.sleep(2.0)  # anything extra (there must be nothing) would arrive now
            rows, dead = _count_rows(engine)
            out.update(rows=rows, dead_letters=dead)
            if rows != total or dead:
                out["problems"].append(f"observations {rows:,} (expected exactly {total:,}), dead letters {dead}")
        if out["problems"] and ctl is not None:  # say why before the temp dir goes
            for i in range(replicas):
                tail = (work / f"replica-{i}.log").read_text(errors="replace").splitlines()[-15:]
                log(f"replica {i} log, last lines:\n  " + "\n  ".join(tail))
        out["cpu_pct"] = cpu_percent(cpu0, cpu1, t_end - t_go)
        return out
    finally:
        stop.set()
        if ctl is not None:
            ctl.stop()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()
                p.join(3)
        results.close()
        results.cancel_join_thread()
        if broker is not None:
            broker.stop()
        if engine is not None:
            engine.dispose()
        if url is not None:
            with contextlib.suppress(Exception):
                pg.drop_database(url)
        shutil.rmtree(work, ignore_errors=True)


def _poll_store(engine: Any, total: int, deadline: float, inbox: Inbox) -> tuple[list[tuple[float, int]], str]:
    """(time, rows) points until the table holds the total; gives up on the deadline or a stall."""
    points: list[tuple[float, int]] = []
    last_change = time.monotonic()
    while True:
        rows = _count_rows(engine)[0]
        now = time.monotonic()
        if rows and (not points or rows != points[-1][1]):
            points.append((now, rows))
            last_change = now
        if rows >= total:
            return points, "ok"
        if now > deadline:
            return points, "timeout"
        if points and now - last_change > STALL_S:
            return points, "stalled"
        with contextlib.suppress(TimeoutError):
            inbox.wait(lambda m: m[0] == "__never__", 1, now + 0.25, "")  # surfaces a child's failure


def render(report: dict[str, Any]) -> str:
    """The table for the note."""
    cfg = report["config"]
    ceiling = next((r.get("rate") for r in report["phases"] if r["replicas"] == 0 and r.get("rate")), None)
    lines = [f"classfleet scale-out: {cfg['agents']:,} agents x {cfg['per_agent']:,} = {cfg['total']:,} QoS 1 "
             f"heartbeats per phase; {cfg['procs']} publisher processes, {cfg['inflight']} in flight each",
             f"machine: {cfg['cpus']} CPUs, load average before the run {cfg['loadavg']}", "",
             f"{'phase':<11} {'msg/s':>8} {'vs ceiling':>10} {'from first':>10} {'seconds':>8} "
             f"{'consumers CPU%':>14} {'broker CPU%':>11} {'machine CPU%':>12}"]
    for r in report["phases"]:
        if "error" in r:
            lines.append(f"{r['phase']:<11} ERROR {r['error'].splitlines()[0]}")
            continue
        rate, cpu = r.get("rate"), r.get("cpu_pct", {})
        ratio = rate / ceiling if rate and ceiling else None

        def f(v: Any, spec: str = ",.0f") -> str:
            return "-" if v is None else format(v, spec)

        lines.append(f"{r['phase']:<11} {f(rate):>8} {f(ratio, '.2f'):>10} {f(r.get('rate_from_first')):>10} "
                     f"{f(r.get('window_seconds'), '.2f'):>8} {f(cpu.get('consumers')):>14} "
                     f"{f(cpu.get('broker')):>11} {f(cpu.get('machine')):>12}")
    problems = [f"{r['phase']}: {p}" for r in report["phases"] for p in r.get("problems", [])]
    problems += [f"{r['phase']}: {r['error']}" for r in report["phases"] if "error" in r]
    lines += ["", *([f"PROBLEM {p}" for p in problems] or ["all phases complete; counts verified"])]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = load_parser(__doc__)
    ap.add_argument("--replicas", default="1,2,3", help="comma-separated replica counts (the ceiling runs first)")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the bare-subscriber ceiling")
    ap.add_argument("--batch-max", type=int, default=500, help="the controller's default; sets Receive Maximum")
    ap.add_argument("--pg-url", default=None, help="PostgreSQL admin URL (default: tests.fixtures.services.postgres())")
    ap.add_argument("--workdir", default=None, help="where the temp dirs go")
    ap.add_argument("--timeout", type=float, default=900, help="overall limit in seconds")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = ap.parse_args(argv)
    args.replica_list = [int(x) for x in args.replicas.split(",") if x.strip()]
    if not args.replica_list or any(n < 1 or n > 8 for n in args.replica_list):
        ap.error("--replicas: counts between 1 and 8")
    if min(args.agents, args.per_agent, args.procs, args.inflight) < 1 or not 0 <= args.warmup < 1:
        ap.error("--agents, --per-agent, --procs, --inflight must be positive; --warmup in [0, 1)")
    args.procs = min(args.procs, args.agents)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    prepare_parent(args.agents)
    deadline = time.monotonic() + args.timeout
    report: dict[str, Any] = {"config": {
        "agents": args.agents, "per_agent": args.per_agent, "total": args.agents * args.per_agent,
        "procs": args.procs, "inflight": args.inflight, "batch_max": args.batch_max, "cpus": os.cpu_count(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg())}, "phases": []}
    phases = ([] if args.no_ceiling else [("ceiling", 0)]) + [(f"{n} replica{'s' * (n > 1)}", n)
                                                              for n in args.replica_list]
    code = 0
    try:
        with contextlib.ExitStack() as stack:
            pg = stack.enter_context(pg_server(args.pg_url)) if args.replica_list else None
            for name, n in phases:
                log(f"phase {name}: start")
                try:
                    result = run_phase(name, n, args, deadline, pg)
                except Exception as exc:
                    result = {"phase": name, "replicas": n, "error": f"{type(exc).__name__}: {exc}"}
                    log(f"phase {name} failed: {exc}")
                report["phases"].append(result)
                code = code or int(bool(result.get("problems") or "error" in result))
                log(f"phase {name}: {result.get('rate') or 0:,.0f} msg/s")
                if time.monotonic() > deadline:
                    break
    except KeyboardInterrupt:
        log("interrupted; everything stopped")
        return 130
    ceiling = next((r.get("rate") for r in report["phases"] if r["replicas"] == 0 and r.get("rate")), None)
    for r in report["phases"]:
        r["ratio_to_ceiling"] = r["rate"] / ceiling if ceiling and r.get("rate") else None
    print(json.dumps(report, indent=2) if args.json else render(report), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
