"""MQTT ingest: subscribe with a persistent session, validate, batch, commit, then acknowledge.

Threads, deliberately: paho's network loop runs in its own thread and its ``on_message`` only
enqueues; one writer thread drains the queue into batches (up to ``batch_max`` messages or
``batch_interval`` seconds), commits each batch in one transaction, and only then sends the
PUBACKs (paho-mqtt 2 ``manual_ack``). A crash before the commit leaves the messages
unacknowledged in the broker's session, which redelivers them; (device, session, seq) dedupe
makes the redelivery harmless.

Bounds (a slow or absent database slows acknowledgements, it never grows memory): QoS 1 messages
in the queue are bounded by the broker, which sends at most ``receive_maximum`` unacknowledged
ones per connection (the writer holds the PUBACKs, so the rest wait in the broker's persistent
session); QoS 0 has no broker-side bound, so a QoS 0 message that finds ``queue_max`` messages
queued is shed and counted (``classfleet_ingest_shed_total{reason="queue_full"}``). QoS 1 is
never shed. Optionally a per-device token bucket (``limits.DeviceRateLimiter``) refuses what one
device sends beyond its rate: QoS 0 is shed, QoS 1 goes to the dead-letter table with reason
``rate_limited`` (kept, never silently lost) and is acknowledged after that commit like any other
message; both count as ``shed_total{reason="rate_limited"}``. Either way other devices flow.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import exc as sa_exc

from classfleet_wire import MAX_PAYLOAD_BYTES, MessageKind, WireError, decode
from classfleet_wire.topics import SHARED_GROUP, TOPIC_ROOT

from ..metrics import IngestMetrics
from ..store.writer import Accepted, BatchOutcome, BatchWriter, Rejected
from .limits import DeviceRateLimiter

log = logging.getLogger(__name__)

# Errors that say the store is away rather than that it refuses the data: retry, never ack.
TRANSIENT_ERRORS = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                    sa_exc.TimeoutError)

# The controller reads what agents send; it never reads back the commands it publishes.
INGEST_SUFFIXES = (MessageKind.STATUS, MessageKind.HEARTBEAT, MessageKind.INVENTORY, MessageKind.EVENT,
                   MessageKind.CMD_ACK)

# The MQTT 5 Maximum Packet Size we announce: room for a payload at twice the wire limit plus topic and
# properties. Up to that an oversized payload reaches us and is dead-lettered (counted, kept); beyond it
# the broker does not send it at all, so a huge message never costs the controller memory.
MAX_PACKET_BYTES = 2 * MAX_PAYLOAD_BYTES + 4096


class ForeignTopics(Protocol):
    """Devices that speak another MQTT dialect (``controller.adapters``): their topics are subscribed to with
    ours, and every message outside ``classfleet/v1`` in a batch is handed to ``write`` before the batch is
    acknowledged; it returns its counts and what to dead-letter, and raises only transient store errors."""

    def subscriptions(self) -> list[str]: ...

    def write(self, items: Sequence[tuple[str, bytes, dt.datetime]]) -> tuple[BatchOutcome, list[Rejected]]: ...


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker is and how to log in."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None  # None: the system's trusted CAs


@dataclass(frozen=True, slots=True)
class _Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: dt.datetime
    generation: int  # connection the message came in on; PUBACKs never cross connections
    limited: bool = False  # over its device's rate limit: dead-lettered, not applied


class IngestService:
    """Owns the MQTT subscription and the batch-commit-ack loop."""

    def __init__(
        self,
        broker: BrokerAddress,
        writer: BatchWriter,
        metrics: IngestMetrics,
        *,
        client_id: str,
        batch_max: int = 500,
        batch_interval_s: float = 0.05,
        session_expiry_s: int = 7 * 24 * 3600,
        shared: bool = False,
        on_batch: Callable[[BatchOutcome], None] | None = None,
        queue_max: int = 10_000,
        limiter: DeviceRateLimiter | None = None,
        foreign: ForeignTopics | None = None,
        drain: bool = False,
    ) -> None:
        self._broker = broker
        # Drain mode (``classfleet broker drain``): take over a removed replica's session, unsubscribe at once so
        # the broker deals new messages to the live replicas, and store what the session holds.
        self._drain = drain
        self.received = 0
        self._last_message_at = time.monotonic()
        self._writer = writer
        self._metrics = metrics
        self._batch_max = batch_max
        self._batch_interval_s = batch_interval_s
        self._session_expiry_s = session_expiry_s
        self._shared = shared
        self._on_batch = on_batch
        self._queue_max = queue_max
        self._limiter = limiter
        self._foreign = foreign
        # The broker sends at most this many unacknowledged QoS 1 messages: more than a batch.
        self.receive_maximum = min(65535, max(2 * batch_max, 100))
        self._queue: queue.SimpleQueue[_Inbound] = queue.SimpleQueue()
        self._generation = 0
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._stopping = threading.Event()
        self._writing = threading.Event()  # a batch is between the queue and its acknowledgements
        self._worker: threading.Thread | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True
        )
        if broker.username:
            self._client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            self._client.tls_set(ca_certs=broker.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        self._client.max_inflight_messages_set(max(20, batch_max))
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_unsubscribe = lambda *_: self._subscribed.set()  # drain mode: unsubscribed counts as ready
        metrics.bind_queue_depth(self._queue.qsize)

    @property
    def connected(self) -> bool:
        """True while the broker session is up and the writer runs (drives /readyz)."""
        return self._connected.is_set() and self._worker is not None and self._worker.is_alive()

    def start(self) -> None:
        """Connect (asynchronously, retrying) and start the writer thread."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._session_expiry_s
        props.ReceiveMaximum = self.receive_maximum
        # Payloads over the wire limit are dead-lettered as oversized; far bigger ones are not sent to us.
        props.MaximumPacketSize = MAX_PACKET_BYTES
        self._client.connect_async(self._broker.host, self._broker.port, keepalive=30, clean_start=False,
                                   properties=props)
        self._worker = threading.Thread(target=self._run_writer, name="ingest-writer", daemon=True)
        self._worker.start()
        self._client.loop_start()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> bool:
        """Publish on the controller's own session (commands); False if not connected right now."""
        if not self._connected.is_set():
            return False
        info = self._client.publish(topic, payload, qos=qos, retain=False)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def stop(self, timeout: float = 10.0, end_session: bool = False) -> None:
        """Commit and acknowledge what is queued, then disconnect. The session stays on the broker, unless
        ``end_session``: then the broker forgets it (and its subscriptions) at once."""
        self._stopping.set()
        if self._worker is not None:
            self._worker.join(timeout)
        properties = None
        if end_session:
            properties = Properties(PacketTypes.DISCONNECT)
            properties.SessionExpiryInterval = 0
        self._client.disconnect(properties=properties)
        self._client.loop_stop()

    def wait_drained(self, quiet_s: float, timeout: float) -> bool:
        """Drain mode: True once nothing has arrived for ``quiet_s`` and everything received is committed and
        acknowledged; False if that did not happen within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            idle = time.monotonic() - self._last_message_at
            if self._connected.is_set() and self._subscribed.is_set() and idle >= quiet_s \
                    and self._queue.empty() and not self._writing.is_set():
                return True
            time.sleep(0.1)
        return False

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected and subscribed (for the CLI and tests)."""
        return self._subscribed.wait(timeout) and self._connected.wait(0)

    # paho callbacks: run on paho's thread, never block, never touch the database.
    def _on_connect(self, client: mqtt.Client, _userdata: object, _flags: object, reason: object,
                    _props: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused the connection: %s", reason)
            return
        self._generation += 1
        options = SubscribeOptions(qos=1)
        topics = [(f"{TOPIC_ROOT}/+/+/{suffix.value}", options) for suffix in INGEST_SUFFIXES]
        topics += [(t, options) for t in (self._foreign.subscriptions() if self._foreign else ())]
        if self._shared:
            topics = [(f"$share/{SHARED_GROUP}/{t}", o) for t, o in topics]
        if self._drain:  # what the session holds is still delivered; nothing new is dealt to it
            client.unsubscribe([t for t, _ in topics])
        else:
            client.subscribe(topics)
        self._connected.set()
        log.info("connected to broker %s:%d (session kept: %s)", self._broker.host, self._broker.port,
                 getattr(_flags, "session_present", "?"))

    def _on_disconnect(self, _client: mqtt.Client, _userdata: object, _flags: object, reason: object,
                       _props: object) -> None:
        if self._connected.is_set() and not self._stopping.is_set():
            log.warning("disconnected from broker: %s; reconnecting", reason)
        self._connected.clear()
        self._subscribed.clear()

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        self.received += 1
        self._last_message_at = time.monotonic()
        limited = self._limiter is not None and not self._limiter.allow(msg.topic)
        if msg.qos == 0 and (limited or self._queue.qsize() >= self._queue_max):
            self._metrics.shed.labels("rate_limited" if limited else "queue_full").inc()
            return
        if limited:
            self._metrics.shed.labels("rate_limited").inc()
        self._queue.put(_Inbound(msg.topic, msg.payload, msg.mid, msg.qos, dt.datetime.now(dt.UTC),
                                 self._generation, limited))

    # The writer thread.
    def _run_writer(self) -> None:
        while True:
            batch = self._collect()
            if batch:
                try:
                    self._commit_with_retry(batch)
                except Exception:  # a bug, not the store (that is retried in _store): never stall ingest over it
                    self._metrics.writer_errors.inc()
                    log.exception("ingest writer failed on a batch of %d messages; reconnecting so the broker "
                                  "delivers them again", len(batch))
                    self._redeliver()
                finally:
                    self._writing.clear()
            elif self._stopping.is_set():
                return

    def _redeliver(self) -> None:
        """Reconnect with the session kept: the broker sends every unacknowledged message again, and this
        connection's window (receive maximum), which unacknowledged messages would hold forever, is free again.
        Acknowledgements of messages received before are skipped from then on (their generation is old)."""
        if self._stopping.is_set():
            return
        self._client.disconnect()
        self._client.loop_stop()
        self._generation += 1  # before the new connection delivers anything: the old batch is never acked
        try:
            self._client.reconnect()
        except OSError as exc:  # the broker is away: paho's loop keeps retrying
            log.warning("reconnecting to the broker failed (%s); retrying", exc)
        self._client.loop_start()

    def _collect(self) -> list[_Inbound]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        self._writing.set()  # cleared by _run_writer once the batch is committed and acknowledged
        batch = [first]
        deadline = time.monotonic() + self._batch_interval_s
        while len(batch) < self._batch_max:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _commit_with_retry(self, batch: list[_Inbound]) -> None:
        foreign = [(i.topic, i.payload, i.received_at) for i in batch if self._is_foreign(i)]
        accepted, rejected = self._validate([i for i in batch if not self._is_foreign(i)] if foreign else batch)
        outcome = self._store(accepted, rejected, foreign)
        if outcome is None:
            return  # shutting down while the store is away: the broker keeps them unacknowledged
        self._metrics.record(outcome)
        for item in batch:
            if item.qos > 0 and item.generation == self._generation:
                self._client.ack(item.mid, item.qos)
        lag = (dt.datetime.now(dt.UTC) - batch[0].received_at).total_seconds()
        self._metrics.ingest_lag_seconds.set(lag)
        if self._on_batch is not None:
            self._on_batch(outcome)

    def _is_foreign(self, item: _Inbound) -> bool:
        """A message of another dialect (a plug), for the adapters; rate-limited ones are dead-lettered here."""
        return self._foreign is not None and not item.limited and not item.topic.startswith(TOPIC_ROOT + "/")

    def _store(self, accepted: list[Accepted], rejected: list[Rejected],
               foreign: Sequence[tuple[str, bytes, dt.datetime]] = ()) -> BatchOutcome | None:
        """Commit, retrying while the store is unreachable; a batch the store refuses is bisected."""
        delay, failing = 0.5, False
        plugs: BatchOutcome | None = None
        while True:
            started = time.perf_counter()
            try:
                if foreign and self._foreign is not None:  # first: storing them again on a retry is harmless
                    plugs, refused = self._foreign.write(foreign)
                    foreign, rejected = (), rejected + refused
                outcome = self._writer.write(accepted, rejected)
                if plugs is not None:
                    outcome = outcome.merged(plugs)
            except TRANSIENT_ERRORS as exc:  # database down, locked or full: never ack, retry
                if not failing:
                    log.error("cannot commit a batch of %d messages (%s); retrying", len(accepted) + len(rejected),
                              type(exc).__name__)
                    failing = True
                self._metrics.commit_failures.inc()
                if self._stopping.is_set() and delay > 4:
                    return None
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            except Exception as exc:  # the store refuses something in this batch: find it
                return self._isolate(accepted, rejected, exc)
            if failing:
                log.info("store reachable again: batch committed")
            self._metrics.batch_commit_seconds.observe(time.perf_counter() - started)
            return outcome

    def _isolate(self, accepted: list[Accepted], rejected: list[Rejected], exc: Exception) -> BatchOutcome | None:
        """Split a refused batch until the message the store refuses is alone; dead-letter that one."""
        if len(accepted) + len(rejected) > 1:
            half_a, half_r = (len(accepted) + 1) // 2, len(rejected) // 2
            first = self._store(accepted[:half_a], rejected[:half_r])
            second = self._store(accepted[half_a:], rejected[half_r:])
            return None if first is None or second is None else first.merged(second)
        reason = f"{type(exc).__name__}: {exc}"[:500]
        if accepted:
            item = accepted[0]
            log.warning("store refused a message from %s/%s: %s", item.message.school, item.message.device, reason)
            return self._store([], [Rejected(item.topic, "store_rejected", reason, item.raw, item.received_at)])
        log.error("store refused a dead letter on %s (%s); dropping it", rejected[0].topic, reason)
        self._metrics.dropped.inc()
        return BatchOutcome()

    @staticmethod
    def _validate(batch: list[_Inbound]) -> tuple[list[Accepted], list[Rejected]]:
        accepted: list[Accepted] = []
        rejected: list[Rejected] = []
        for item in batch:
            if item.limited:
                rejected.append(Rejected(item.topic, "rate_limited", "over the device's rate limit", item.payload,
                                         item.received_at))
                continue
            try:
                accepted.append(Accepted(decode(item.topic, item.payload), item.received_at, item.payload))
            except WireError as exc:
                log.debug("rejected %s: %s", item.topic, exc)
                rejected.append(Rejected(item.topic, exc.reason, exc.detail, item.payload, item.received_at))
        return accepted, rejected
