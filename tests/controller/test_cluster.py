"""Controller replicas without a coordinator of their own (controller.cluster): leases in the store on SQLite and
PostgreSQL with an injected clock, rendezvous sharding, the dispatcher's claim; then real replicas (subprocesses)
on one PostgreSQL and a real Mosquitto: commands go out exactly once, also after the dispatching replica is
SIGKILLed, and projectors in three schools are each polled by exactly one of two replicas."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.broker import free_port
from controller.cluster import (
    MEMBER,
    SINGLETON_TASKS,
    TASK,
    Cluster,
    Leases,
    StoreMembership,
    owned,
    owned_device_ids,
    owner,
)
from controller.commands import CommandDispatcher, Target, create_commands
from controller.pollers.pjlink.simulator import ProjectorSimulator, SimProjector
from controller.store import db
from controller.store.models import Command, ControllerLease, Device, DeviceState, Observation
from tests.helpers import add_school, publish_all, publisher, status, wait_for

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
TTL = dt.timedelta(seconds=15)


class FakeClock:
    """A settable clock shared by the leases under test."""

    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


# --- leases on both backends --------------------------------------------------------------------------------


def test_one_holder_under_contention_then_one_taker_after_expiry(db_url):
    """Eight replicas (each its own engine, on its own thread) race for one lease: one wins; after it expires
    they race again and again exactly one wins, and the row names the winner."""
    clock = FakeClock()
    engines = [db.make_engine(db_url) for _ in range(8)]
    try:
        for round_ in range(3):
            barrier = threading.Barrier(len(engines))
            won: list[str] = []

            def race(i: int, barrier: threading.Barrier = barrier, won: list[str] = won) -> None:
                leases = Leases(engines[i], clock)
                barrier.wait(10)
                if leases.acquire("task:notifier", f"replica-{i}", TTL) is not None:
                    won.append(f"replica-{i}")

            threads = [threading.Thread(target=race, args=(i,)) for i in range(len(engines))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert len(won) == 1, f"round {round_}: winners {won}"
            with engines[0].connect() as conn:
                assert conn.scalar(select(ControllerLease.holder).where(ControllerLease.name == "task:notifier")) \
                    == won[0]
            clock.advance(TTL.total_seconds())  # exactly at expiry: takeable
    finally:
        for engine in engines:
            engine.dispose()


def test_renew_keeps_the_lease_expiry_hands_it_over_release_at_once(db_url):
    clock = FakeClock()
    engine = db.make_engine(db_url)
    leases = Leases(engine, clock)
    assert leases.acquire("task:x", "a", TTL) == T0 + TTL
    clock.advance(14)
    assert leases.acquire("task:x", "b", TTL) is None  # still running
    assert leases.acquire("task:x", "a", TTL) == T0 + dt.timedelta(seconds=29)  # renewed
    clock.advance(14)  # t=28: past the first expiry, before the renewed one
    assert leases.acquire("task:x", "b", TTL) is None
    assert leases.live("task:") == {"task:x": "a"}
    clock.advance(1)  # t=29: a stopped renewing; b takes over
    assert leases.live("task:") == {}
    assert leases.acquire("task:x", "b", TTL) is not None
    assert leases.acquire("task:x", "a", TTL) is None
    with engine.connect() as conn:
        acquired = conn.scalar(select(ControllerLease.acquired_at))
    assert acquired == T0 + dt.timedelta(seconds=29)  # a takeover starts a new tenure; a renewal does not
    assert leases.release("task:x", "a") is False  # not a's any more
    assert leases.release("task:x", "b") is True
    assert leases.acquire("task:x", "a", TTL) is not None  # released: no need to wait for the TTL
    engine.dispose()


def test_cluster_members_leadership_and_takeover(db_url):
    """Two replicas: the first takes every singleton task, the second none; both are members. When the first
    stops renewing, it stops leading ``renew_s`` before its lease ends and the second takes over after it ends."""
    clock = FakeClock()
    engine = db.make_engine(db_url)
    add_school(engine, "s1")
    a = Cluster(engine, "ctl-a", ttl_s=15, renew_s=5, clock=clock)
    b = Cluster(engine, "ctl-b", ttl_s=15, renew_s=5, clock=clock)
    a.renew_once()
    b.renew_once()
    a.renew_once()
    assert a.members() == b.members() == ("ctl-a", "ctl-b")
    assert all(a.is_leader(t) for t in SINGLETON_TASKS) and not any(b.is_leader(t) for t in SINGLETON_TASKS)
    snap_a, snap_b = a.snapshot(), b.snapshot()
    assert snap_a.members == snap_b.members == 2 and snap_a.schools_owned + snap_b.schools_owned == 1
    clock.advance(9.9)  # a's lease (renewed at t=0) runs to t=15; a leads until t=10
    assert a.is_leader("notifier")
    clock.advance(0.2)
    assert not a.is_leader("notifier")
    b.renew_once()
    assert not b.is_leader("notifier"), "taken over before the lease expired"
    clock.advance(5)  # t=15.1: a's leases expired
    b.renew_once()
    assert all(b.is_leader(t) for t in SINGLETON_TASKS) and b.members() == ("ctl-b",)
    assert b.snapshot().schools_owned == 1
    a.renew_once()  # a comes back: a member again, but b keeps the tasks
    assert not any(a.is_leader(t) for t in SINGLETON_TASKS) and a.members() == ("ctl-a", "ctl-b")
    b.stop()  # a clean stop releases at once
    a.renew_once()
    assert all(a.is_leader(t) for t in SINGLETON_TASKS) and a.members() == ("ctl-a",)
    engine.dispose()


def test_settings_refuse_a_renew_interval_over_half_the_ttl():
    from controller.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="CLASSFLEET_"):
        load_settings(cluster_lease_ttl_s=10, cluster_renew_s=6)
    with pytest.raises(ValueError, match="twice"):
        Cluster(None, "x", ttl_s=10, renew_s=6)  # type: ignore[arg-type]


# --- rendezvous sharding ------------------------------------------------------------------------------------

SCHOOLS = [f"thcs-{i:03d}" for i in range(300)]


@pytest.mark.parametrize("members", [("ctl-0",), ("ctl-0", "ctl-1"), ("ctl-0", "ctl-1", "ctl-2")])
def test_rendezvous_covers_every_school_exactly_once(members):
    shares = [owned(SCHOOLS, members, m) for m in members]
    assert sorted(s for share in shares for s in share) == sorted(SCHOOLS)  # each once, none missing
    for share in shares:  # and roughly evenly
        assert len(share) > 0.6 * len(SCHOOLS) / len(members)
    assert all(owner(s, members) == m for m, share in zip(members, shares, strict=True) for s in share)
    assert owner("thcs-007", members) == owner("thcs-007", tuple(reversed(members)))  # order does not matter


def test_a_member_leaving_moves_only_its_own_schools():
    before = {s: owner(s, ("ctl-0", "ctl-1", "ctl-2")) for s in SCHOOLS}
    after = {s: owner(s, ("ctl-0", "ctl-2")) for s in SCHOOLS}
    moved = {s for s in SCHOOLS if before[s] != after[s]}
    assert moved == {s for s in SCHOOLS if before[s] == "ctl-1"}
    assert len(moved) < 0.45 * len(SCHOOLS)
    joined = {s: owner(s, ("ctl-0", "ctl-1", "ctl-2", "ctl-3")) for s in SCHOOLS}
    assert {s for s in SCHOOLS if joined[s] != before[s]} == {s for s in SCHOOLS if joined[s] == "ctl-3"}


def test_owned_device_ids_partition_the_devices_across_live_members(db_url):
    clock = FakeClock()
    engine = db.make_engine(db_url)
    schools = [f"s{i}" for i in range(6)]
    for school in schools:
        add_school(engine, school)
    with Session(engine) as session, session.begin():
        for school in schools:
            for n in range(3):
                session.add(Device(school_id=school, uid=f"pj-{n}", kind="projector", watched_by="pjlink"))
    leases = Leases(engine, clock)
    for member in ("ctl-a", "ctl-b"):
        leases.acquire(MEMBER + member, member, TTL)
    views = [StoreMembership(engine, m, clock=clock) for m in ("ctl-a", "ctl-b")]
    shares = [owned_device_ids(engine, v) for v in views]
    assert not shares[0] & shares[1] and len(shares[0] | shares[1]) == 18
    clock.advance(16)  # both leases lapse; each then counts itself alone and polls everything (no gaps)
    assert all(len(owned_device_ids(engine, v)) == 18 for v in views)
    engine.dispose()


# --- the dispatcher's claim ---------------------------------------------------------------------------------


def test_two_dispatchers_racing_send_each_command_once(db_url):
    """Two replicas' dispatchers (a lease handover overlap) run their rounds at the same moment: every command
    is published by exactly one of them."""
    engine = db.make_engine(db_url)
    add_school(engine, "s1")
    with Session(engine) as session, session.begin():
        devices = [Device(school_id="s1", uid=f"pc-{i}", kind="pc", watched_by="mqtt") for i in range(20)]
        session.add_all(devices)
        session.flush()
        session.add_all(DeviceState(device_id=d.id, online=True) for d in devices)
        first_device = devices[0].id
    with Session(engine) as session, session.begin():
        ids = [c.id for c in create_commands(session, Target(school_id="s1"), "collect_inventory", {},
                                             expires_in=dt.timedelta(minutes=5))]
    published: list[str] = []
    lock = threading.Lock()

    def publish(topic: str, payload: bytes) -> bool:
        with lock:
            published.append(json.loads(payload)["id"])
        return True

    engines = [db.make_engine(db_url) for _ in range(2)]
    dispatchers = [CommandDispatcher(e, publish) for e in engines]
    barrier = threading.Barrier(2)

    def run(d: CommandDispatcher) -> None:
        barrier.wait(10)
        d.dispatch_once()

    threads = [threading.Thread(target=run, args=(d,)) for d in dispatchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert Counter(published) == Counter(ids), "a command went out twice or never"
    with engine.connect() as conn:
        assert set(conn.scalars(select(Command.state))) == {"sent"}

    def refuse(topic: str, payload: bytes) -> bool:
        return False

    with Session(engine) as session, session.begin():
        late = create_commands(session, Target(device_id=first_device), "collect_inventory", {},
                               expires_in=dt.timedelta(minutes=5))[0].id
    CommandDispatcher(engines[0], refuse).dispatch_once()  # the broker did not take it: pending again
    with engine.connect() as conn:
        assert conn.scalar(select(Command.state).where(Command.id == late)) == "pending"
    for e in (*engines, engine):
        e.dispose()


# --- real replicas ------------------------------------------------------------------------------------------

LEASE_ENV = {"CLASSFLEET_CLUSTER_LEASE_TTL_S": "6", "CLASSFLEET_CLUSTER_RENEW_S": "1.5"}


class Replica:
    """A controller subprocess with its HTTP port and log."""

    def __init__(self, tmp_path: Path, pg_url: str, broker_url: str, name: str, **env: str) -> None:
        self.name, self.port = name, free_port()
        self.log_path = tmp_path / f"{name}.log"
        full = {**os.environ, "CLASSFLEET_DATABASE_URL": pg_url, "CLASSFLEET_MQTT_URL": broker_url,
                "CLASSFLEET_MQTT_CLIENT_ID": name, "CLASSFLEET_MQTT_SHARED_SUBSCRIPTION": "true",
                "CLASSFLEET_PORT": str(self.port), "CLASSFLEET_DATA_DIR": str(tmp_path / name),
                "CLASSFLEET_METRICS_PUBLIC": "true", "CLASSFLEET_METRICS_CACHE_S": "0",
                "CLASSFLEET_SNMP_INTERVAL_S": "0", "CLASSFLEET_ONVIF_INTERVAL_S": "0",
                "CLASSFLEET_PJLINK_INTERVAL_S": "0", **LEASE_ENV, **env}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "controller", "controller"], env=full,
                                         stdout=log, stderr=log)

    def ready(self) -> bool:
        assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def metric(self, name: str, labels: str = "") -> float:
        """One sample of this replica's /metrics (0 when absent)."""
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
        return float(match.group(1)) if match else 0.0

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[Replica]]:
    """Replicas started by the test, stopped afterwards."""
    started: list[Replica] = []
    yield started
    for replica in started:
        replica.stop()


def _start(replicas: list[Replica], tmp_path: Path, pg_url: str, broker_url: str, names: tuple[str, ...],
           **env: str) -> list[Replica]:
    new = [Replica(tmp_path, pg_url, broker_url, name, **env) for name in names]
    replicas.extend(new)
    for replica in new:
        wait_for(replica.ready, timeout=90, what=f"replica {replica.name} ready")
    return new


def _dispatcher(engine) -> str | None:
    return Leases(engine).live(TASK + "command-dispatcher").get(TASK + "command-dispatcher")


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_three_replicas_send_each_command_once_even_after_the_dispatcher_is_killed(tmp_path, pg_url, broker,
                                                                                    replicas):
    engine = db.make_engine(pg_url)
    add_school(engine, "s1")
    devices = [f"pc-{i}" for i in range(4)]
    agents = publisher(broker.port, "agents")  # the devices' side: online, and listening to their cmd topics
    received: Counter[str] = Counter()
    lock = threading.Lock()

    def on_message(_client, _userdata, message) -> None:
        with lock:
            received[json.loads(message.payload)["id"]] += 1

    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cmd-listener",
                           protocol=MQTTProtocolVersion.MQTTv5)
    listener.on_message = on_message
    listener.connect("127.0.0.1", broker.port)
    listener.subscribe("classfleet/v1/s1/+/cmd", qos=1)
    listener.loop_start()
    try:
        _start(replicas, tmp_path, pg_url, broker.url, ("ctl-a", "ctl-b", "ctl-c"))
        publish_all(agents, [(f"classfleet/v1/s1/{d}/status", status("online", 1)) for d in devices])

        def online() -> bool:
            with engine.connect() as conn:
                return conn.scalar(select(DeviceState.online).join(Device).where(Device.uid == devices[-1])) is True

        wait_for(online, timeout=30, what="the devices online")
        wait_for(lambda: all(r.metric("classfleet_cluster_members") == 3 for r in replicas), timeout=30,
                 what="every replica sees three members")
        leaders = [r.name for r in replicas if r.metric("classfleet_cluster_leader", '{task="command-dispatcher"}')]
        assert leaders == [_dispatcher(engine)], leaders

        def send() -> set[str]:
            with Session(engine) as session, session.begin():
                return {c.id for c in create_commands(session, Target(school_id="s1"), "collect_inventory", {},
                                                      expires_in=dt.timedelta(minutes=5))}

        first = send()
        wait_for(lambda: set(received) >= first, timeout=20, what="the first commands delivered")
        time.sleep(3)  # two more dispatcher rounds on every replica
        assert {i: received[i] for i in first} == dict.fromkeys(first, 1)

        holder = next(r for r in replicas if r.name == _dispatcher(engine))
        holder.kill()
        killed_at = time.monotonic()
        second = send()
        wait_for(lambda: set(received) >= second, timeout=6 + 10, what="commands delivered after the kill")
        took = time.monotonic() - killed_at
        time.sleep(3)
        assert {i: received[i] for i in first | second} == dict.fromkeys(first | second, 1)
        new_holder = _dispatcher(engine)
        assert new_holder not in (None, holder.name)
        print(f"\ndispatcher {holder.name} SIGKILLed; {new_holder} delivered the next commands after {took:.1f} s "
              f"(lease TTL 6 s)")
        with engine.connect() as conn:
            assert set(conn.scalars(select(Command.state).where(Command.id.in_(first | second)))) <= {"sent"}
    finally:
        listener.loop_stop()
        listener.disconnect()
        agents.loop_stop()
        agents.disconnect()
        engine.dispose()


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_two_replicas_poll_each_projector_once_per_round(tmp_path, pg_url, broker, replicas):
    """Six simulated projectors in three schools, two replicas polling every 2 s: per projector, the simulator's
    connection count grows with its owner's rounds only (never with both replicas'), every school has one owner,
    and the history rows of each projector are spaced a round apart."""
    engine = db.make_engine(pg_url)
    schools = ["thcs-a", "thcs-b", "thcs-c"]
    members = ("ctl-p", "ctl-q")
    split = {s: owner(s, members) for s in schools}
    assert set(split.values()) == set(members), "the test wants both replicas to own a school"
    sim = ProjectorSimulator().start()
    projectors: dict[int, SimProjector] = {}
    try:
        for school in schools:
            add_school(engine, school)
        with Session(engine) as session, session.begin():
            for school in schools:
                for n in range(2):
                    sim_projector = SimProjector(pjlink_class=2, serial=f"{school}-{n}")
                    port = sim.add(sim_projector)
                    device = Device(school_id=school, uid=f"pj-{n}", kind="projector", watched_by="pjlink",
                                    mgmt_address=f"127.0.0.1:{port}")
                    session.add(device)
                    session.flush()
                    projectors[device.id] = sim_projector
        with engine.connect() as conn:
            school_of = {i: s for i, s in conn.execute(select(Device.id, Device.school_id))}
        by_name = {r.name: r for r in _start(replicas, tmp_path, pg_url, broker.url, members,
                                             CLASSFLEET_PJLINK_INTERVAL_S="2")}
        wait_for(lambda: all(r.metric("classfleet_cluster_members") == 2 for r in replicas), timeout=30,
                 what="both replicas see each other")
        time.sleep(5)  # a round on each after the last membership change
        owned_gauges = {n: r.metric("classfleet_cluster_schools_owned") for n, r in by_name.items()}
        assert owned_gauges == {m: sum(1 for s in schools if split[s] == m) for m in members}

        def rounds() -> dict[str, float]:
            return {n: r.metric("classfleet_poll_rounds_total", '{poller="pjlink"}') for n, r in by_name.items()}

        start_rounds, start_conns = rounds(), {d: p.connections for d, p in projectors.items()}
        since = dt.datetime.now(dt.UTC)
        time.sleep(14)
        end_rounds, end_conns = rounds(), {d: p.connections for d, p in projectors.items()}
        done = {n: end_rounds[n] - start_rounds[n] for n in members}
        assert all(n >= 4 for n in done.values()), done
        for device_id in projectors:
            polled = end_conns[device_id] - start_conns[device_id]
            mine = done[split[school_of[device_id]]]
            assert mine - 1 <= polled <= mine + 1, (device_id, polled, done)
            assert polled < sum(done.values()) - 1  # not polled by both
        with engine.connect() as conn:
            rows = conn.execute(select(Observation.device_id, Observation.ts).where(
                Observation.kind == "poll", Observation.ts >= since).order_by(Observation.ts)).all()
        times: dict[int, list[dt.datetime]] = {}
        for device_id, ts in rows:
            times.setdefault(device_id, []).append(ts)
        assert set(times) == set(projectors), "every projector polled"
        for device_id, ts in times.items():
            gaps = [(b - a).total_seconds() for a, b in zip(ts, ts[1:], strict=False)]
            assert gaps and min(gaps) > 1.2, (device_id, gaps)  # 2 s rounds by one replica, not two interleaved
        print(f"\nrounds per replica {done}; schools {split}")
    finally:
        sim.stop()
        engine.dispose()


def test_snmp_service_keeps_only_its_schools_and_leaves_other_replicas_traps_alone(db_url):
    """Two replicas' SNMP services over one store: disjoint device lists covering every switch; a member leaving
    is noticed (the list is re-read) and the survivor takes its switches; a trap from a switch the other replica
    polls is neither a re-poll nor a dead letter here."""
    from controller.pollers.snmp.service import SnmpPollerService
    from controller.pollers.snmp.trap import TrapEvent

    clock = FakeClock()
    engine = db.make_engine(db_url)
    schools = [f"s{i}" for i in range(8)]
    for school in schools:
        add_school(engine, school)
    with Session(engine) as session, session.begin():
        session.add_all(Device(school_id=school, uid="core", kind="switch", watched_by="snmp",
                               mgmt_address=f"127.0.0.{i + 10}:161") for i, school in enumerate(schools))
    leases = Leases(engine, clock)
    for member in ("ctl-a", "ctl-b"):
        leases.acquire(MEMBER + member, member, TTL)
    services = {m: SnmpPollerService(engine, membership=StoreMembership(engine, m, clock=clock, max_age_s=0))
                for m in ("ctl-a", "ctl-b")}
    lists = {m: {t.device_id for t in s._load_targets(frozenset())[0]} for m, s in services.items()}
    assert not lists["ctl-a"] & lists["ctl-b"] and len(lists["ctl-a"] | lists["ctl-b"]) == len(schools)
    assert lists["ctl-a"] and lists["ctl-b"]
    a = services["ctl-a"]
    a._use_targets(*a._load_targets(frozenset()))
    assert not a._members_moved()
    other_host = next(h for h in (f"127.0.0.{i + 10}" for i in range(len(schools))) if h not in a._by_host)
    a._on_trap(TrapEvent(source=(other_host, 50000), trap_oid="1.3.6.1.6.3.1.1.5.3", name="linkDown", if_index=3,
                         received_at=clock()))
    assert not a._rejected and not a.traps
    clock.advance(10)
    leases.acquire(MEMBER + "ctl-a", "ctl-a", TTL)
    clock.advance(6)  # ctl-b's lease lapsed, ctl-a's runs
    assert a._members_moved()
    assert len(a._load_targets(frozenset())[0]) == len(schools)
    engine.dispose()
