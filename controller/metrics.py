"""Prometheus metrics: a collector that reads the store at scrape time, and ingest counters.

The registry is always injected (never the global one), so each app and each test has its own.
Device series come from the store's current state, so a deleted device leaves no stale series.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from .store.health import health_expr
from .store.models import HEALTH_STATES, Device, DeviceState, Incident
from .store.writer import BatchOutcome

log = logging.getLogger(__name__)


class IngestMetrics:
    """The controller's own ingest health: messages, rejections, commit time, lag, queue depth."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "classfleet_ingest_messages", "Messages accepted and committed, by kind.", ["kind"], registry=registry
        )
        self.rejected = Counter(
            "classfleet_ingest_rejected", "Messages rejected to the dead-letter table, by reason.", ["reason"],
            registry=registry,
        )
        self.duplicates = Counter(
            "classfleet_ingest_duplicates", "Redelivered messages recognised by (device, session, seq).",
            registry=registry,
        )
        self.registered = Counter(
            "classfleet_ingest_devices_registered", "Unknown devices registered as unassigned.", registry=registry
        )
        self.dropped = Counter(
            "classfleet_ingest_dropped", "Messages neither storable nor dead-letterable (should stay 0).",
            registry=registry,
        )
        self.commit_failures = Counter(
            "classfleet_ingest_commit_failures", "Batch commits that failed and were retried.", registry=registry
        )
        self.batch_commit_seconds = Histogram(
            "classfleet_ingest_batch_commit_seconds", "Time to commit one ingest batch.", registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.ingest_lag_seconds = Gauge(
            "classfleet_ingest_lag_seconds", "Receive-to-acknowledge delay of the last batch.", registry=registry
        )
        self._queue_depth = Gauge(
            "classfleet_ingest_queue_depth", "Messages received but not yet committed.", registry=registry
        )
        # Pre-create the label values users alert on, so rates start at 0 rather than absent.
        for reason in ("invalid_json", "schema", "oversized", "invalid_utf8", "identity_mismatch",
                       "unknown_school", "bad_topic", "unsupported_version", "store_rejected"):
            self.rejected.labels(reason)

    def bind_queue_depth(self, fn: Callable[[], int]) -> None:
        """Report the live queue depth at scrape time."""
        self._queue_depth.set_function(fn)

    def record(self, outcome: BatchOutcome) -> None:
        """Count one committed batch."""
        for kind, n in outcome.applied.items():
            self.messages.labels(kind).inc(n)
        for reason, n in outcome.rejected.items():
            self.rejected.labels(reason).inc(n)
        if outcome.duplicates:
            self.duplicates.inc(outcome.duplicates)
        if outcome.registered:
            self.registered.inc(outcome.registered)


class StoreCollector(Collector):
    """Device metrics read from the store at scrape time."""

    def __init__(self, engine: Engine, offline_after_s: float, clock: Callable[[], dt.datetime] | None = None):
        self._engine = engine
        self._offline_after_s = offline_after_s
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def collect(self) -> Iterator[Metric]:
        """Yield the device gauges; a store error yields a scrape-error gauge instead of failing."""
        up = GaugeMetricFamily("classfleet_device_up", "1 if the device is up (health ok or degraded).",
                               labels=["school", "device", "device_kind"])
        counts = GaugeMetricFamily("classfleet_devices", "Devices by school, kind and health.",
                                   labels=["school", "device_kind", "health"])
        incidents = GaugeMetricFamily("classfleet_incidents_open", "Open incidents by school, code, severity.",
                                      labels=["school", "code", "severity"])
        error = GaugeMetricFamily("classfleet_store_scrape_error", "1 if reading the store failed.")
        health = health_expr(self._clock(), self._offline_after_s).label("health")
        totals: dict[tuple[str, str, str], int] = {}
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(Device.school_id, Device.uid, Device.kind, health)
                    .outerjoin(DeviceState, DeviceState.device_id == Device.id)
                    .where(Device.lifecycle == "active")
                )
                for school, uid, kind, state in rows:
                    up.add_metric([school, uid, kind], 1.0 if state in ("ok", "degraded") else 0.0)
                    totals[(school, kind, state)] = totals.get((school, kind, state), 0) + 1
                open_rows = conn.execute(
                    select(Incident.school_id, Incident.code, Incident.severity, func.count())
                    .where(Incident.state != "resolved")
                    .group_by(Incident.school_id, Incident.code, Incident.severity)
                )
                for school, code, severity, n in open_rows:
                    incidents.add_metric([school, code, severity], n)
            error.add_metric([], 0)
        except Exception:  # the store is down: say so, keep /metrics answering
            log.exception("cannot read the store for metrics")
            error.add_metric([], 1)
        schools_kinds = {(s, k) for s, k, _ in totals}
        for school, kind in sorted(schools_kinds):
            for state in HEALTH_STATES:
                counts.add_metric([school, kind, state], totals.get((school, kind, state), 0))
        yield up
        yield counts
        yield incidents
        yield error


def build_registry(engine: Engine, offline_after_s: float) -> tuple[CollectorRegistry, IngestMetrics]:
    """A fresh registry with the store collector and the ingest metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(engine, offline_after_s))
    return registry, IngestMetrics(registry)
