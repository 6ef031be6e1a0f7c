"""The private Mosquitto: the settings the no-loss promise needs, supervision, a clear error if missing."""

from __future__ import annotations

import time

import pytest

from controller.broker import BrokerError, PrivateBroker, free_port, mosquitto_config, wait_for_port

pytestmark = pytest.mark.integration


def test_config_carries_the_contract_settings(tmp_path):
    conf = mosquitto_config(1884, tmp_path)
    for line in ("listener 1884 127.0.0.1", "persistence true", "max_queued_messages 0",
                 "max_inflight_messages 1000"):
        assert line in conf.splitlines()


def test_missing_binary_names_the_install_command(tmp_path):
    broker = PrivateBroker(tmp_path, free_port(), binary="mosquitto-does-not-exist")
    with pytest.raises(BrokerError, match="apt-get install -y mosquitto"):
        broker.start()


def test_supervisor_restarts_a_dead_broker(tmp_path):
    broker = PrivateBroker(tmp_path, free_port())
    broker.start()
    try:
        broker.kill()
        time.sleep(0.3)
        assert wait_for_port(broker.port, timeout=15), "the supervisor did not bring mosquitto back"
    finally:
        broker.stop()


def test_queued_messages_survive_a_broker_restart(tmp_path, sqlite_url):
    """Persistence really works (also as root): messages queued for the controller's session while it
    was away survive a broker restart and are all committed when the controller returns."""
    import os

    from controller.store.models import Observation
    from tests.helpers import add_school, count, heartbeat, publish_all, publisher, running_ingest, wait_for

    port = free_port()
    broker = PrivateBroker(tmp_path / "b", port)
    broker.start()
    try:
        with running_ingest(sqlite_url, port, client_id="persist-test") as (_, engine, _m):
            add_school(engine, "s1")  # the session now exists on the broker
        client = publisher(port, "p")
        publish_all(client, [("classfleet/v1/s1/pc-1/heartbeat", heartbeat(1, s)) for s in range(1, 51)])
        client.disconnect()
        broker.stop()
        assert os.path.exists(tmp_path / "b" / "mosquitto" / "mosquitto.db"), "mosquitto wrote no persistence file"
        broker = PrivateBroker(tmp_path / "b", port)
        broker.start()
        with running_ingest(sqlite_url, port, client_id="persist-test") as (_, engine, _m):
            wait_for(lambda: count(engine, Observation) == 50, timeout=30, what="50 queued messages")
    finally:
        broker.stop()
