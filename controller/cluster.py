"""Several controller replicas on one store, without a coordinator of our own (DESIGN §9).

Each replica (named by its stable MQTT client id) holds time-limited *leases* in the store's
``controller_leases`` table:

- ``member:<client id>``: "I am alive". The live members are the holders of unexpired member leases.
- ``task:<name>``: "I run this singleton task" (the command dispatcher, the notifier, the fault sweeper,
  retention, the recurring-command scheduler, plug presence). Exactly one live replica holds it.

A replica renews its leases every ``renew_s`` seconds; a lease runs ``ttl_s`` seconds from its last renewal.
Taking a lease is one conditional ``UPDATE … WHERE name = :name AND (holder = :me OR expires_at <= :now)``
(renew, or take over an expired one), then, when no row exists yet, an ``INSERT`` that the primary key lets
only one replica win. PostgreSQL re-checks the ``WHERE`` of a concurrent ``UPDATE`` against the row the winner
committed, and SQLite runs one writer at a time, so under contention exactly one holder wins on both.

Why a lease table and not PostgreSQL advisory locks: a session advisory lock lives as long as a connection,
so it needs a dedicated connection per replica and a keep-alive, is invisible to the other replicas (no
membership list, which the pollers' sharding needs anyway), gives no bounded takeover when a replica hangs
without its connection dropping, and does not exist on SQLite. The table gives membership and leadership
with one mechanism, on both backends, with an injectable clock for the tests. What it asks: replicas' clocks
agree to well within ``renew_s`` (NTP), and a replica stops acting as leader ``renew_s`` before its lease
could be taken over (``is_leader``), which absorbs that skew. Two replicas started with the same client id
are one member to this scheme (and to the MQTT broker, which disconnects one of them): never do that.

Pollers shard by school: a school belongs to the live member with the highest rendezvous
(highest-random-weight) hash of (member, school), so every school has exactly one owner, and a member
joining or leaving moves only the schools it gains or had (about 1/n of them). A replica always counts
itself as a member, so while the store is away it keeps polling what it had (duplicates, never gaps).

A lease handover can overlap a round still in flight on the old holder; the command dispatcher and the notifier
are therefore also race-safe on their own: the dispatcher claims ``pending → sent`` and the notifier claims the
incidents it is about to send (``notify_claimed_until``), each with a conditional update, before acting.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Engine, case, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from .store.models import ControllerLease, Device, School

log = logging.getLogger(__name__)

MEMBER = "member:"
TASK = "task:"
# The periodic tasks that must run on one replica at a time (names are the leader metric's label values).
SINGLETON_TASKS: tuple[str, ...] = ("command-dispatcher", "notifier", "fault-sweeper", "command-schedules",
                                    "plug-presence", "retention")
Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    """The default clock."""
    return dt.datetime.now(dt.UTC)


# --- the leases ---------------------------------------------------------------------------------------------


class Leases:
    """Take, renew, release and list leases in the store; every call is its own short transaction."""

    def __init__(self, engine: Engine, clock: Clock = utcnow) -> None:
        self._engine = engine
        self._clock = clock

    def acquire(self, name: str, holder: str, ttl: dt.timedelta) -> dt.datetime | None:
        """Renew our lease or take an expired (or missing) one; returns its new expiry, or None when another
        holder's lease is still running."""
        now = self._clock()
        expires = now + ttl
        lease = ControllerLease.__table__
        with self._engine.begin() as conn:
            result = conn.execute(
                update(lease).where(lease.c.name == name, or_(lease.c.holder == holder, lease.c.expires_at <= now))
                .values(holder=holder, expires_at=expires,
                        acquired_at=case((lease.c.holder == holder, lease.c.acquired_at), else_=now)))
            if result.rowcount == 1:
                return expires
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(lease).values(name=name, holder=holder, expires_at=expires, acquired_at=now))
        except IntegrityError:  # the row exists: someone else holds it (or took it a moment ago)
            return None
        return expires

    def release(self, name: str, holder: str) -> bool:
        """Give a lease up at once (a clean shutdown), if we still hold it."""
        lease = ControllerLease.__table__
        with self._engine.begin() as conn:
            return bool(conn.execute(delete(lease).where(lease.c.name == name, lease.c.holder == holder)).rowcount)

    def live(self, prefix: str = "") -> dict[str, str]:
        """Unexpired leases whose name starts with ``prefix``: name → holder."""
        lease = ControllerLease.__table__
        with self._engine.connect() as conn:
            rows = conn.execute(select(lease.c.name, lease.c.holder).where(
                lease.c.name.startswith(prefix, autoescape=True), lease.c.expires_at > self._clock()))
            return {name: holder for name, holder in rows}

    def members(self) -> tuple[str, ...]:
        """The live members' ids, sorted."""
        return tuple(sorted(set(self.live(MEMBER).values())))


# --- sharding -----------------------------------------------------------------------------------------------


def _weight(member: str, key: str) -> int:
    digest = hashlib.blake2b(f"{member}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(key: str, members: Sequence[str]) -> str:
    """The member that owns ``key`` by rendezvous hashing (ties, which do not happen, go to the larger id)."""
    if not members:
        raise ValueError("no members")
    return max(members, key=lambda m: (_weight(m, key), m))


def owned(keys: Iterable[str], members: Sequence[str], me: str) -> set[str]:
    """The keys ``me`` owns among ``members`` (``me`` is counted as a member whatever the list says)."""
    everyone = tuple(set(members) | {me})
    return {k for k in keys if owner(k, everyone) == me}


class Membership(Protocol):
    """What a sharded poller needs to know: who it is and who is alive."""

    member_id: str

    def members(self) -> tuple[str, ...]:
        """The live members, this one included."""
        ...


def owned_device_ids(engine: Engine, membership: Membership) -> set[int]:
    """The ids of the devices of the schools this member owns (read off the poller's loop, in a thread)."""
    with engine.connect() as conn:
        schools = sorted(owned(conn.scalars(select(School.id)), membership.members(), membership.member_id))
        ids: set[int] = set()
        for start in range(0, len(schools), 500):
            ids.update(conn.scalars(select(Device.id).where(Device.school_id.in_(schools[start:start + 500]))))
    return ids


class StoreMembership:
    """Membership read straight from the store, at most every ``max_age_s`` (the SNMP worker processes, which
    do not run a ``Cluster`` of their own but share their parent's client id)."""

    def __init__(self, engine: Engine, member_id: str, *, clock: Clock = utcnow, max_age_s: float = 2.0) -> None:
        self.member_id = member_id
        self._leases = Leases(engine, clock)
        self._clock = clock
        self._max_age = dt.timedelta(seconds=max_age_s)
        self._cached: tuple[str, ...] = (member_id,)
        self._read_at: dt.datetime | None = None

    def members(self) -> tuple[str, ...]:
        """The live members (the last list read if the store is away)."""
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._max_age:
            try:
                self._cached = tuple(sorted(set(self._leases.members()) | {self.member_id}))
            except Exception as exc:  # noqa: BLE001 - keep the last view; polling goes on
                log.warning("cluster membership could not be read: %s", exc)
            self._read_at = now
        return self._cached


# --- this replica -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """This replica's view, for /metrics."""

    members: int
    leader: dict[str, bool] = field(default_factory=dict)
    schools_owned: int = 0


class Cluster:
    """This replica's membership and singleton-task leases, renewed on a thread every ``renew_s``."""

    def __init__(self, engine: Engine, member_id: str, *, tasks: Iterable[str] = SINGLETON_TASKS,
                 ttl_s: float = 15.0, renew_s: float = 5.0, clock: Clock = utcnow) -> None:
        if not 0 < renew_s * 2 <= ttl_s:
            raise ValueError("the lease TTL must be at least twice the renew interval")
        self.member_id = member_id
        self.tasks = tuple(tasks)
        self.ttl = dt.timedelta(seconds=ttl_s)
        self.renew_s = renew_s
        self._leases = Leases(engine, clock)
        self._engine = engine
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[str, dt.datetime] = {}  # task → our lease's expiry
        self._members: tuple[str, ...] = (member_id,)
        self._schools_owned = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self.version = 0  # bumped when the member list changes (pollers re-read their shard)

    # lifecycle

    def start(self) -> None:
        """Take what can be taken now (so a lone replica leads from its first second), then renew on a thread."""
        self._renew_logged()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="classfleet-cluster", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and release our leases, so another replica takes over without waiting for the TTL."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        with self._lock:
            held, self._held = list(self._held), {}
        try:
            for task in held:
                self._leases.release(TASK + task, self.member_id)
            self._leases.release(MEMBER + self.member_id, self.member_id)
        except Exception as exc:  # noqa: BLE001 - the leases then expire by themselves
            log.warning("cluster: could not release leases on stop: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.renew_s):
            self._renew_logged()

    def _renew_logged(self) -> None:
        try:
            self.renew_once()
            if self._failing:
                log.info("cluster: lease renewal recovered")
            self._failing = False
        except Exception:  # the store is away: leadership lapses by itself (is_leader), the next round retries
            if not self._failing:
                log.exception("cluster: lease renewal failed; retrying")
            self._failing = True

    # one round

    def renew_once(self) -> None:
        """Renew our member lease, take or renew each task lease, and re-read the members and our schools."""
        self._leases.acquire(MEMBER + self.member_id, self.member_id, self.ttl)
        held: dict[str, dt.datetime] = {}
        for task in self.tasks:
            expires = self._leases.acquire(TASK + task, self.member_id, self.ttl)
            if expires is not None:
                held[task] = expires
        members = tuple(sorted(set(self._leases.members()) | {self.member_id}))
        with self._engine.connect() as conn:
            schools = list(conn.scalars(select(School.id)))
        mine = len(owned(schools, members, self.member_id))
        with self._lock:
            gained, lost = set(held) - set(self._held), set(self._held) - set(held)
            joined, left = set(members) - set(self._members), set(self._members) - set(members)
            self._held, self._schools_owned = held, mine
            if joined or left:
                self._members = members
                self.version += 1
        for task in sorted(gained):
            log.info("cluster: %s now runs %s", self.member_id, task)
        for task in sorted(lost):
            log.warning("cluster: %s no longer runs %s (another replica took it over)", self.member_id, task)
        if joined or left:
            log.info("cluster: members %s (joined: %s; left: %s)", ", ".join(members),
                     ", ".join(sorted(joined)) or "-", ", ".join(sorted(left)) or "-")

    # what the tasks and pollers ask

    def is_leader(self, task: str) -> bool:
        """Whether this replica runs ``task`` now: it holds the lease, with at least ``renew_s`` to run (so it
        stops before another replica could take the lease over, whatever their clocks' small skew)."""
        with self._lock:
            expires = self._held.get(task)
        return expires is not None and self._clock() < expires - dt.timedelta(seconds=self.renew_s)

    def gate(self, task: str) -> Callable[[], bool]:
        """``is_leader`` for one task, for ``PeriodicTask.gate``."""
        if task not in self.tasks:
            raise ValueError(f"{task!r} is not one of this cluster's singleton tasks")
        return lambda: self.is_leader(task)

    def members(self) -> tuple[str, ...]:
        """The live members as of the last renewal, this one included."""
        with self._lock:
            return self._members

    def owns(self, school_id: str) -> bool:
        """Whether this replica polls ``school_id``."""
        return owner(school_id, self.members()) == self.member_id

    def snapshot(self) -> Snapshot:
        """Members, leadership per task and schools owned, for /metrics."""
        with self._lock:
            members, schools = len(self._members), self._schools_owned
        return Snapshot(members, {task: self.is_leader(task) for task in self.tasks}, schools)
