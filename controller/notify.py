"""Notifications: new incidents go out by email or webhook, per-school routes, batched per school.

A burst (a school-wide outage raising 200 incidents) becomes one message per school and route:
the notifier waits ``batch_delay`` after an incident opens, then sends everything new for that
school at once. A failed send is retried with exponential backoff; incidents are marked notified
only when every route for them succeeded (or was skipped for severity). Incidents opened during a
school's maintenance window are recorded but never notified. Incidents are claimed in the store before
they are sent, so two replicas overlapping at a lease handover never send one twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
import ssl
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol

import httpx
from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session

from classfleet_wire import lookup
from classfleet_wire.faults import SEVERITY_ORDER

from .incidents import opened_in_maintenance
from .periodic import PeriodicTask
from .store.models import Device, Incident, NotificationRoute, School

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IncidentSummary:
    """What a notification says about one incident."""

    id: int
    device: str
    code: str
    severity: str
    text: str
    opened_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Batch:
    """New incidents of one school, for one route."""

    school_id: str
    school_name: str
    lang: str
    incidents: list[IncidentSummary]

    def subject(self) -> str:
        """One line: the school and how many problems."""
        n = len(self.incidents)
        if self.lang.startswith("vi"):
            return f"[classfleet] {self.school_name}: {n} sự cố mới"
        return f"[classfleet] {self.school_name}: {n} new incident{'s' if n != 1 else ''}"

    def body(self) -> str:
        """The incidents, worst first, one per line."""
        lines = [f"- [{i.severity}] {i.device}: {i.text} ({i.code}, {i.opened_at:%Y-%m-%d %H:%M} UTC)"
                 for i in self.incidents]
        return self.subject() + "\n\n" + "\n".join(lines) + "\n"

    def as_json(self) -> dict[str, Any]:
        """The webhook payload (Telegram/Zalo templates in docs/notifications.md map from this)."""
        return {"school": self.school_id, "school_name": self.school_name, "text": self.subject(),
                "incidents": [{"id": i.id, "device": i.device, "code": i.code, "severity": i.severity,
                               "text": i.text, "opened_at": i.opened_at.isoformat()} for i in self.incidents]}


class Channel(Protocol):
    """Sends one batch to one target; raises on failure."""

    def send(self, target: str, batch: Batch) -> None:
        """Deliver or raise."""
        ...


@dataclass
class EmailChannel:
    """SMTP, optionally with STARTTLS and a login (the password never logged)."""

    host: str
    port: int = 25
    sender: str = "classfleet@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_s: float = 15.0

    def send(self, target: str, batch: Batch) -> None:
        """One email per batch."""
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, target, batch.subject()
        message.set_content(batch.body())
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)


@dataclass
class WebhookChannel:
    """A JSON POST; any 2xx is success."""

    timeout_s: float = 10.0
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))

    def send(self, target: str, batch: Batch) -> None:
        """POST the batch as JSON."""
        self.client.post(target, json=batch.as_json()).raise_for_status()


class Notifier(PeriodicTask):
    """Sends new incidents on their routes, batched per school, with retries and backoff."""

    name = "notifier"

    def __init__(self, engine: Engine, channels: dict[str, Channel], *, batch_delay_s: float = 30.0,
                 interval_s: float = 10.0, claim_s: float = 600.0,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        super().__init__(interval_s)
        self._claim_for = dt.timedelta(seconds=claim_s)  # longer than any send with its timeouts
        self._engine = engine
        self._channels = channels
        self._batch_delay = dt.timedelta(seconds=batch_delay_s)
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._retry_at: dict[int, dt.datetime] = {}  # route id -> not before
        self._failures: dict[int, int] = defaultdict(int)

    def run_once(self) -> int:
        """One round; returns how many incidents were marked notified.

        Each school's incidents are claimed (``notify_claimed_until``) in a short transaction before anything is
        sent, so a replica whose lease ran out mid-round and the one that took over never send the same incident;
        a claim left by a crashed replica runs out after ``claim_s`` and the incidents go out then (at least once).
        """
        now = self._clock()
        with Session(self._engine) as session, session.begin():
            rows = session.execute(
                select(Incident, Device.uid, School.name).join(Device, Device.id == Incident.device_id)
                .join(School, School.id == Incident.school_id)
                .where(*self._unsent(now), Incident.opened_at <= now - self._batch_delay)
                .order_by(Incident.school_id, Incident.opened_at)
            ).all()
            if not rows:
                return 0
            quiet = opened_in_maintenance(session, [incident for incident, _, _ in rows])
            done = 0
            if quiet:  # recorded, never notified
                done = session.execute(update(Incident).where(Incident.id.in_(quiet), *self._unsent(now))
                                       .values(notified_at=now)).rowcount
            routes = session.scalars(select(NotificationRoute).where(NotificationRoute.enabled.is_(True))).all()
            session.expunge_all()  # plain values from here on: nothing is sent inside a transaction
        by_school: dict[str, list[Any]] = defaultdict(list)
        for incident, uid, school_name in rows:
            if incident.id not in quiet:
                by_school[incident.school_id].append((incident, uid, school_name))
        for school_id, items in by_school.items():
            claimed = self._claim([i.id for i, _, _ in items], now)
            items = [item for item in items if item[0].id in claimed]
            if not items:
                continue  # another replica is sending them
            sent = self._deliver(school_id, items, routes, now)
            with Session(self._engine) as session, session.begin():
                session.execute(update(Incident).where(Incident.id.in_(claimed))
                                .values(notify_claimed_until=None, **({"notified_at": now} if sent else {})))
            done += len(claimed) if sent else 0
        return done

    @staticmethod
    def _unsent(now: dt.datetime) -> tuple[Any, ...]:
        """Not notified yet, still open, and no live claim by a notifier."""
        return (Incident.notified_at.is_(None), Incident.state != "resolved",
                or_(Incident.notify_claimed_until.is_(None), Incident.notify_claimed_until <= now))

    def _claim(self, ids: list[int], now: dt.datetime) -> set[int]:
        """Claim these incidents for this round; the ones another notifier holds are left out."""
        with Session(self._engine) as session, session.begin():
            return set(session.scalars(
                update(Incident).where(Incident.id.in_(ids), *self._unsent(now))
                .values(notify_claimed_until=now + self._claim_for).returning(Incident.id)))

    def _deliver(self, school_id: str, items: list[Any], routes: Any, now: dt.datetime) -> bool:
        """Send to every route of this school; True only if none failed."""
        ok = True
        for route in routes:
            if route.school_id not in (None, school_id):
                continue
            floor = SEVERITY_ORDER.get(route.min_severity, 1)
            chosen = [(i, uid) for i, uid, _ in items if SEVERITY_ORDER.get(i.severity, 1) >= floor]
            if not chosen:
                continue
            if self._retry_at.get(route.id, now) > now:
                ok = False
                continue
            chosen.sort(key=lambda p: (-SEVERITY_ORDER.get(p[0].severity, 1), p[0].opened_at))
            batch = Batch(school_id, items[0][2], route.lang, [
                IncidentSummary(i.id, uid, i.code, i.severity, lookup(i.code).text(route.lang), i.opened_at)
                for i, uid in chosen])
            channel = self._channels.get(route.channel)
            try:
                if channel is None:
                    raise RuntimeError(f"channel {route.channel!r} is not configured")
                channel.send(route.target, batch)
            except Exception as exc:
                self._failures[route.id] += 1
                delay = min(30 * 2 ** (self._failures[route.id] - 1), 3600)
                self._retry_at[route.id] = now + dt.timedelta(seconds=delay)
                if self._failures[route.id] == 1:
                    log.warning("notification route %d (%s) failed: %s; retrying with backoff", route.id,
                                route.channel, type(exc).__name__)
                ok = False
                continue
            if self._failures.pop(route.id, 0):
                log.info("notification route %d works again", route.id)
            self._retry_at.pop(route.id, None)
        return ok



def notification_channels(settings: Any) -> dict[str, Channel]:
    """The channels the settings allow: webhooks always, email when an SMTP host is set."""
    channels: dict[str, Channel] = {"webhook": WebhookChannel()}
    if settings.smtp_host:
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        channels["email"] = EmailChannel(settings.smtp_host, settings.smtp_port, settings.smtp_from,
                                         settings.smtp_user, password, settings.smtp_starttls)
    return channels
