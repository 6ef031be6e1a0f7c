"""The compose broker's configuration in a real Mosquitto (Debian's): TLS with a CA from deploy/tls/make-ca.sh
and per-device accounts written by ``classfleet broker acl`` from a store with enrolled devices.

Only the container paths and the port are rewritten; every other line runs as shipped."""

from __future__ import annotations

import getpass
import queue
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from controller.broker import free_port
from controller.cli import app
from controller.enrolment import create_token, redeem
from controller.store import db
from controller.store.models import District, School
from tests.helpers import wait_for

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CONTROLLER_PASSWORD = "controller-secret-for-test"
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tls") / "out"
    subprocess.run(["bash", str(DEPLOY / "tls" / "make-ca.sh"), str(out), "localhost", "127.0.0.1"], check=True,
                   capture_output=True, timeout=120)
    return out


@pytest.fixture
def site(tmp_path: Path, tls_dir: Path) -> Iterator[dict[str, object]]:
    """A store with two enrolled PCs, the broker files written by the CLI, and Mosquitto running the compose conf."""
    url = f"sqlite:///{tmp_path / 'classfleet.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    with Session(engine) as session, session.begin():
        session.add(District(id="d1", name="Quận 1"))
        session.add(School(id="s1", name="THCS Lê Lợi", district_id="d1"))
        session.flush()
        token = create_token(session, "s1", uses=2).token
        devices = {uid: redeem(session, token, device=uid) for uid in ("pc-1", "pc-2")}
    engine.dispose()
    auth = tmp_path / "auth"
    result = CliRunner().invoke(app, ["broker", "acl", "--out-dir", str(auth)],
                                env={"CLASSFLEET_DATABASE_URL": url, "CLASSFLEET_MQTT_PASSWORD": CONTROLLER_PASSWORD})
    assert result.exit_code == 0, result.output

    port = free_port()
    conf = (DEPLOY / "compose" / "mosquitto.conf").read_text()
    conf = (conf.replace("/mosquitto/certs/", f"{tls_dir}/").replace("/mosquitto/auth/", f"{auth}/")
            .replace("/mosquitto/data/", f"{tmp_path / 'data'}/")
            .replace("listener 8883", f"listener {port} 127.0.0.1")
            .replace("log_dest stdout", f"log_dest file {tmp_path / 'mosquitto.log'}"))
    (tmp_path / "data").mkdir()
    # Started as root, Mosquitto would switch to the 'mosquitto' user (as in the container, where the files are
    # group-readable for it); here it keeps the test's user.
    conf_path = tmp_path / "mosquitto.conf"
    conf_path.write_text(f"user {getpass.getuser()}\n" + conf)
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    (tmp_path / "mosquitto.log").touch()
    proc = subprocess.Popen([binary, "-c", str(conf_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Wait on the log, not with a bare TCP probe: Debian's Mosquitto 2.0.11 leaves the probe's TLS error in
        # OpenSSL's error queue and may then drop the next client with "Bad socket read/write" (fixed upstream;
        # the compose file uses a newer image).
        wait_for(lambda: " running" in (tmp_path / "mosquitto.log").read_text(), timeout=10, what="mosquitto start")
        yield {"port": port, "ca": str(tls_dir / "ca.crt"), "devices": devices}
    finally:
        proc.terminate()
        proc.wait(10)


def _client(site: dict[str, object], user: str, password: str, *, tls: bool = True) -> tuple[mqtt.Client, int]:
    """Connect (blocking) and return the client with the CONNACK reason code's value."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(user, password)
    if tls:
        client.tls_set(ca_certs=str(site["ca"]), cert_reqs=ssl.CERT_REQUIRED)  # checks the name 'localhost' too
    connacks: queue.Queue[int] = queue.Queue()
    client.on_connect = lambda c, u, f, rc, p: connacks.put(rc.value)
    client.connect("localhost", int(site["port"]), keepalive=30)  # type: ignore[call-overload]
    client.loop_start()
    try:
        return client, connacks.get(timeout=10)
    except queue.Empty:
        client.loop_stop()
        raise AssertionError("no CONNACK within 10 s") from None


def test_devices_write_only_their_own_topics_over_tls(site: dict[str, object]) -> None:
    devices = site["devices"]
    controller, rc = _client(site, "classfleet-controller", CONTROLLER_PASSWORD)
    assert rc == 0
    received: queue.Queue[str] = queue.Queue()
    controller.on_message = lambda c, u, m: received.put(m.topic)
    subscribed: queue.Queue[object] = queue.Queue()
    controller.on_subscribe = lambda c, u, mid, codes, p: subscribed.put(codes)
    controller.subscribe("classfleet/v1/#", qos=1)
    assert all(code.value == 1 for code in subscribed.get(timeout=10))  # type: ignore[attr-defined]
    pc1 = devices["pc-1"]  # type: ignore[index]

    def publish(topic: str) -> None:
        """One message from pc-1 on a connection of its own (Debian's Mosquitto 2.0.11 drops an MQTT 5 client
        whose publish is denied; newer ones answer PUBACK 0x87), written before the connection closes."""
        device, rc = _client(site, pc1.username, pc1.password)
        assert rc == 0
        try:
            device.publish(topic, b"{}", qos=1).wait_for_publish(10)
        except RuntimeError:  # the broker dropped the connection for the denied publish
            pass
        finally:
            device.loop_stop()
            device.disconnect()

    try:
        # Another device's topic, and commands even to itself, are refused; then its own topics go through. The
        # refused ones are sent first: had either got through, it would be the first message the controller sees.
        publish("classfleet/v1/s1/pc-2/heartbeat")
        publish("classfleet/v1/s1/pc-1/cmd")
        publish("classfleet/v1/s1/pc-1/heartbeat")
        assert received.get(timeout=10) == "classfleet/v1/s1/pc-1/heartbeat"
        publish("classfleet/v1/s1/pc-1/event")
        assert received.get(timeout=10) == "classfleet/v1/s1/pc-1/event"
        assert received.empty()
    finally:
        controller.loop_stop()
        controller.disconnect()


def test_wrong_password_and_unknown_user_are_refused(site: dict[str, object]) -> None:
    pc1 = site["devices"]["pc-1"]  # type: ignore[index]
    for user, password in ((pc1.username, "wrong"), ("nobody", "x"), ("classfleet-controller", "wrong")):
        client, rc = _client(site, user, password)
        client.loop_stop()
        assert rc in (134, 135), f"{user}: CONNACK {rc}"  # bad user name or password / not authorized


def test_plain_mqtt_is_not_served(site: dict[str, object]) -> None:
    """The only listener is TLS: a client speaking plain MQTT gets no CONNACK."""
    pc1 = site["devices"]["pc-1"]  # type: ignore[index]
    try:
        client, rc = _client(site, pc1.username, pc1.password, tls=False)
    except (AssertionError, OSError) as exc:  # no CONNACK, or the connection was dropped
        assert "CONNACK" in str(exc) or isinstance(exc, OSError)
        return
    client.loop_stop()
    pytest.fail(f"plain MQTT answered with CONNACK {rc}")
