"""Per-device rate limits for ingest: one token bucket per (school, device).

A misbehaving agent (a fault that flaps in a loop, a bug that resends its spool forever) must not
crowd out the rest of a school. Each device may send ``burst`` messages at once and then
``rate_per_s`` a second; what it sends beyond that is refused by ``allow`` and the ingest service
sheds it (QoS 0) or dead-letters it (QoS 1, see ``controller.ingest.service``). The default burst is
large enough for an agent to replay a week of spooled heartbeats after an outage in one go.

Runs on paho's network thread for every message, so it is a dict lookup and a little arithmetic;
the table is pruned of full (idle) buckets so a stream of made-up device ids cannot grow it forever.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from classfleet_wire.topics import TOPIC_ROOT

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger(__name__)

_PREFIX = TOPIC_ROOT + "/"


def device_key(topic: str) -> str:
    """``school/device`` of a classfleet topic; any other topic (a foreign device) is its own key."""
    if topic.startswith(_PREFIX):
        parts = topic.split("/", 4)
        if len(parts) >= 4:
            return f"{parts[2]}/{parts[3]}"
    return topic


class DeviceRateLimiter:
    """Token buckets keyed by device; ``allow(topic)`` spends one token or says no."""

    def __init__(self, rate_per_s: float, burst: int, *, max_devices: int = 200_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self._max_devices = max_devices
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, last refill time]
        self._limited: set[str] = set()  # devices refused since they last had a token: log transitions only

    def allow(self, topic: str) -> bool:
        """True if the device that sent on ``topic`` is within its limit (one token spent)."""
        key = device_key(topic)
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_devices:
                self._prune(now)
            self._buckets[key] = [self.burst - 1.0, now]
            return True
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate_per_s)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            if self._limited and key in self._limited:
                self._limited.discard(key)
                log.info("device %s is within its rate limit again", key)
            return True
        bucket[0] = tokens
        if key not in self._limited:
            self._limited.add(key)
            log.warning("device %s exceeds its rate limit (%g msg/s, burst %d): refusing its excess messages",
                        key, self.rate_per_s, self.burst)
        return False

    def __len__(self) -> int:
        return len(self._buckets)

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled: a new bucket starts full, so nothing changes for them."""
        full = [k for k, (tokens, last) in self._buckets.items()
                if tokens + (now - last) * self.rate_per_s >= self.burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self._max_devices:  # every device is busy: start afresh rather than grow
            self._buckets.clear()
        self._limited &= self._buckets.keys()


def device_limiter(settings: Settings) -> DeviceRateLimiter | None:
    """The limiter the settings ask for (``ingest_device_rate_per_s`` 0: none)."""
    rate = settings.ingest_device_rate_per_s
    return DeviceRateLimiter(rate, settings.ingest_device_burst) if rate > 0 else None
