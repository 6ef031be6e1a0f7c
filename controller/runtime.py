"""Assembles a running controller: schema upgrade, private broker, ingest, retention, API server.

Each part is built here from the settings and handed to the parts that need it (no globals). Every replica
runs every part; ``controller.cluster`` lets the singleton tasks run on one live replica at a time and shards
the pollers' schools across the live replicas.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine

from .adapters.service import PlugIngest, PlugPresence
from .api.app import create_app
from .broker import PrivateBroker
from .cluster import Cluster
from .config import Settings, fault_policy
from .faults import FaultSweeper
from .ingest.limits import device_limiter
from .ingest.service import BrokerAddress, IngestService
from .metrics import IngestMetrics, build_registry, cluster_metrics, poll_metrics
from .notify import Notifier, notification_channels
from .store import db
from .store.queries import purge_history
from .store.writer import BatchWriter

log = logging.getLogger(__name__)


def shared_broker_address(settings: Settings) -> BrokerAddress:
    """The external broker (``CLASSFLEET_MQTT_URL``) with the controller's login and CA."""
    host, port, user, tls = settings.mqtt_parts
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    return BrokerAddress(host, port, user, password, tls, str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None)


def build_ingest(settings: Settings, engine: Engine, broker: BrokerAddress, metrics: IngestMetrics, client_id: str,
                 *, drain: bool = False) -> IngestService:
    """The ingest service as the settings configure it (a replica's, or ``drain`` of a removed replica's session)."""
    s = settings
    return IngestService(
        broker, BatchWriter(engine, fault_policy(s)), metrics, client_id=client_id,
        batch_max=s.ingest_batch_max, batch_interval_s=s.ingest_batch_interval_ms / 1000,
        session_expiry_s=s.mqtt_session_expiry_s, shared=s.mqtt_shared_subscription,
        queue_max=s.ingest_queue_max, limiter=device_limiter(s), foreign=PlugIngest(engine), drain=drain,
    )


class Controller:
    """One controller process's moving parts, started and stopped in order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.broker: PrivateBroker | None = None
        self.engine: Engine | None = None
        self.ingest: IngestService | None = None
        self.broker_address: BrokerAddress | None = None
        self.pollers: list[Any] = []  # each has start() and stop(); they run on their own threads
        self.cluster: Cluster | None = None
        self._stop = threading.Event()
        self._apps: list[FastAPI] = []  # their /metrics renderers stop before the engine goes
        self._retention: threading.Thread | None = None

    def start(self) -> None:
        """Upgrade the schema, start the broker if we own it, then ingest and retention."""
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        url = s.effective_database_url
        db.upgrade(url)
        self.engine = db.make_engine(url, pool_size=10) if url.startswith("postgresql") else db.make_engine(url)
        if s.mqtt_url is None:
            self.broker = PrivateBroker(s.data_dir, s.mqtt_port, binary=s.mosquitto_binary,
                                        inflight=max(1000, 2 * s.ingest_batch_max))
            self.broker.start()
            self.broker_address = BrokerAddress("127.0.0.1", s.mqtt_port)
        else:
            self.broker_address = shared_broker_address(s)
        self.registry, metrics = build_registry(self.engine, s.offline_after_s)
        self.cluster = Cluster(self.engine, s.mqtt_client_id, ttl_s=s.cluster_lease_ttl_s, renew_s=s.cluster_renew_s)
        self.cluster.start()
        cluster_metrics(self.registry, self.cluster)
        self.ingest = build_ingest(s, self.engine, self.broker_address, metrics, s.mqtt_client_id)
        self.ingest.start()
        from .commands import CommandDispatcher

        self.add_singleton(CommandDispatcher(self.engine, self.ingest.publish,
                                             plug_timeout_s=s.plug_command_timeout_s))
        ingest = self.ingest
        self.add_singleton(PlugPresence(self.engine, lambda: ingest.connected))
        from .schedules import ScheduleRunner

        self.add_singleton(ScheduleRunner(self.engine))  # end-of-day shutdowns etc. (issue 9)
        self.add_singleton(FaultSweeper(self.engine, fault_policy(s)))
        self.add_singleton(Notifier(self.engine, notification_channels(s), batch_delay_s=s.notify_batch_delay_s))
        if s.snmp_interval_s > 0:
            from .pollers.snmp.service import SnmpPollerProcesses, SnmpPollerService

            options = {"interval_s": s.snmp_interval_s, "trap_port": s.snmp_trap_port, "trap_host": s.snmp_trap_host}
            self.add_poller(SnmpPollerProcesses(url, workers=s.snmp_workers, member_id=s.mqtt_client_id, **options)
                            if s.snmp_workers else SnmpPollerService(self.engine, membership=self.cluster, **options))
        if s.pjlink_interval_s > 0:
            from .pollers.pjlink.service import PJLinkPoller

            self.add_sharded(PJLinkPoller(self.engine, interval_s=s.pjlink_interval_s))
        if s.onvif_interval_s > 0:
            from .pollers.onvif.service import OnvifPoller

            self.add_sharded(OnvifPoller(self.engine, interval_s=s.onvif_interval_s, events=s.onvif_events))
        self._retention = threading.Thread(target=self._run_retention, name="retention", daemon=True)
        self._retention.start()

    def add_poller(self, poller: Any) -> None:
        """Start a poller now and stop it with the controller; pollers that time their rounds report to /metrics."""
        bind = getattr(poller, "bind_metrics", None)
        if bind is not None:
            bind(poll_metrics(self.registry))
        poller.start()
        self.pollers.append(poller)

    def add_singleton(self, task: Any) -> None:
        """A periodic task that runs only on the replica holding its lease (named after the task)."""
        assert self.cluster is not None
        task.gate = self.cluster.gate(task.name.replace(" ", "-"))
        self.add_poller(task)

    def add_sharded(self, poller: Any) -> None:
        """A poller that checks only the schools this replica owns among the live replicas."""
        poller.membership = self.cluster
        self.add_poller(poller)

    def app(self, clock: Callable[[], dt.datetime] | None = None) -> FastAPI:
        """The API app over this controller's store and metrics."""
        assert self.engine is not None and self.ingest is not None
        ingest = self.ingest
        app = create_app(self.settings, self.engine, self.registry, ingest_ready=lambda: ingest.connected,
                         clock=clock, refresh_metrics_ahead=True)
        self._apps.append(app)
        return app

    def _run_retention(self) -> None:
        from .store.db import session_factory

        assert self.engine is not None
        sessions = session_factory(self.engine)
        while not self._stop.wait(60):
            if self.cluster is not None and not self.cluster.is_leader("retention"):
                continue  # another replica trims; we look again in a minute
            cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=self.settings.history_retention_days)
            try:
                with sessions.begin() as session:
                    deleted = purge_history(session, cutoff)
                if deleted:
                    log.info("retention: removed %d observations older than %s", deleted, cutoff.date())
            except Exception as exc:  # retried next round
                log.warning("retention job failed: %s", exc)
            self._stop.wait(3600)

    def stop(self) -> None:
        """Drain and acknowledge what is queued, then stop the broker we own."""
        self._stop.set()
        for poller in reversed(self.pollers):
            poller.stop()
        if self.cluster is not None:  # after the tasks stopped: hand their leases over at once
            self.cluster.stop()
        if self.ingest is not None:
            self.ingest.stop()
        if self.broker is not None:
            self.broker.stop()
        for app in self._apps:
            app.state.metrics_cache.close()
        if self.engine is not None:
            self.engine.dispose()


def serve(settings: Settings, controller: Controller, banner: Callable[[], None] | None = None) -> None:
    """Run the API server in this thread until SIGINT/SIGTERM; the controller must be started."""
    config = uvicorn.Config(controller.app(), host=settings.host, port=settings.port,
                            log_level=settings.log_level.lower(), access_log=False, lifespan="off")
    server = _Server(config)
    # uvicorn re-raises SIGTERM after its own shutdown, which would kill us before the broker
    # and the ingest queue are stopped; we take the signals and let serve() return instead.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: setattr(server, "should_exit", True))
    if banner is not None:
        threading.Thread(target=_after_start, args=(server, banner), daemon=True).start()
    server.run()


class _Server(uvicorn.Server):
    """uvicorn's server without its signal capture (the caller owns the signals)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _after_start(server: object, banner: Callable[[], None]) -> None:
    import time

    for _ in range(300):
        if getattr(server, "started", False):
            banner()
            return
        time.sleep(0.05)

