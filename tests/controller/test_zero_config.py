"""``classfleet controller`` with no configuration: SQLite in its data dir and a private Mosquitto."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from controller.broker import free_port
from controller.store import db
from tests.helpers import add_school, heartbeat, publish_all, publisher, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _env(home) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLASSFLEET_", "XDG_"))}
    env["HOME"] = str(home)
    return env


def test_zero_config_controller_runs_its_own_broker_and_sqlite(tmp_path):
    port, mqtt_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "controller", "controller", "--port", str(port),
                             "--mqtt-port", str(mqtt_port)], env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    data_dir = tmp_path / ".local" / "share" / "classfleet"
    try:
        wait_for(lambda: _ready(port), timeout=30, what="controller ready")
        assert (data_dir / "classfleet.db").exists()
        conf = (data_dir / "mosquitto" / "mosquitto.conf").read_text()
        assert f"listener {mqtt_port} 127.0.0.1" in conf and "persistence true" in conf
        engine = db.make_engine(f"sqlite:///{data_dir / 'classfleet.db'}")
        add_school(engine, "s1")
        client = publisher(mqtt_port, "zero-config-agent")
        # The controller caches the schools it knows; a new school is picked up on the next miss.
        publish_all(client, [("classfleet/v1/s1/pc-1/heartbeat", heartbeat(1, 1))])
        api = f"http://127.0.0.1:{port}/api/v1/devices"
        assert httpx.get(api).status_code == 401  # authentication is on by default
        env = _env(tmp_path) | {"CLASSFLEET_NEW_PASSWORD": "a long admin password"}
        cli = [sys.executable, "-m", "controller", "user"]
        created = subprocess.run([*cli, "create", "admin", "--role", "admin", "--all-schools"], env=env,
                                 capture_output=True, text=True, timeout=60)
        assert created.returncode == 0, created.stderr
        token = subprocess.run([*cli, "token", "admin"], env=env, capture_output=True, text=True, timeout=60)
        headers = {"Authorization": f"Bearer {token.stdout.strip()}"}
        devices = wait_for(lambda: httpx.get(api, headers=headers).json()["items"], what="device visible in the API")
        assert devices[0]["uid"] == "pc-1" and devices[0]["health"] == "ok"
        client.disconnect()
        engine.dispose()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert not _port_open(mqtt_port), "the private broker outlived the controller"
    assert b"Traceback" not in out, out.decode()[-3000:]


def test_missing_mosquitto_stops_with_the_install_command(tmp_path):
    env = _env(tmp_path) | {"CLASSFLEET_MOSQUITTO_BINARY": "mosquitto-not-installed"}
    result = subprocess.run([sys.executable, "-m", "controller", "controller", "--port", str(free_port()),
                             "--mqtt-port", str(free_port())], env=env, capture_output=True, timeout=60)
    assert result.returncode == 1
    assert b"apt-get install -y mosquitto" in result.stdout + result.stderr


def test_bad_setting_stops_start_up_naming_it(tmp_path):
    env = _env(tmp_path) | {"CLASSFLEET_INGEST_BATCH_MAX": "lots"}
    result = subprocess.run([sys.executable, "-m", "controller", "controller"], env=env, capture_output=True,
                            timeout=60)
    assert result.returncode == 2
    assert b"CLASSFLEET_INGEST_BATCH_MAX" in result.stdout + result.stderr


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
