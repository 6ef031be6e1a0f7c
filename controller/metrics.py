"""Prometheus metrics: a collector that reads the store at scrape time, and ingest counters.

The registry is always injected (never the global one), so each app and each test has its own.
Device series come from the store's current state, so a deleted device leaves no stale series.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from .store.health import health_expr
from .store.models import HEALTH_STATES, Device, DeviceComponent, DeviceState, EquipmentPlan, Incident, Room
from .store.writer import BatchOutcome

if TYPE_CHECKING:
    from .cluster import Cluster

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
        self.shed = Counter(
            "classfleet_ingest_shed", "Messages refused before the store: QoS 0 dropped when the queue is full "
            "(queue_full), and a device's messages over its rate limit (rate_limited: QoS 0 dropped, QoS 1 "
            "dead-lettered).", ["reason"], registry=registry,
        )
        self.commit_failures = Counter(
            "classfleet_ingest_commit_failures", "Batch commits that failed and were retried.", registry=registry
        )
        self.writer_errors = Counter(
            "classfleet_ingest_writer_errors", "Batches the ingest writer failed on unexpectedly (a bug): left "
            "unacknowledged and fetched again from the broker by reconnecting.", registry=registry,
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
        for kind in ("status", "heartbeat", "inventory", "event", "cmd/ack"):
            self.messages.labels(kind)
        for reason in ("invalid_json", "schema", "oversized", "invalid_utf8", "identity_mismatch",
                       "unknown_school", "bad_topic", "unsupported_version", "store_rejected", "rate_limited"):
            self.rejected.labels(reason)
        for reason in ("queue_full", "rate_limited"):
            self.shed.labels(reason)

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


class PollMetrics:
    """The pollers' own health (DESIGN §7 "poll durations"), labelled by poller kind only (bounded):
    time per round and per device check, rounds, rounds that failed, and checks that got no answer."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.round_seconds = Histogram(
            "classfleet_poll_duration_seconds", "Time of one poll round over every due device, by poller.",
            ["poller"], registry=registry, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
        )
        self.check_seconds = Histogram(
            "classfleet_poll_check_duration_seconds", "Time to check one device, by poller.", ["poller"],
            registry=registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.rounds = Counter("classfleet_poll_rounds", "Poll rounds completed, by poller.", ["poller"],
                              registry=registry)
        self.round_errors = Counter("classfleet_poll_round_errors", "Poll rounds that failed (e.g. the store was "
                                    "away), by poller.", ["poller"], registry=registry)
        self.check_failures = Counter("classfleet_poll_check_failures", "Device checks that got no answer "
                                      "(timeout, unreachable), by poller.", ["poller"], registry=registry)

    def declare(self, poller: str) -> None:
        """Create a poller's series at 0 when it starts, so rates exist before its first round ends."""
        for metric in (self.round_seconds, self.check_seconds, self.rounds, self.round_errors, self.check_failures):
            metric.labels(poller)

    def apply(self, relayed: tuple[str, str, str, float]) -> None:
        """Record one observation a worker process relayed (``PollMetricsRelay``) as if made here."""
        attribute, poller, method, value = relayed
        if attribute not in RELAYED_METRICS or method not in ("observe", "inc"):
            raise ValueError(f"not a relayed poll metric: {relayed!r}")
        getattr(getattr(self, attribute).labels(poller), method)(value)


RELAYED_METRICS = ("round_seconds", "check_seconds", "rounds", "round_errors", "check_failures")


class PollMetricsRelay:
    """``PollMetrics`` as a poller in a worker process sees it: each observation is put on a queue that the
    parent applies to its own registry (``PollMetrics.apply``), so /metrics shows the workers' polls and the
    series survive a worker's restart. Never blocks a poll: when the queue is full the observation is dropped."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        self.dropped = 0
        for attribute in RELAYED_METRICS:
            setattr(self, attribute, _RelayedMetric(self, attribute))

    def declare(self, poller: str) -> None:
        """The parent declares the series; nothing to do here."""

    def put(self, relayed: tuple[str, str, str, float]) -> None:
        """Queue one observation for the parent."""
        try:
            self._queue.put_nowait(relayed)
        except Exception:  # noqa: BLE001 - queue.Full: a metric is not worth stalling a poll for
            self.dropped += 1


class _RelayedMetric:
    def __init__(self, relay: PollMetricsRelay, attribute: str) -> None:
        self._relay, self._attribute = relay, attribute

    def labels(self, poller: str) -> _RelayedChild:
        return _RelayedChild(self._relay, self._attribute, poller)


class _RelayedChild:
    def __init__(self, relay: PollMetricsRelay, attribute: str, poller: str) -> None:
        self._relay, self._attribute, self._poller = relay, attribute, poller

    def observe(self, value: float) -> None:
        self._relay.put((self._attribute, self._poller, "observe", float(value)))

    def inc(self, value: float = 1.0) -> None:
        self._relay.put((self._attribute, self._poller, "inc", float(value)))


INFO_EXTRA_LABELS = ("room_kind", "vendor", "model", "watched_by")  # classfleet_device_info's, after the device's


class StoreCollector(Collector):
    """Device metrics read from the store at scrape time."""

    def __init__(self, engine: Engine, offline_after_s: float, clock: Callable[[], dt.datetime] | None = None):
        self._engine = engine
        self._offline_after_s = offline_after_s
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def collect(self) -> Iterator[Metric]:
        """Yield the fleet gauges as prometheus-client families (the slow, general path)."""
        families, error = self._families(GaugeMetricFamily)
        yield from families.values()
        yield error

    def render(self) -> bytes:
        """The same gauges as exposition text, written directly: about ten times faster than
        prometheus-client's renderer, which matters at tens of thousands of devices (ingest shares the GIL)."""
        families, error = self._families(_TextFamily)
        return "".join(f.text() for f in (*families.values(), error)).encode()  # type: ignore[attr-defined]

    def _families(self, family: Any) -> tuple[dict[str, Any], Any]:
        """Read the store into families of the given class; a store error sets the scrape-error gauge."""
        GaugeMetricFamily = family  # noqa: N806 - same construction for both renderers
        families = {
            "up": GaugeMetricFamily("classfleet_device_up", "1 if the device is up (health ok or degraded).",
                                    labels=["school", "device", "device_kind"]),
            "last_seen": GaugeMetricFamily("classfleet_device_last_seen_timestamp_seconds",
                                           "When the device was last heard from (Unix time).",
                                           labels=["school", "device", "device_kind"]),
            "info": GaugeMetricFamily("classfleet_device_info", "Device metadata (value 1).",
                                      labels=["school", "device", "device_kind", *INFO_EXTRA_LABELS]),
            "counts": GaugeMetricFamily("classfleet_devices", "Devices by school, kind and health.",
                                        labels=["school", "device_kind", "health"]),
            "planned": GaugeMetricFamily("classfleet_devices_planned", "Devices planned (bought) per school and kind.",
                                         labels=["school", "device_kind"]),
            "rooms": GaugeMetricFamily("classfleet_rooms", "Rooms by school and kind.", labels=["school", "room_kind"]),
            "incidents": GaugeMetricFamily("classfleet_incidents_open", "Open incidents by school, code, severity.",
                                           labels=["school", "code", "severity"]),
            "ports": GaugeMetricFamily("classfleet_switch_ports", "Switch ports by status.",
                                       labels=["school", "device", "status"]),
            "uplink": GaugeMetricFamily("classfleet_switch_uplink_up", "1 if the switch's uplink port is up.",
                                        labels=["school", "device"]),
        }
        error = GaugeMetricFamily("classfleet_store_scrape_error", "1 if reading the store failed.", labels=[])
        try:
            self._read(families)
            error.add_metric([], 0)
        except Exception:  # the store is down: say so, keep /metrics answering
            log.exception("cannot read the store for metrics")
            error.add_metric([], 1)
        return families, error

    def _read(self, f: dict[str, GaugeMetricFamily]) -> None:
        health = health_expr(self._clock(), self._offline_after_s).label("health")
        totals: dict[tuple[str, str, str], int] = {}
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(Device.school_id, Device.uid, Device.kind, health, DeviceState.last_seen, Room.kind,
                       Device.vendor, Device.model, Device.watched_by)
                .outerjoin(DeviceState, DeviceState.device_id == Device.id)
                .outerjoin(Room, Room.id == Device.room_id)
                .where(Device.lifecycle == "active")
            )
            text = isinstance(f["up"], _TextFamily)  # the fast path formats each device's labels once
            for school, uid, kind, state, last_seen, room_kind, vendor, model, watched_by in rows:
                up = 1.0 if state in ("ok", "degraded") else 0.0
                extra = [room_kind or "", (vendor or "")[:64], (model or "")[:64], watched_by]
                if text:
                    labels = f'school="{_escape(school)}",device="{_escape(uid)}",device_kind="{_escape(kind)}"'
                    f["up"].add_labelled(labels, up)
                    if last_seen is not None:
                        f["last_seen"].add_labelled(labels, last_seen.timestamp())
                    f["info"].add_labelled(labels + "," + _label_text(INFO_EXTRA_LABELS, extra), 1.0)
                else:
                    f["up"].add_metric([school, uid, kind], up)
                    if last_seen is not None:
                        f["last_seen"].add_metric([school, uid, kind], last_seen.timestamp())
                    f["info"].add_metric([school, uid, kind, *extra], 1.0)
                totals[(school, kind, state)] = totals.get((school, kind, state), 0) + 1
            for school, kind, n in conn.execute(
                select(EquipmentPlan.school_id, EquipmentPlan.device_kind, func.sum(EquipmentPlan.planned))
                .group_by(EquipmentPlan.school_id, EquipmentPlan.device_kind)
            ):
                f["planned"].add_metric([school, kind], float(n or 0))
            for school, kind, n in conn.execute(
                select(Room.school_id, Room.kind, func.count()).group_by(Room.school_id, Room.kind)
            ):
                f["rooms"].add_metric([school, kind], n)
            for school, code, severity, n in conn.execute(
                select(Incident.school_id, Incident.code, Incident.severity, func.count())
                .where(Incident.state != "resolved").group_by(Incident.school_id, Incident.code, Incident.severity)
            ):
                f["incidents"].add_metric([school, code, severity], n)
            ports: dict[tuple[str, str], dict[str, int]] = {}
            for school, uid, status, data in conn.execute(
                select(Device.school_id, Device.uid, DeviceComponent.status, DeviceComponent.data)
                .join(DeviceComponent, DeviceComponent.device_id == Device.id)
                .where(DeviceComponent.kind == "port", Device.lifecycle == "active")
            ):
                by_status = ports.setdefault((school, uid), {})
                by_status[status] = by_status.get(status, 0) + 1
                if (data or {}).get("uplink"):
                    f["uplink"].add_metric([school, uid], 1.0 if status == "up" else 0.0)
            for (school, uid), by_status in sorted(ports.items()):
                for status, n in sorted(by_status.items()):
                    f["ports"].add_metric([school, uid, status], n)
        for school, kind in sorted({(s, k) for s, k, _ in totals}):
            for state in HEALTH_STATES:
                f["counts"].add_metric([school, kind, state], totals.get((school, kind, state), 0))


class _TextFamily:
    """A gauge family that formats its samples as exposition text as they are added."""

    def __init__(self, name: str, documentation: str, labels: list[str]) -> None:
        self._head = f"# HELP {name} {documentation}\n# TYPE {name} gauge\n"
        self._name = name
        self._labels = labels
        self._lines: list[str] = []

    def add_metric(self, values: list[str], value: float) -> None:
        """One sample."""
        if self._labels:
            self.add_labelled(_label_text(self._labels, values), value)
        else:
            self._lines.append(f"{self._name} {float(value)!r}\n")

    def add_labelled(self, labels: str, value: float) -> None:
        """One sample whose label text (``k="v",…``, escaped, in the family's label order) is already made."""
        self._lines.append(f"{self._name}{{{labels}}} {float(value)!r}\n")

    def text(self) -> str:
        """HELP, TYPE and the samples."""
        return self._head + "".join(self._lines)


def _label_text(names: list[str] | tuple[str, ...], values: list[str]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in zip(names, values, strict=True))


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def render_metrics(registry: CollectorRegistry) -> bytes:
    """The controller's exposition: its own metrics, then the store's fleet gauges (fast path)."""
    from prometheus_client import generate_latest

    store: StoreCollector | None = getattr(registry, "classfleet_store", None)
    return generate_latest(registry) + (store.render() if store is not None else b"")


def build_registry(engine: Engine, offline_after_s: float) -> tuple[CollectorRegistry, IngestMetrics]:
    """A fresh registry with the store collector and the ingest metrics."""
    registry = CollectorRegistry(auto_describe=False)
    # The store's gauges are rendered by render_metrics' fast path, not through the registry.
    registry.classfleet_store = StoreCollector(engine, offline_after_s)  # type: ignore[attr-defined]
    registry.classfleet_polls = PollMetrics(registry)  # type: ignore[attr-defined]
    return registry, IngestMetrics(registry)


class ClusterCollector(Collector):
    """This replica's view of the cluster, read at scrape time: live members, the singleton tasks it runs
    (one series per task, a fixed set), and how many schools its pollers own."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def collect(self) -> Iterator[Metric]:
        """Three small gauges."""
        snap = self._cluster.snapshot()
        yield GaugeMetricFamily("classfleet_cluster_members", "Live controller replicas, as this one sees them.",
                                value=snap.members)
        leader = GaugeMetricFamily("classfleet_cluster_leader", "1 on the replica that runs the singleton task.",
                                   labels=["task"])
        for task, held in sorted(snap.leader.items()):
            leader.add_metric([task], 1.0 if held else 0.0)
        yield leader
        yield GaugeMetricFamily("classfleet_cluster_schools_owned", "Schools whose devices this replica's pollers "
                                "check (rendezvous hashing over the live replicas).", value=snap.schools_owned)


def cluster_metrics(registry: CollectorRegistry, cluster: Cluster) -> None:
    """Register this replica's cluster gauges."""
    registry.register(ClusterCollector(cluster))


def poll_metrics(registry: CollectorRegistry) -> PollMetrics:
    """The registry's poller metrics (made by ``build_registry``; a bare registry gets its own)."""
    metrics: PollMetrics | None = getattr(registry, "classfleet_polls", None)
    if metrics is None:
        metrics = registry.classfleet_polls = PollMetrics(registry)  # type: ignore[attr-defined]
    return metrics
