"""/metrics renderings: on demand at most once per TTL, or rendered ahead so that no scrape waits for one."""

from __future__ import annotations

import gzip
import itertools
import threading
import time

import pytest

from controller.api.app import MetricsCache
from tests.helpers import wait_for


class SlowRenderer:
    """Renders ``n=<count> at=<monotonic>``, taking ``seconds`` each time (as 30,000 devices take ~0.5 s)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.count = itertools.count(1)
        self.fail = False
        self.threads: set[str] = set()

    def __call__(self) -> bytes:
        self.threads.add(threading.current_thread().name)
        if self.fail:
            raise RuntimeError("store away")
        at = time.monotonic()
        time.sleep(self.seconds)
        return f"n={next(self.count)} at={at}\n".encode()


def _started_at(body: bytes) -> float:
    return float(body.split(b"at=")[1])


def test_without_a_ttl_every_scrape_renders():
    render = SlowRenderer(0)
    cache = MetricsCache(render, ttl=0, refresh_ahead=True)
    assert [cache.get().split()[0] for _ in range(3)] == [b"n=1", b"n=2", b"n=3"]
    assert cache._refresher is None  # nothing to render ahead of


def test_on_demand_renders_once_per_ttl():
    render = SlowRenderer(0)
    cache = MetricsCache(render, ttl=0.3)
    first = cache.get()
    assert cache.get() == first and gzip.decompress(cache.get(gzipped=True)) == first
    time.sleep(0.35)
    assert cache.get() != first and cache.renderings == 2


def test_rendering_ahead_no_scrape_waits_and_data_stays_fresh():
    render = SlowRenderer(0.6)
    ttl = 1.0
    cache = MetricsCache(render, ttl=ttl, refresh_ahead=True)
    started = time.monotonic()
    cache.get(gzipped=True)  # the first scrape renders
    assert time.monotonic() - started >= 0.6
    waits, ages, bodies = [], [], set()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        asked = time.monotonic()
        body = gzip.decompress(cache.get(gzipped=True))
        waits.append(time.monotonic() - asked)
        ages.append(asked - _started_at(body))
        bodies.add(body)
        time.sleep(0.05)
    assert max(waits) < 0.4, max(waits)  # a scrape copies bytes; it never waits out a 0.6 s rendering
    assert max(ages) <= ttl + 0.6 + 0.4, max(ages)  # at most a TTL and one rendering old (+ scheduling)
    assert len(bodies) >= 4  # a new snapshot about every TTL
    assert "classfleet-metrics-render" in render.threads
    cache.close()
    assert cache._refresher is None


def test_rendering_ahead_stops_when_nobody_scrapes_and_resumes_on_demand():
    render = SlowRenderer(0.05)
    cache = MetricsCache(render, ttl=0.2, refresh_ahead=True, idle_after=0.5)
    cache.get()
    wait_for(lambda: cache._refresher is None, timeout=5, what="the renderer to stop without scrapes")
    stopped_at = cache.renderings
    time.sleep(0.5)
    assert cache.renderings == stopped_at  # nothing rendered for nobody
    body = cache.get()  # the first scrape after the pause renders on demand: fresh data
    assert cache.renderings == stopped_at + 1 and time.monotonic() - _started_at(body) < 0.5  # stale: > 0.7 s old
    assert cache._refresher is not None
    cache.close()


def test_a_failing_rendering_ahead_is_logged_and_the_next_scrape_reports_it(caplog):
    render = SlowRenderer(0.01)
    cache = MetricsCache(render, ttl=0.2, refresh_ahead=True)
    cache.get()
    render.fail = True
    wait_for(lambda: cache._refresher is None, timeout=5, what="the renderer to give up")
    assert "rendering /metrics ahead failed: RuntimeError: store away" in caplog.text
    time.sleep(0.2)
    with pytest.raises(RuntimeError, match="store away"):  # the scrape fails visibly, no stale data forever
        cache.get()
    render.fail = False
    assert cache.get().startswith(b"n=")
    cache.close()
