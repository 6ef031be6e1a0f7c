"""MQTT over TLS with a private CA made by deploy/tls/make-ca.sh: the agent and the controller
connect when they trust the CA; a client that does not trust it cannot connect."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from prometheus_client import CollectorRegistry

from agents.config import AgentConfig
from agents.core import Agent
from agents.facts import SimulatedFacts
from controller.broker import free_port, wait_for_port
from controller.ingest.service import BrokerAddress, IngestService
from controller.metrics import IngestMetrics
from controller.store import db
from controller.store.models import Observation
from controller.store.writer import BatchWriter
from tests.helpers import add_school, count, wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def test_private_ca_tls_end_to_end(tmp_path, sqlite_url):
    certs = tmp_path / "tls"
    subprocess.run(["bash", str(ROOT / "deploy/tls/make-ca.sh"), str(certs), "localhost", "127.0.0.1"],
                   check=True, capture_output=True, timeout=120)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\ncafile {certs / 'ca.crt'}\n"
                    f"certfile {certs / 'broker.crt'}\nkeyfile {certs / 'broker.key'}\ntls_version tlsv1.2\n"
                    "user root\npersistence false\n")
    broker = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = db.make_engine(sqlite_url)
    add_school(engine, "s1")
    ingest = IngestService(BrokerAddress("127.0.0.1", port, tls=True, ca_file=str(certs / "ca.crt")),
                           BatchWriter(engine), IngestMetrics(CollectorRegistry()), client_id="tls-controller")
    agent = None
    try:
        assert wait_for_port(port, timeout=10)
        ingest.start()
        assert ingest.wait_connected(15), "the controller could not connect over TLS"
        agent = Agent(AgentConfig(school="s1", device="pc-tls", host="127.0.0.1", port=port,
                                  tls_ca=str(certs / "ca.crt"), heartbeat_interval_s=0.2), SimulatedFacts(seed=2))
        agent.start()

        def delivered() -> bool:
            agent.tick()
            return count(engine, Observation) >= 3

        wait_for(delivered, timeout=20, interval=0.1, what="heartbeats over TLS")
        stranger = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="no-ca", protocol=MQTTProtocolVersion.MQTTv5)
        stranger.tls_set(cert_reqs=ssl.CERT_REQUIRED)  # the system's CAs only: ours is not among them
        with pytest.raises(ssl.SSLCertVerificationError):
            stranger.connect("127.0.0.1", port)
    finally:
        if agent is not None:
            agent.stop()
        ingest.stop()
        broker.terminate()
        broker.wait(10)
        engine.dispose()
