"""The private Mosquitto the controller starts, supervises and stops when no broker is configured.

Its configuration carries what the wire contract relies on (DESIGN §4): persistence, no cap on
queued QoS 1 messages, enough in-flight messages for a whole ingest batch, persistent
sessions that outlive a controller restart, and the wire contract's payload size limit. It
listens on loopback only by default.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from classfleet_wire import MAX_PAYLOAD_BYTES

log = logging.getLogger(__name__)

# Payloads the broker accepts; the controller announces a matching MQTT 5 Maximum Packet Size.
BROKER_PAYLOAD_LIMIT = 2 * MAX_PAYLOAD_BYTES

INSTALL_HINT = "sudo apt-get install -y mosquitto   (Debian/Ubuntu; the binary must be on PATH)"


class BrokerError(RuntimeError):
    """The private broker cannot be started."""


def mosquitto_config(port: int, state_dir: Path, bind: str = "127.0.0.1", inflight: int = 1000) -> str:
    """Mosquitto configuration with the settings the no-loss promise needs."""
    return "\n".join([
        "# Written by classfleet: the private broker's configuration.",
        "per_listener_settings false",
        # Started as root, Mosquitto switches to the 'mosquitto' user, which cannot write our state
        # directory: persistence would silently stop. Run it as whoever runs us.
        f"user {getpass.getuser()}",
        f"listener {port} {bind}",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {state_dir}/",
        "autosave_interval 5",
        "max_queued_messages 0",
        "max_queued_bytes 0",
        f"max_inflight_messages {inflight}",
        # Twice the wire contract's payload limit: a payload a little over the limit still reaches the
        # controller, which dead-letters and counts it (reason "oversized"); a bigger one is refused here
        # (Mosquitto 2.0 closes the sender's connection) and never costs a subscriber memory.
        f"message_size_limit {BROKER_PAYLOAD_LIMIT}",
        "persistent_client_expiration 30d",
        f"log_dest file {state_dir / 'mosquitto.log'}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages true",
        "",
    ])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> bool:
    """Poll until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when the controller dies (even by SIGKILL)."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class PrivateBroker:
    """Runs ``mosquitto -c <data_dir>/mosquitto/mosquitto.conf`` and restarts it if it dies."""

    def __init__(self, data_dir: Path, port: int, *, binary: str = "mosquitto", bind: str = "127.0.0.1",
                 inflight: int = 1000) -> None:
        self.port = port
        self.bind = bind
        self._binary = binary
        self._state_dir = (data_dir / "mosquitto").resolve()
        self._inflight = inflight
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    @property
    def config_path(self) -> Path:
        """Where the generated configuration lives."""
        return self._state_dir / "mosquitto.conf"

    def start(self, timeout: float = 10.0) -> None:
        """Write the configuration, start Mosquitto and wait until it accepts connections."""
        exe = shutil.which(self._binary) or (self._binary if Path(self._binary).is_file() else None)
        if exe is None:
            raise BrokerError(f"'{self._binary}' was not found. Install it with:\n  {INSTALL_HINT}\n"
                              "or point classfleet at a broker with CLASSFLEET_MQTT_URL=mqtt://host:port")
        self._binary = exe
        self._state_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(mosquitto_config(self.port, self._state_dir, self.bind, self._inflight))
        self._spawn()
        if not wait_for_port(self.port, self.bind, timeout):
            self.stop()
            raise BrokerError(f"mosquitto did not start on {self.bind}:{self.port}; see "
                              f"{self._state_dir / 'mosquitto.log'}")
        self._supervisor = threading.Thread(target=self._supervise, name="broker-supervisor", daemon=True)
        self._supervisor.start()
        log.info("private mosquitto on %s:%d (state in %s)", self.bind, self.port, self._state_dir)

    def _spawn(self) -> None:
        # Its own session: a Ctrl+C in the terminal reaches the controller, which stops the broker
        # in order, instead of killing the broker under it. On Linux it still dies with its parent.
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [self._binary, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True, preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

    def _supervise(self) -> None:
        delay = 1.0
        while not self._stopping.is_set():
            proc = self._proc
            if proc is not None and proc.poll() is not None and not self._stopping.is_set():
                err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
                log.error("private mosquitto exited with %s%s; restarting in %.0fs", proc.returncode,
                          f" ({err[-300:]})" if err else "", delay)
                if self._stopping.wait(delay):
                    return
                self._spawn()
                if wait_for_port(self.port, self.bind, 10):
                    log.info("private mosquitto is back")
                    delay = 1.0
                else:
                    delay = min(delay * 2, 30.0)
            self._stopping.wait(0.5)

    def kill(self) -> None:
        """SIGKILL the broker (tests: the supervisor is expected to bring it back)."""
        if self._proc is not None:
            self._proc.kill()

    def stop(self) -> None:
        """Stop Mosquitto cleanly (it saves its persistence file on SIGTERM)."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._supervisor is not None:
            self._supervisor.join(5)
