"""/metrics at province scale, and what scraping costs the ingest (run by hand, not in CI).

Seeds a store with ``--devices`` devices (default 30,000) spread over schools, serves the real API
app with uvicorn in this process (as the controller does), and measures:
1. the time and size of ``GET /metrics``: the first scrape (rendered on demand), then one scrape a second for
   ``--scrape-seconds`` (longer than the 15 s cache, so the controller renders ahead during them: median and
   max of those, and how many renderings they spanned); the peer is prometheus-client's own renderer
   (``generate_latest``) over the same store gauges, timed in the same run;
2. the p99 of ``BatchWriter.write`` for 500-heartbeat batches committed by a writer thread in the
   same process, first with no scrapes, then while another process scrapes back to back —
   the peer figure is the same writer unscraped, so the ratio says what scrapes cost ingest.

    .venv/bin/python bench/scrape.py [--devices 30000] [--seconds 20] [--scrape-seconds 35]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from classfleet_wire import decode  # noqa: E402
from controller.api.app import create_app  # noqa: E402
from controller.config import Settings  # noqa: E402
from controller.metrics import build_registry  # noqa: E402
from controller.store import db  # noqa: E402
from controller.store.models import Device, DeviceState, School  # noqa: E402
from controller.store.writer import Accepted, BatchWriter  # noqa: E402
from tests.helpers import heartbeat, serve_app  # noqa: E402


def seed(url: str, devices: int, schools: int = 60) -> None:
    """Schools and devices with a live state, inserted in bulk."""
    db.upgrade(url)
    engine = db.make_engine(url)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(insert(School), [{"id": f"s{i:02d}", "name": f"School {i}", "timezone": "Asia/Ho_Chi_Minh",
                                       "hours_start": "07:00", "hours_end": "17:00"} for i in range(schools)])
        conn.execute(insert(Device), [{"school_id": f"s{i % schools:02d}", "uid": f"pc-{i:05d}", "kind": "pc",
                                       "watched_by": "mqtt", "lifecycle": "active", "is_school_uplink": False,
                                       "created_at": now} for i in range(devices)])
        conn.execute(insert(DeviceState), [{"device_id": i + 1, "session": 1, "seq": 0, "last_seen": now,
                                            "online": True, "status_session": 1, "hb_session": 1, "hb_seq": 0}
                                           for i in range(devices)])
    engine.dispose()


def scraper(url: str, stop: mp.Event) -> None:  # type: ignore[valid-type]
    """Another process, scraping back to back like an impatient Prometheus."""
    with httpx.Client(timeout=60) as client:
        while not stop.is_set():  # type: ignore[attr-defined]
            client.get(f"{url}/metrics", headers={"Authorization": "Bearer bench"})


def commit_p99(writer: BatchWriter, devices: int, seconds: float, start_seq: int,
               schools: int = 60) -> tuple[float, int]:
    """Commit 500-heartbeat batches for ``seconds``; returns (p99 seconds, next seq)."""
    durations = []
    seq = start_seq
    deadline = time.monotonic() + seconds
    step = max(1, devices // 500)
    while time.monotonic() < deadline:
        seq += 1
        now = dt.datetime.now(dt.UTC)
        batch = []
        for i in range(0, devices, step)[:500]:
            topic = f"classfleet/v1/s{i % schools:02d}/pc-{i:05d}/heartbeat"
            raw = heartbeat(1, seq)
            batch.append(Accepted(decode(topic, raw), now, raw))
        started = time.perf_counter()
        writer.write(batch, [])
        durations.append(time.perf_counter() - started)
    return statistics.quantiles(durations, n=100)[98], seq


def main() -> None:
    """Seed, serve, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=30_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--scrape-seconds", type=float, default=35.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cf-scrape-") as tmp:
        url = f"sqlite:///{tmp}/classfleet.db"
        seed(url, args.devices)
        engine = db.make_engine(url)
        registry, _ = build_registry(engine, 180)
        peer_registry = CollectorRegistry(auto_describe=False)
        peer_registry.register(registry.classfleet_store)  # type: ignore[attr-defined]
        started = time.perf_counter()
        generate_latest(peer_registry)
        peer_s = time.perf_counter() - started
        settings = Settings(data_dir=Path(tmp), metrics_token="bench", auth=False)
        app = create_app(settings, engine, registry, refresh_metrics_ahead=True)  # as the controller serves it
        with serve_app(app) as base:
            times, size = [], 0
            with httpx.Client(timeout=60) as client:  # asks for gzip, as Prometheus does
                deadline = time.monotonic() + args.scrape_seconds
                while not times or time.monotonic() < deadline:
                    started = time.perf_counter()
                    response = client.get(f"{base}/metrics", headers={"Authorization": "Bearer bench"})
                    body = response.content  # decompressed by httpx, timed with it
                    times.append(time.perf_counter() - started)
                    size = response.num_bytes_downloaded
                    time.sleep(max(0.0, 1.0 - times[-1]))
            renderings = app.state.metrics_cache.renderings
            series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
            writer = BatchWriter(engine)
            quiet, seq = commit_p99(writer, args.devices, args.seconds, 0)
            stop = mp.Event()
            proc = mp.Process(target=scraper, args=(base, stop))
            proc.start()
            try:
                busy, _ = commit_p99(writer, args.devices, args.seconds, seq)
            finally:
                stop.set()
                proc.join(60)
            app.state.metrics_cache.close()
        engine.dispose()
    steady = times[1:] or times
    result = {"devices": args.devices, "series": series, "scrape_seconds_first": times[0],
              "scrape_seconds_median": statistics.median(steady), "scrape_seconds_max": max(steady),
              "scrapes": len(steady), "renderings": renderings, "scrape_bytes": len(body), "scrape_bytes_gzipped": size,
              "peer_prometheus_client_render_seconds": peer_s, "commit_p99_seconds_quiet": quiet,
              "commit_p99_seconds_scraped": busy, "commit_p99_ratio": busy / quiet}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"/metrics with {args.devices:,} devices: {series:,} series, {len(body) / 1e6:.1f} MB "
          f"({size / 1e6:.2f} MB gzipped); first scrape (rendered on demand) {times[0]:.2f} s; then {len(steady)} "
          f"scrapes over {renderings - 1} renderings ahead: median {result['scrape_seconds_median'] * 1000:.0f} ms, "
          f"max {result['scrape_seconds_max'] * 1000:.0f} ms (target < 1 s)")
    print(f"peer: prometheus-client's renderer over the same store gauges {peer_s:.2f} s; the first scrape is "
          f"{peer_s / times[0]:.1f}x faster, a scrape served from the snapshot rendered ahead "
          f"{peer_s / result['scrape_seconds_median']:.0f}x")
    print(f"batch commit p99: {quiet * 1000:.1f} ms unscraped, {busy * 1000:.1f} ms under back-to-back scrapes: "
          f"{result['commit_p99_ratio']:.2f}x (target ≤ 2x)")


if __name__ == "__main__":
    main()
