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
