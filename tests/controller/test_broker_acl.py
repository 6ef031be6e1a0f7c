"""Broker access control from the store, enforced by a real Mosquitto: a device publishes only under
its own topic and reads only its own commands; a revocation takes effect on SIGHUP, no restart."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from prometheus_client import CollectorRegistry
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
    port = free_port()
    pid_file = tmp_path / "mosquitto.pid"
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {files / 'classfleet.passwd'}\n"
                    f"acl_file {files / 'classfleet.acl'}\npid_file {pid_file}\nuser root\npersistence false\n")
    broker = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ingest = None
    try:
        assert wait_for_port(port, timeout=10)
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
        broker.terminate()
        broker.wait(10)
        engine.dispose()
