"""Broker access control from the store, enforced by a real Mosquitto: a device publishes only under
its own topic and reads only its own commands; a revocation takes effect on SIGHUP, no restart."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.broker import free_port, wait_for_port
from controller.broker_acl import write
from controller.enrolment import create_token, redeem, revoke_device
from controller.ingest.service import BrokerAddress, IngestService
from controller.metrics import IngestMetrics
from controller.store import db
from controller.store.models import Observation
from controller.store.writer import BatchWriter
from tests.helpers import add_school, count, heartbeat, wait_for

pytestmark = pytest.mark.integration


def _client(port: int, username: str, password: str) -> tuple[mqtt.Client, dict]:
    seen: dict = {"connect": None, "suback": None, "messages": []}
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{username}-{time.monotonic_ns()}",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(username, password)

    def on_connect(c, u, f, rc, p):
        seen["connect"] = rc
        done.set()

    client.on_connect = on_connect
    client.on_subscribe = lambda c, u, mid, rcs, p: seen.__setitem__("suback", rcs)
    client.on_message = lambda c, u, msg: seen["messages"].append(msg.topic)
    client.connect("127.0.0.1", port)
    client.loop_start()
    done.wait(10)
    return client, seen


@contextlib.contextmanager
def _acl_broker(tmp_path: Path, files: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """A real Mosquitto on a free loopback port enforcing the password and ACL files written to ``files``."""
    port = free_port()
    pid_file = tmp_path / "mosquitto.pid"
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {files / 'classfleet.passwd'}\n"
                    f"acl_file {files / 'classfleet.acl'}\npid_file {pid_file}\nuser root\npersistence false\n")
    broker = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for_port(port, timeout=10)
        yield broker, port, pid_file
    finally:
        broker.terminate()
        broker.wait(10)


def test_devices_are_confined_to_their_own_topics(tmp_path, sqlite_url):
    engine = db.make_engine(sqlite_url)
    add_school(engine, "s1")
    with Session(engine) as session, session.begin():
        token = create_token(session, "s1", uses=2).token
        pc1 = redeem(session, token, device="pc-1")
        pc2 = redeem(session, token, device="pc-2")
    files = tmp_path / "acl"
    with Session(engine) as session:
        write(session, files, "ctl", "ctl-secret-password")
    ingest = None
    with _acl_broker(tmp_path, files) as (broker, port, pid_file):
        try:
            ingest = IngestService(BrokerAddress("127.0.0.1", port, "ctl", "ctl-secret-password"), BatchWriter(engine),
                                   IngestMetrics(CollectorRegistry()), client_id="acl-controller")
            ingest.start()
            assert ingest.wait_connected(10), "the controller's own account was refused"

            device, seen = _client(port, pc1.username, pc1.password)
            assert not seen["connect"].is_failure
            device.publish("classfleet/v1/s1/pc-1/heartbeat", heartbeat(1, 1), qos=1).wait_for_publish(5)
            device.publish("classfleet/v1/s1/pc-2/heartbeat", heartbeat(1, 1), qos=1).wait_for_publish(5)  # posing
            device.subscribe([("classfleet/v1/s1/pc-2/cmd", 1), ("classfleet/v1/s1/pc-1/cmd", 1)])
            wait_for(lambda: seen["suback"] is not None, what="SUBACK")
            for target in ("pc-2", "pc-1"):  # the controller sends each device a command
                ingest.publish(f"classfleet/v1/s1/{target}/cmd", b'{"v":1}')
            wait_for(lambda: seen["messages"], what="own command delivered")
            time.sleep(0.5)
            assert seen["messages"] == ["classfleet/v1/s1/pc-1/cmd"]  # never another device's commands
            wait_for(lambda: count(engine, Observation) >= 1, what="own heartbeat stored")
            device.publish("classfleet/v1/s1/pc-1/heartbeat", heartbeat(1, 2), qos=1).wait_for_publish(5)
            wait_for(lambda: count(engine, Observation) >= 2, what="second own heartbeat")
            assert count(engine, Observation) == 2  # the posing message never reached the controller
            device.disconnect()

            _, wrong = _client(port, pc2.username, "not-the-password")
            assert wrong["connect"] is not None and wrong["connect"].is_failure

            with Session(engine) as session, session.begin():
                assert revoke_device(session, "s1", "pc-1")
            with Session(engine) as session:
                write(session, files, "ctl", "ctl-secret-password", reload_pid_file=pid_file)
            time.sleep(0.5)
            again, refused = _client(port, pc1.username, pc1.password)
            assert refused["connect"] is not None and refused["connect"].is_failure  # revoked, broker not restarted
            assert broker.poll() is None
            still, ok = _client(port, pc2.username, pc2.password)
            assert not ok["connect"].is_failure
            still.disconnect()
        finally:
            if ingest is not None:
                ingest.stop()
    engine.dispose()


def test_plugs_are_confined_to_their_own_dialect_topics(tmp_path, sqlite_url):
    """A Tasmota and a Shelly plug each with its own login: each reaches the controller on its own topics and
    gets its own commands; posing as the other plug, or listening to its commands, goes nowhere."""
    from controller.adapters.service import PlugIngest
    from controller.adapters.simulator import SimulatedPlug
    from controller.broker_acl import PlugCredentialError, issue_plug_credential
    from controller.commands import CommandDispatcher, Target, create_commands
    from controller.store.models import Command, Device, DeviceState
    from tests.controller.adapters.conftest import PLUGS, seed_plugs

    engine = db.make_engine(sqlite_url)
    ids = seed_plugs(engine)
    (tasmota, t_addr), (shelly, s_addr) = PLUGS["ac-p201-1"], PLUGS["ac-p201-2"]
    with Session(engine) as session, session.begin():
        t_user, t_pass = issue_plug_credential(session, "s1", "ac-p201-1")
        s_user, s_pass = issue_plug_credential(session, "s1", "ac-p201-2")
        session.add(Device(school_id="s1", uid="pc-1", kind="pc"))
        session.flush()
        with pytest.raises(PlugCredentialError, match="not a smart plug"):
            issue_plug_credential(session, "s1", "pc-1")
    files = tmp_path / "acl"
    with Session(engine) as session:
        write(session, files, "ctl", "ctl-secret-password")
    acl = (files / "classfleet.acl").read_text()
    assert f"user {t_user}\ntopic write tele/{t_addr}/#\ntopic write stat/{t_addr}/#\ntopic read cmnd/{t_addr}/#" in acl
    assert f"topic read {s_addr}/rpc" in acl and "topic write cmnd/#" in acl and "topic write +/rpc" in acl
    ingest = None
    sims: list[SimulatedPlug] = []
    with _acl_broker(tmp_path, files) as (_, port, _):
        try:
            ingest = IngestService(BrokerAddress("127.0.0.1", port, "ctl", "ctl-secret-password"), BatchWriter(engine),
                                   IngestMetrics(CollectorRegistry()), client_id="acl-controller",
                                   foreign=PlugIngest(engine))
            ingest.start()
            assert ingest.wait_connected(10)

            def online(uid: str) -> bool:
                with engine.connect() as conn:
                    return bool(conn.scalar(select(DeviceState.online).where(DeviceState.device_id == ids[uid])))

            sims = [SimulatedPlug(tasmota, t_addr, "127.0.0.1", port, username=t_user, password=t_pass),
                    SimulatedPlug(shelly, s_addr, "127.0.0.1", port, username=s_user, password=s_pass)]
            for sim in sims:
                sim.start()
            wait_for(lambda: online("ac-p201-1") and online("ac-p201-2"), what="both plugs online through the ACL")

            poser, seen = _client(port, t_user, t_pass)  # the Tasmota plug's login, misused
            poser.publish(f"{s_addr}/online", "false", qos=1, retain=True).wait_for_publish(5)
            poser.subscribe([(f"{s_addr}/rpc", 1), (f"cmnd/{t_addr}/POWER", 1)])
            wait_for(lambda: seen["suback"] is not None, what="SUBACK")
            with Session(engine) as session, session.begin():
                made = create_commands(session, Target(room_id=session.scalar(select(Device.room_id).where(
                    Device.id == ids["ac-p201-1"]))), "power_off", {}, expires_in=dt.timedelta(minutes=5))
                command_ids = [c.id for c in made]
            dispatcher = CommandDispatcher(engine, ingest.publish)

            def all_done() -> bool:
                dispatcher.dispatch_once()
                with engine.connect() as conn:
                    return set(conn.scalars(select(Command.state).where(Command.id.in_(command_ids)))) == {"done"}

            wait_for(all_done, what="both plugs switched off and reported it through the ACL")
            time.sleep(0.5)
            assert seen["messages"] == [f"cmnd/{t_addr}/POWER"]  # never the Shelly plug's RPC requests
            assert online("ac-p201-2")  # the posed Last Will never reached the controller
            assert count(engine, Observation, Observation.device_id == ids["ac-p201-2"]) >= 3
            poser.disconnect()
        finally:
            for sim in sims:
                sim.stop()
            if ingest is not None:
                ingest.stop()
    engine.dispose()
