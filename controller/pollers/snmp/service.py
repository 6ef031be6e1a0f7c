"""The SNMP poller service: polls the store's ``watched_by="snmp"`` devices on its own thread and event
loop (so a province-sized poll never stalls the controller's API or ingest) and records each result
through ``controller.store.polls.record_polls``.

Credentials are never stored: a device's ``credential_ref`` names an environment variable whose value is
one of (see ``parse_credential``)::

    public                                   community, SNMPv2c
    v1:public / v2c:public                   community with an explicit version
    v3:USER:AUTHPROTO:AUTHKEY:PRIVPROTO:PRIVKEY   SNMPv3 authPriv, e.g. v3:nms:SHA256:authpass:AES:privpass
    v3:USER:AUTHPROTO:AUTHKEY                SNMPv3 authNoPriv
    {"version": "3", "user": …, "auth_protocol": …, "auth_key": …, "priv_protocol": …, "priv_key": …}

A device with no ``credential_ref`` is asked with community ``public`` over v2c. ``poll_profile`` names
a class of ``modules.toml`` and may carry the uplink port: ``switch;uplink=Gi1/0/48``.

With ``trap_port`` set, a trap receiver runs on the same loop: a linkDown/linkUp/coldStart/warmStart from
a device's address re-polls that device at once; refused or malformed traps become dead letters
(topic ``snmp-trap/<ip>:<port>``, reasons ``malformed_trap``, ``bad_community``, ``auth_failed``,
``unknown_source``).

With several controller replicas, ``membership`` (``controller.cluster``) keeps only the schools this replica
owns among the live replicas; the device list is re-read as soon as the members change. A trap from a switch
another replica polls is left to that replica's schedule (not a dead letter).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import json
import logging
import os
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select

from ...store.models import Device, DeviceComponent
from ...store.polls import PollResult, record_polls
from ...store.writer import BatchWriter, Rejected
from .meaning import Uplink
from .poller import PollTarget, SnmpPoller
from .transport import AUTH_PROTOCOLS, PRIV_PROTOCOLS, PysnmpTransport, Target, V3Credentials
from .trap import TrapEvent, TrapReceiver, TrapUser

if TYPE_CHECKING:
    from ...cluster import Membership
    from ...metrics import PollMetrics

log = logging.getLogger(__name__)
MAX_REJECTED_PER_BATCH = 1000  # a flood of junk datagrams must not flood the dead-letter table
UNANSWERED = frozenset({"timeout", "transport"})  # poll failures counted as checks that got no answer


def parse_address(address: str, default_port: int = 161) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` → (host, port)."""
    address = address.strip()
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if address.count(":") == 1:
        host, port = address.split(":")
        return host, int(port)
    return address, default_port


def parse_credential(value: str) -> tuple[str, str, V3Credentials | None]:
    """An environment variable's value → (version, community, v3 credentials); raises ``ValueError``."""
    value = value.strip()
    if value.startswith("{"):
        data = json.loads(value)
        version = str(data.get("version", "3" if "user" in data else "2c"))
        if version == "3":
            return "3", "", _v3(data["user"], data.get("auth_protocol", "SHA"), data.get("auth_key"),
                                data.get("priv_protocol", "AES"), data.get("priv_key"))
        return version, str(data.get("community", "public")), None
    head, sep, rest = value.partition(":")
    if sep and head in ("v1", "v2c"):
        return head[1:], rest, None
    if sep and head == "v3":
        parts = rest.split(":", 4)
        if len(parts) not in (1, 3, 5):
            raise ValueError("v3 credential must be v3:USER[:AUTHPROTO:AUTHKEY[:PRIVPROTO:PRIVKEY]]")
        parts += [None] * (5 - len(parts))  # type: ignore[list-item]
        return "3", "", _v3(parts[0], parts[1] or "SHA", parts[2], parts[3] or "AES", parts[4])
    return "2c", value, None


def _v3(user: str, auth_protocol: str, auth_key: str | None, priv_protocol: str,
        priv_key: str | None) -> V3Credentials:
    """Validated v3 credentials (net-snmp needs keys of at least 8 characters)."""
    auth_protocol, priv_protocol = auth_protocol.upper().replace("-", ""), priv_protocol.upper().replace("-", "")
    if auth_protocol not in AUTH_PROTOCOLS:
        raise ValueError(f"unknown SNMPv3 auth protocol {auth_protocol!r} (one of {', '.join(AUTH_PROTOCOLS)})")
    if priv_protocol not in PRIV_PROTOCOLS:
        raise ValueError(f"unknown SNMPv3 privacy protocol {priv_protocol!r} (one of {', '.join(PRIV_PROTOCOLS)})")
    for name, key in (("auth", auth_key), ("priv", priv_key)):
        if key is not None and len(key) < 8:
            raise ValueError(f"SNMPv3 {name} key must be at least 8 characters")
    if priv_key and not auth_key:
        raise ValueError("SNMPv3 privacy needs an auth key too")
    return V3Credentials(user, auth_key or None, priv_key or None, auth_protocol, priv_protocol)


def split_profile(profile: str | None) -> tuple[str | None, str | None]:
    """``"switch;uplink=Gi1/0/48"`` → (``"switch"``, ``"Gi1/0/48"``)."""
    if not profile:
        return None, None
    name, *options = [p.strip() for p in profile.split(";")]
    uplink = next((o.partition("=")[2] for o in options if o.startswith("uplink=")), None)
    return name or None, uplink or None


def poll_target_for(device: Any, env: Mapping[str, str], *, timeout_s: float = 2.0, retries: int = 1) -> PollTarget:
    """A store device row → what the poller needs; a configuration problem becomes a recorded reason."""
    profile, uplink = split_profile(device.poll_profile)
    label = f"{device.school_id}/{device.uid} ({device.mgmt_address})"
    common = {"device_id": device.id, "kind": device.kind or "switch", "profile": profile, "label": label,
              "is_school_uplink": bool(device.is_school_uplink), "uplink_port": uplink}
    try:
        if not device.mgmt_address:
            raise ValueError("the device has no management address")
        host, port = parse_address(device.mgmt_address)
        if device.credential_ref:
            value = env.get(device.credential_ref)
            if value is None:
                raise ValueError(f"environment variable {device.credential_ref} (credential_ref) is not set")
            version, community, v3 = parse_credential(value)
        else:
            version, community, v3 = "2c", "public", None
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        return PollTarget(target=None, config_error=str(exc), **common)
    return PollTarget(target=Target(host, port, version, community, v3, timeout_s=timeout_s, retries=retries),
                      **common)


def school_shard(school_id: str, shards: int) -> int:
    """Which of ``shards`` workers polls a school (DESIGN §9: pollers are sharded by school)."""
    return zlib.crc32(school_id.encode()) % shards


class SnmpPollerService:
    """Periodic SNMP polling of the store's devices, on a thread with its own event loop.

    ``start()`` returns once the loop runs; ``stop()`` ends it within a few seconds. Results are
    written in batches by ``record_polls`` from a worker thread, so the loop never blocks on the database.

    Its own health goes into the same ``PollMetrics`` as ``PollerLoop``'s (``poller="snmp"``), mapped onto
    its per-device cadence: a *round* is one pass that found switches due (at the interval, their next-due
    times spread by jitter, so several small rounds; a trap's re-poll is a round of one), timed until all of
    its checks end; a *check* is one switch's poll; a *round error* is a device list or a batch of results
    the store did not take; an *unanswered check* is a timeout or an unreachable address.
    """

    def __init__(self, engine: Engine, *, interval_s: float = 60.0, concurrency: int = 64,
                 timeout_s: float = 2.0, retries: int = 1, fail_threshold: int = 3,
                 refresh_s: float = 30.0, backoff_max_s: float = 900.0, batch_interval_s: float = 0.5,
                 env: Mapping[str, str] | None = None, trap_port: int | None = None, trap_host: str = "0.0.0.0",
                 trap_communities: Sequence[str] = ("public",), trap_v3_users: Sequence[TrapUser] = (),
                 shard: tuple[int, int] = (0, 1), membership: Membership | None = None) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self.timeout_s, self.retries = timeout_s, retries
        self.refresh_s = refresh_s
        self.batch_interval_s = batch_interval_s
        self.env = env if env is not None else os.environ
        self.shard = shard
        self.membership = membership  # None: every school (a lone controller)
        self._members_seen: tuple[str, ...] | None = None
        self._elsewhere: frozenset[str] = frozenset()  # hosts of switches other replicas poll
        self.poller = SnmpPoller(concurrency=concurrency, interval_s=interval_s, backoff_max_s=backoff_max_s,
                                 fail_threshold=fail_threshold)
        self.recorded = 0
        self.rounds = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._targets: list[PollTarget] = []
        self._refresh_now = False
        self._by_host: dict[str, list[int]] = {}
        self.trap_port, self.trap_host = trap_port, trap_host
        self.trap_communities, self.trap_v3_users = tuple(trap_communities), tuple(trap_v3_users)
        self.trap_receiver: TrapReceiver | None = None
        self.traps: collections.deque[TrapEvent] = collections.deque(maxlen=200)
        self._rejected: list[Rejected] = []
        self._reject_logged: set[tuple[str, str]] = set()
        self.metrics: PollMetrics | None = None

    def bind_metrics(self, metrics: PollMetrics) -> None:
        """Report rounds, check durations and failures into the controller's registry (label ``snmp``)."""
        self.metrics = metrics
        metrics.declare("snmp")

    # --- lifecycle, called from any thread ---

    def start(self) -> None:
        """Start the polling thread and its event loop (and the trap receiver, when a port is set)."""
        if self._thread is not None:
            return
        self._ready.clear()
        self._start_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="classfleet-snmp-poller", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("SNMP poller thread did not start")
        if self._start_error is not None:
            self._thread.join(5)
            self._thread = None
            raise RuntimeError(f"SNMP poller could not start: {self._start_error}") from self._start_error

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling, flush recorded results, close the socket."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        self._thread = None

    def poll_now(self, device_id: int | None = None) -> None:
        """Poll a device (or, with ``None``, re-read the device list and poll all) at once, e.g. on a trap."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def mark() -> None:
            if device_id is None:
                self._refresh_now = True
                for pt in self._targets:
                    self.poller.poll_soon(pt.device_id)
            else:
                self.poller.poll_soon(device_id)

        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(mark)

    # --- the loop ---

    def _run(self) -> None:
        """Thread body: a private event loop (pysnmp's socket and timers live on it)."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except Exception:  # noqa: BLE001 - the thread must log, not die silently
            log.exception("SNMP poller stopped on an error")
        finally:
            transport = self.poller.transport
            if isinstance(transport, PysnmpTransport):
                transport.close()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        """Schedule due devices as independent tasks; batch their results into the store."""
        self._stop = asyncio.Event()
        results: asyncio.Queue[PollResult] = asyncio.Queue()
        if self.trap_port is not None:
            try:
                receiver = TrapReceiver(self._on_trap, self._on_reject, host=self.trap_host, port=self.trap_port,
                                        communities=self.trap_communities, v3_users=self.trap_v3_users)
                self.trap_port = receiver.start()
                self.trap_receiver = receiver
            except Exception as exc:  # noqa: BLE001 - reported to start()'s caller
                self._start_error = exc
                self._ready.set()
                return
        self._ready.set()
        recorder = asyncio.create_task(self._record(results))
        tasks: set[asyncio.Task[None]] = set()
        next_refresh = 0.0
        try:
            while not self._stop.is_set():
                if time.monotonic() >= next_refresh or self._refresh_now or self._members_moved():
                    self._refresh_now = False
                    try:
                        targets, seeds = await asyncio.to_thread(self._load_targets,
                                                                 frozenset(self.poller.trackers))
                    except Exception:  # noqa: BLE001 - keep polling the known devices if the store hiccups
                        log.exception("SNMP poller could not read the device list")
                        if self.metrics is not None:
                            self.metrics.round_errors.labels("snmp").inc()
                    else:
                        self._use_targets(targets, seeds)
                    next_refresh = time.monotonic() + self.refresh_s
                due = self.poller.due(self._targets)
                if due:
                    for pt in due:
                        self.poller.schedules[pt.device_id].in_flight = True
                    task = asyncio.create_task(self._poll_round(due, results))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 0.1)
        finally:
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            recorder.cancel()
            await asyncio.gather(recorder, return_exceptions=True)
            if self.trap_receiver is not None:
                self.trap_receiver.stop()
            await self._flush(results)

    def _members_moved(self) -> bool:
        """Whether the live replicas changed since the device list was read (our schools may have moved)."""
        return self.membership is not None and self.membership.members() != self._members_seen

    def _use_targets(self, targets: list[PollTarget], seeds: dict[int, Uplink]) -> None:
        """Adopt a fresh device list (on the loop): trap source map, remembered uplinks, forgotten devices."""
        self._targets = targets
        by_host: dict[str, list[int]] = {}
        for t in targets:
            if t.target is not None:
                by_host.setdefault(t.target.host, []).append(t.device_id)
        self._by_host = by_host
        for t in targets:
            if t.device_id in seeds and t.device_id not in self.poller.trackers:
                self.poller.tracker(t).uplink = seeds[t.device_id]
        current = {t.device_id for t in targets}
        for gone in [d for d in self.poller.trackers if d not in current]:  # deleted, retired or re-sharded
            self.poller.forget(gone)

    async def _poll_round(self, due: list[PollTarget], results: asyncio.Queue[PollResult]) -> None:
        """One pass's due devices polled concurrently; timed as a round once all have answered or failed."""
        started = time.monotonic()
        await asyncio.gather(*(self._poll_one(pt, results) for pt in due))
        if self.metrics is not None:  # a round cancelled by stop() never gets here: its time says nothing
            self.metrics.round_seconds.labels("snmp").observe(time.monotonic() - started)
            self.metrics.rounds.labels("snmp").inc()

    async def _poll_one(self, pt: PollTarget, results: asyncio.Queue[PollResult]) -> None:
        """One device's poll, its result queued for the recorder."""
        result = await self.poller.poll(pt)
        self.rounds += 1
        if self.metrics is not None:
            elapsed = result.figures.get("poll_s")
            if elapsed is not None and result.figures.get("error") != "config":  # "config": nothing was asked
                self.metrics.check_seconds.labels("snmp").observe(elapsed)
            if not result.reachable and result.figures.get("error") in UNANSWERED:
                self.metrics.check_failures.labels("snmp").inc()
        await results.put(result)

    async def _record(self, results: asyncio.Queue[PollResult]) -> None:
        """Write queued results every ``batch_interval_s`` in one transaction (off the loop)."""
        while True:
            await asyncio.sleep(self.batch_interval_s)
            await self._flush(results)

    async def _flush(self, results: asyncio.Queue[PollResult]) -> None:
        """Record whatever is queued: poll results, and refused traps as dead letters."""
        batch: list[PollResult] = []
        while not results.empty():
            batch.append(results.get_nowait())
        rejected, self._rejected = self._rejected, []
        if batch:
            try:
                self.recorded += await asyncio.to_thread(record_polls, self.engine, batch)
            except Exception:  # noqa: BLE001 - a database error loses this batch, not the poller
                log.exception("SNMP poller could not record %d result(s)", len(batch))
                if self.metrics is not None:
                    self.metrics.round_errors.labels("snmp").inc()
        if rejected:
            try:
                await asyncio.to_thread(BatchWriter(self.engine).write, [], rejected)
            except Exception:  # noqa: BLE001
                log.exception("SNMP trap receiver could not record %d refused trap(s)", len(rejected))

    # --- traps: a hint to poll now, never state of their own ---

    def _on_trap(self, event: TrapEvent) -> None:
        """Re-poll the device(s) at the trap's source address at once."""
        ids = self._by_host.get(event.source[0])
        if not ids and event.source[0] in self._elsewhere:
            return  # another replica polls this switch, on its own schedule
        if not ids:
            self._on_reject(event.source, "unknown_source", f"{event.name} trap from an address no SNMP-watched "
                            "device has", b"")
            return
        self.traps.append(event)
        for device_id in ids:
            self.poller.poll_soon(device_id)

    def _on_reject(self, source: tuple[str, int], reason: str, detail: str, payload: bytes) -> None:
        """Keep a refused trap as a dead letter (bounded per batch); log each (source, reason) once."""
        if (source[0], reason) not in self._reject_logged and len(self._reject_logged) < 10_000:
            self._reject_logged.add((source[0], reason))
            log.warning("SNMP trap from %s refused: %s (%s)", source[0], reason, detail)
        if len(self._rejected) < MAX_REJECTED_PER_BATCH:
            self._rejected.append(Rejected(f"snmp-trap/{source[0]}:{source[1]}", reason, detail, payload,
                                           dt.datetime.now(dt.UTC)))

    def _load_targets(self, known: frozenset[int]) -> tuple[list[PollTarget], dict[int, Uplink]]:
        """The active SNMP-watched devices of this shard, and for devices not tracked yet (``known``) the
        uplinks inferred in earlier runs (kept in their port data). Runs off the loop: it only reads."""
        index, count = self.shard
        with self.engine.connect() as conn:
            rows = conn.execute(select(Device).where(Device.watched_by == "snmp", Device.lifecycle == "active")).all()
            if self.membership is not None:
                from ...cluster import owned

                self._members_seen = members = self.membership.members()
                mine = owned({d.school_id for d in rows}, members, self.membership.member_id)
                self._elsewhere = frozenset(_host(d.mgmt_address) for d in rows if d.school_id not in mine)
                rows = [d for d in rows if d.school_id in mine]
            devices = [d for d in rows if count <= 1 or school_shard(d.school_id, count) == index]
            new_ids = [d.id for d in devices if d.id not in known]
            seeds: dict[int, Uplink] = {}
            for start in range(0, len(new_ids), 500):
                for device_id, port, name, data in conn.execute(
                        select(DeviceComponent.device_id, DeviceComponent.index, DeviceComponent.name,
                               DeviceComponent.data).where(DeviceComponent.device_id.in_(new_ids[start:start + 500]),
                                                           DeviceComponent.kind == "port")):
                    how = (data or {}).get("uplink")
                    if how and how != "configured":
                        seeds[device_id] = Uplink(port, name or str(port), how)
        targets = [poll_target_for(d, self.env, timeout_s=self.timeout_s, retries=self.retries) for d in devices]
        return targets, seeds


def _host(address: str | None) -> str:
    """A management address's host, or "" when there is none or it does not parse."""
    try:
        return parse_address(address)[0] if address else ""
    except ValueError:
        return ""


class SnmpPollerProcesses:
    """The service in spawned worker processes, one shard of schools each, so SNMP decoding never competes
    with the controller's API and ingest for the GIL. Takes a database URL, not an engine (each worker
    opens its own); credentials come from the environment the workers inherit.

    Traps need one receiver: ``trap_port`` is allowed with ``workers=1`` only. ``member_id`` (the replica's
    client id) makes each worker keep only the schools this replica owns (``controller.cluster``).
    """

    def __init__(self, database_url: str, workers: int = 1, **options: Any) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if workers > 1 and options.get("trap_port") is not None:
            raise ValueError("a trap port needs workers=1 (one receiver for every school)")
        options.pop("env", None)
        self.database_url = database_url
        self.workers = workers
        self.options = options
        self._processes: list[Any] = []
        self._stop: Any = None
        self._commands: list[Any] = []
        self.metrics: PollMetrics | None = None
        self._relayed: Any = None  # the workers' poll metrics, on their way to this process's registry
        self._relay_thread: threading.Thread | None = None

    def bind_metrics(self, metrics: PollMetrics) -> None:
        """Report the workers' rounds, check durations and failures into this process's registry."""
        self.metrics = metrics
        metrics.declare("snmp")

    def start(self, timeout: float = 60.0) -> None:
        """Spawn the workers and wait until each has started its service."""
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        ready = ctx.Queue()
        if self.metrics is not None:
            self._relayed = ctx.Queue(maxsize=100_000)
            self._relay_thread = threading.Thread(target=self._apply_relayed, args=(self._relayed, self.metrics),
                                                  name="classfleet-snmp-metrics", daemon=True)
            self._relay_thread.start()
        for index in range(self.workers):
            commands = ctx.Queue()
            process = ctx.Process(target=_worker, name=f"classfleet-snmp-{index}", daemon=True,
                                  args=(self.database_url, (index, self.workers), self.options, self._stop,
                                        commands, ready, self._relayed))
            process.start()
            self._processes.append(process)
            self._commands.append(commands)
        deadline = time.monotonic() + timeout
        for _ in range(self.workers):
            remaining = max(0.1, deadline - time.monotonic())
            try:
                message = ready.get(timeout=remaining)
            except Exception:  # noqa: BLE001 - queue.Empty: a worker did not come up
                self.stop()
                raise RuntimeError("SNMP poller workers did not start in time") from None
            if isinstance(message, str):
                self.stop()
                raise RuntimeError(f"SNMP poller worker failed to start: {message}")

    def poll_now(self, device_id: int | None = None) -> None:
        """Ask every worker to poll a device at once (only its owner knows it) or, with ``None``, all."""
        for commands in self._commands:
            commands.put(device_id)

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the workers to finish their batch and exit; terminate any that do not."""
        if self._stop is not None:
            self._stop.set()
        deadline = time.monotonic() + timeout
        for process in self._processes:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
                process.join(5)
        if self._relay_thread is not None:
            self._relayed.put(None)  # after the workers' last observations
            self._relay_thread.join(5)
        self._processes, self._commands, self._stop = [], [], None
        self._relayed = self._relay_thread = None

    @staticmethod
    def _apply_relayed(relayed: Any, metrics: PollMetrics) -> None:
        """Apply the workers' observations until the ``None`` that ``stop`` puts last."""
        while (item := relayed.get()) is not None:
            try:
                metrics.apply(item)
            except Exception:  # noqa: BLE001 - one bad item never stops the relay
                log.exception("could not apply a relayed SNMP poll metric")

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (for monitoring)."""
        return [p.pid for p in self._processes if p.pid is not None]


def _worker(database_url: str, shard: tuple[int, int], options: dict[str, Any], stop: Any, commands: Any,
            ready: Any, relayed: Any = None) -> None:
    """A worker process: its own engine and service; exits when the parent sets ``stop``."""
    import queue
    import signal

    from ...store import db

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us; Ctrl+C must not print tracebacks here
    logging.basicConfig(level=options.pop("log_level", "INFO"),
                        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
    engine = db.make_engine(database_url)
    member_id = options.pop("member_id", None)
    if member_id:  # the replica's share of the schools, from the leases its parent renews
        from ...cluster import StoreMembership

        options["membership"] = StoreMembership(engine, member_id)
    service = SnmpPollerService(engine, shard=shard, **options)
    if relayed is not None:
        from ...metrics import PollMetricsRelay

        service.bind_metrics(PollMetricsRelay(relayed))  # type: ignore[arg-type]
    try:
        service.start()
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        ready.put(f"{type(exc).__name__}: {exc}")
        engine.dispose()
        return
    ready.put(os.getpid())
    try:
        while not stop.wait(0.2):
            with contextlib.suppress(queue.Empty):
                while True:
                    service.poll_now(commands.get_nowait())
    finally:
        service.stop()
        engine.dispose()
