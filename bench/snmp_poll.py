"""SNMP poll cost: classfleet's poller beside net-snmp's snmpbulkwalk (and Prometheus snmp_exporter when
installed), on the same simulated 48-port switches in the same run. Run by hand, never in CI.

    .venv/bin/python bench/snmp_poll.py                       # 500 switches, 4 snmpsim processes
    .venv/bin/python bench/snmp_poll.py --switches 40 --procs 2 --json

Each switch is one loopback address (127.0.1.1, 127.0.1.2, …) served by snmpsim from a 48-port
recording made by extending procurve_2520's 28 Ethernet ports (44 ifTable rows) to 48. What is
compared is **CPU-seconds per switch** of the poller process (snmpsim itself burns far more, so wall
time mostly measures snmpsim):

- ``classfleet``: ``SnmpPoller.poll`` (fetch + decode + meaning) on every switch concurrently, measured
  with ``time.process_time()``; two rounds, the second is steady state (ENTITY-MIB is then reused, as
  the service does between its hourly re-reads), both reported;
- ``snmpbulkwalk``: ifTable + ifXTable per switch with ``xargs -P 16``, children's CPU from getrusage;
- ``snmp_exporter``: Debian ``prometheus-snmp-exporter`` with an ``if_mib`` module, scraped once per
  switch; its CPU from /proc. Skipped (with a note) when not installed.

Everything runs on 127.0.0.0/8 and is stopped at the end, on Ctrl+C, or after ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from controller.pollers.snmp.poller import PollTarget, SnmpPoller  # noqa: E402
from controller.pollers.snmp.transport import PysnmpTransport, Target  # noqa: E402
from tests.fixtures.snmp import RECORDINGS, free_udp_port  # noqa: E402

IF_COLUMNS = ("1.3.6.1.2.1.2.2.1.", "1.3.6.1.2.1.31.1.1.1.")
COMMUNITY = "switch48"


def make_48_port_recording(source: Path = RECORDINGS / "procurve_2520.snmprec") -> str:
    """procurve_2520 (28 Ethernet ports, VLANs, loopbacks) grown to 48 Ethernet ports: ifTable/ifXTable
    rows 29–48 cloned from rows 1–20 (its other rows, VLANs and loopbacks, have indexes from 58 up)."""
    lines = source.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    extra = []
    for line in lines:
        oid, _, rest = line.partition("|")
        for prefix in IF_COLUMNS:
            if oid.startswith(prefix) and oid.count(".") == prefix.count(".") + 1:
                index = int(oid.rsplit(".", 1)[1])
                if 1 <= index <= 20:
                    column = oid.rsplit(".", 1)[0]
                    value = f"4|{index + 28}" if rest.startswith("4|") else rest  # names: ports 29–48
                    extra.append(f"{column}.{index + 28}|{value}")

    def key(line: str) -> tuple[int, ...]:
        return tuple(int(p) for p in line.split("|", 1)[0].split("."))

    return "\n".join(sorted(lines + extra, key=key)) + "\n"


def start_snmpsim(workdir: Path, addresses: list[tuple[str, int]]) -> subprocess.Popen[bytes]:
    """One snmpsim process listening on every given address."""
    data, cache = workdir / "data", workdir / "cache"
    data.mkdir(parents=True)
    cache.mkdir()
    (data / f"{COMMUNITY}.snmprec").write_text(make_48_port_recording())
    exe = Path(sys.executable).with_name("snmpsim-command-responder")
    args = [str(exe), f"--data-dir={data}", f"--cache-dir={cache}"]
    args += [f"--agent-udpv4-endpoint={h}:{p}" for h, p in addresses]
    log = (workdir / "snmpsim.log").open("wb")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "SNMPSIM_ALLOW_ROOT": "true"})


def wait_listening(workdir: Path, count: int, timeout: float) -> None:
    """Until snmpsim logged every endpoint."""
    deadline = time.monotonic() + timeout
    log = workdir / "snmpsim.log"
    while time.monotonic() < deadline:
        if log.exists() and log.read_text(errors="replace").count("Listening at UDP/IPv4 endpoint") >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"snmpsim in {workdir} did not start; see {log}")


async def classfleet_rounds(addresses: list[tuple[str, int]], concurrency: int) -> list[dict[str, float]]:
    """Two rounds of the real poller over every switch; CPU and wall per round."""
    poller = SnmpPoller(concurrency=concurrency)
    targets = [PollTarget(i, Target(h, p, community=COMMUNITY, timeout_s=10, retries=1), kind="switch")
               for i, (h, p) in enumerate(addresses)]
    rounds = []
    for _ in range(2):
        cpu, wall = time.process_time(), time.monotonic()
        results = await poller.poll_all(targets)
        rounds.append({"cpu_s": time.process_time() - cpu, "wall_s": time.monotonic() - wall,
                       "ok": sum(r.reachable for r in results),
                       "ports": sum(len(r.components) for r in results) / max(1, len(results))})
    if isinstance(poller.transport, PysnmpTransport):
        poller.transport.close()
    return rounds


def bulkwalk(addresses: list[tuple[str, int]], parallel: int) -> dict[str, float] | None:
    """snmpbulkwalk of ifTable and ifXTable per switch, ``xargs -P``; children's CPU."""
    exe = shutil.which("snmpbulkwalk")
    if exe is None:
        return None
    jobs = "".join(f"{h}:{p}\n" for h, p in addresses)
    script = (f"{exe} -v2c -c {COMMUNITY} -On -Cr25 -t 10 \"$0\" 1.3.6.1.2.1.2.2 >/dev/null && "
              f"{exe} -v2c -c {COMMUNITY} -On -Cr25 -t 10 \"$0\" 1.3.6.1.2.1.31.1.1 >/dev/null")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.monotonic()
    done = subprocess.run(["xargs", "-P", str(parallel), "-n", "1", "sh", "-c", script], input=jobs.encode(),
                          env={**os.environ, "MIBS": ""}, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "wall_s": time.monotonic() - wall, "ok": float(len(addresses) if done.returncode == 0 else -1)}


def snmp_exporter(addresses: list[tuple[str, int]], workdir: Path, parallel: int) -> dict[str, float] | str:
    """Prometheus snmp_exporter (Debian prometheus-snmp-exporter), an if_mib module, one scrape per switch."""
    exe = shutil.which("prometheus-snmp-exporter") or shutil.which("snmp_exporter")
    if exe is None:
        return "not installed (apt-get install prometheus-snmp-exporter)"
    conf = workdir / "snmp.yml"
    metrics = "".join(
        f"""
    - name: {name}
      oid: {oid}
      type: {kind}
      indexes: [{{labelname: ifIndex, type: gauge}}]"""
        for name, oid, kind in (
            ("ifDescr", "1.3.6.1.2.1.2.2.1.2", "DisplayString"), ("ifAdminStatus", "1.3.6.1.2.1.2.2.1.7", "gauge"),
            ("ifOperStatus", "1.3.6.1.2.1.2.2.1.8", "gauge"), ("ifInErrors", "1.3.6.1.2.1.2.2.1.14", "counter"),
            ("ifOutErrors", "1.3.6.1.2.1.2.2.1.20", "counter"), ("ifName", "1.3.6.1.2.1.31.1.1.1.1", "DisplayString"),
            ("ifHCInOctets", "1.3.6.1.2.1.31.1.1.1.6", "counter"),
            ("ifHCOutOctets", "1.3.6.1.2.1.31.1.1.1.10", "counter"),
            ("ifHighSpeed", "1.3.6.1.2.1.31.1.1.1.15", "gauge"),
            ("ifAlias", "1.3.6.1.2.1.31.1.1.1.18", "DisplayString")))
    probe = subprocess.run([exe, "--version"], capture_output=True, text=True)
    version = probe.stdout + probe.stderr
    old = any(f"version 0.{n}." in version for n in range(10, 23))  # before 0.23, auth lived in the module
    body = f"""
    walk: [1.3.6.1.2.1.2.2, 1.3.6.1.2.1.31.1.1]
    max_repetitions: 25
    timeout: 10s
    metrics:{metrics}
"""
    if old:
        conf.write_text(f"if_mib:\n    version: 2\n    auth:\n      community: {COMMUNITY}{body}")
    else:
        conf.write_text(f"auths:\n  bench:\n    community: {COMMUNITY}\n    version: 2\nmodules:\n  if_mib:{body}")
    port = free_udp_port()
    proc = subprocess.Popen([exe, f"--config.file={conf}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)

        def cpu() -> float:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        async def scrape_all() -> int:
            semaphore = asyncio.Semaphore(parallel)

            async def one(h: str, p: int) -> bool:
                url = f"http://127.0.0.1:{port}/snmp?module=if_mib&target={h}:{p}" + ("" if old else "&auth=bench")
                async with semaphore:
                    body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=60).read())
                return b"ifHCInOctets" in body or b"ifOperStatus" in body
            return sum(await asyncio.gather(*(one(h, p) for h, p in addresses)))

        start, wall = cpu(), time.monotonic()
        ok = asyncio.run(scrape_all())
        return {"cpu_s": cpu() - start, "wall_s": time.monotonic() - wall, "ok": float(ok)}
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    """Parse options, start the simulated switches, measure, print, clean up."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--switches", type=int, default=500)
    parser.add_argument("--procs", type=int, default=4, help="snmpsim processes")
    parser.add_argument("--concurrency", type=int, default=64, help="classfleet polls in flight")
    parser.add_argument("--parallel", type=int, default=16, help="xargs -P / exporter scrapes in flight")
    parser.add_argument("--timeout", type=float, default=1800, help="overall limit, seconds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("--timeout reached")))
    signal.alarm(int(args.timeout))
    port = free_udp_port()
    addresses = [(f"127.0.{1 + i // 250}.{1 + i % 250}", port) for i in range(args.switches)]
    workdir = Path(tempfile.mkdtemp(prefix="classfleet-snmp-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    report: dict[str, object] = {"switches": args.switches, "ports_per_switch": 48}
    try:
        shares = [addresses[i::args.procs] for i in range(args.procs)]
        for n, share in enumerate(shares):
            procs.append(start_snmpsim(workdir / f"sim{n}", share))
        for n, share in enumerate(shares):
            wait_listening(workdir / f"sim{n}", len(share), timeout=120)
        print(f"{args.switches} switches on {args.procs} snmpsim processes; polling…", file=sys.stderr)
        first, steady = asyncio.run(classfleet_rounds(addresses, args.concurrency))
        report["classfleet_first_round"] = {**first, "cpu_s_per_switch": first["cpu_s"] / args.switches}
        report["classfleet_steady"] = {**steady, "cpu_s_per_switch": steady["cpu_s"] / args.switches}
        walk = bulkwalk(addresses, args.parallel)
        report["snmpbulkwalk"] = {**walk, "cpu_s_per_switch": walk["cpu_s"] / args.switches} if walk else \
            "not installed (apt-get install snmp)"
        exporter = snmp_exporter(addresses, workdir, args.parallel)
        report["snmp_exporter"] = exporter if isinstance(exporter, str) else {
            **exporter, "cpu_s_per_switch": exporter["cpu_s"] / args.switches}
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)
        signal.alarm(0)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{'':24} {'CPU-s/switch':>13} {'CPU-s':>8} {'wall-s':>8}  ok")
        for name, row in report.items():
            if isinstance(row, dict):
                print(f"{name:24} {row['cpu_s_per_switch']:13.4f} {row['cpu_s']:8.2f} {row['wall_s']:8.2f}  "
                      f"{int(row['ok'])}")
            elif isinstance(row, str):
                print(f"{name:24} {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
