"""Draining a removed replica's broker session before it is scaled away for good (DESIGN §9).

Mosquitto keeps a stopped replica's persistent session, and with a shared subscription keeps dealing it a
share of new messages, until a client with the same id returns or the session expires (then what it holds
is dropped). So scaling 3 → 2 for good first drains: connect as the removed replica (same client id, session
kept), unsubscribe at once so new messages go to the live replicas only (Mosquitto still delivers what the
session already holds), store those messages through the normal ingest path (committed, then acknowledged),
and, once nothing has arrived for ``quiet_s``, disconnect with a session expiry of 0 so the broker forgets the
session. If it does not go quiet within the timeout, the session is kept (nothing lost) and the caller is told.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from .cluster import MEMBER, Leases
from .config import Settings
from .metrics import IngestMetrics
from .runtime import build_ingest, shared_broker_address
from .store import db


class DrainRefused(RuntimeError):
    """Draining would take a session from a running replica, or there is no shared broker."""


@dataclass(frozen=True, slots=True)
class DrainResult:
    client_id: str
    stored: int  # messages taken from the session (committed or dead-lettered, then acknowledged)
    ended: bool  # the broker forgot the session; False: it did not go quiet in time and is kept


def drain_session(settings: Settings, client_id: str, *, quiet_s: float = 5.0, timeout_s: float = 900.0,
                  connect_timeout_s: float = 30.0) -> DrainResult:
    """Store what a stopped replica's session holds, then end the session."""
    if settings.mqtt_url is None:
        raise DrainRefused("draining is for replicas on a shared broker (CLASSFLEET_MQTT_URL); "
                           "the private broker serves one controller")
    if client_id == settings.mqtt_client_id:
        raise DrainRefused(f"{client_id} is this controller's own client id; name the removed replica's id")
    engine = db.make_engine(settings.effective_database_url)
    try:
        alive = Leases(engine).live(MEMBER)
        if f"{MEMBER}{client_id}" in alive:
            raise DrainRefused(f"replica {client_id} is running (its lease in the store is live): stop it first")
        ingest = build_ingest(settings, engine, shared_broker_address(settings), IngestMetrics(CollectorRegistry()),
                              client_id, drain=True)
        ingest.start()
        try:
            if not ingest.wait_connected(connect_timeout_s):
                raise ConnectionError(f"could not connect to the broker as {client_id}")
            drained = ingest.wait_drained(quiet_s, timeout_s)
        except BaseException:
            ingest.stop()  # the session stays: what was not acknowledged is redelivered next time
            raise
        ingest.stop(end_session=drained)
        return DrainResult(client_id, ingest.received, drained)
    finally:
        engine.dispose()
