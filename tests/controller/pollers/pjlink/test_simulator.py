"""The simulator speaks PJLink as the specification writes it, checked over a raw socket, byte by byte."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys

import pytest

from controller.pollers.pjlink.simulator import ProjectorSimulator, SimProjector

pytestmark = pytest.mark.integration


class _Raw:
    """A raw TCP conversation with one simulated projector."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        self.buf = b""

    def line(self) -> str:
        while b"\r" not in self.buf:
            chunk = self.sock.recv(256)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        raw, _, self.buf = self.buf.partition(b"\r")
        return raw.decode()

    def ask(self, text: str) -> str:
        self.sock.sendall(text.encode() + b"\r")
        return self.line()

    def closed(self) -> bool:
        return self.sock.recv(16) == b""


def test_no_authentication_greeting_and_class1_answers(simulator):
    port = simulator.add(SimProjector(pjlink_class=1, power="off", lamp_hours=[10, 20]))
    raw = _Raw(port)
    assert raw.line() == "PJLINK 0"
    assert raw.ask("%1POWR ?") == "%1POWR=0"
    assert raw.ask("%1INPT ?") == "%1INPT=ERR3"  # unavailable in standby
    assert raw.ask("%1LAMP ?") == "%1LAMP=10 0 20 0"
    assert raw.ask("%1ERST ?") == "%1ERST=000000"
    assert raw.ask("%1CLSS ?") == "%1CLSS=1"
    assert raw.ask("%2SNUM ?") == "%2SNUM=ERR1"  # a class 2 command on a class 1 projector
    assert raw.ask("%1XYZW ?") == "%1XYZW=ERR1"  # undefined
    assert raw.ask("%1POWR 7") == "%1POWR=ERR2"  # out of parameter
    assert raw.ask("%1LAMP 1") == "%1LAMP=ERR2"  # a query-only command given a parameter
    assert raw.ask("%1POWR 1") == "%1POWR=OK"
    assert raw.ask("%1POWR ?") == "%1POWR=1"
    assert raw.ask("%1INPT 99") == "%1INPT=ERR2"
    assert raw.ask("%1INPT 11") == "%1INPT=OK"
    assert raw.ask("%1INPT ?") == "%1INPT=11"


def test_authentication_handshake_and_erra(simulator):
    port = simulator.add(SimProjector(password="JBMIAProjectorLink", pjlink_class=2, serial="S1"))
    raw = _Raw(port)
    greeting = raw.line()
    assert greeting.startswith("PJLINK 1 ") and len(greeting.split()[2]) == 8
    digest = hashlib.md5((greeting.split()[2] + "JBMIAProjectorLink").encode()).hexdigest()
    assert raw.ask(digest + "%1POWR ?") == "%1POWR=1"
    assert raw.ask("%2SNUM ?") == "%2SNUM=S1"  # authenticated once per connection
    assert raw.ask("%1CLSS ?") == "%1CLSS=2"
    wrong = _Raw(port)
    random = wrong.line().split()[2]
    bad = hashlib.md5((random + "nope").encode()).hexdigest()
    assert wrong.ask(bad + "%1POWR ?") == "PJLINK ERRA"
    assert wrong.closed()
    unhashed = _Raw(port)
    unhashed.line()
    assert unhashed.ask("%1POWR ?") == "PJLINK ERRA"
    assert unhashed.closed()


def test_forced_err4_silent_and_killed_projectors(simulator):
    projector = SimProjector(replies={"ERST": "ERR4"})
    port = simulator.add(projector)
    raw = _Raw(port)
    raw.line()
    assert raw.ask("%1ERST ?") == "%1ERST=ERR4"
    silent = simulator.add(SimProjector(mode="silent"))
    quiet = socket.create_connection(("127.0.0.1", silent), timeout=0.3)
    with pytest.raises(TimeoutError):
        quiet.recv(16)  # connected, and not a word
    quiet.close()
    simulator.kill(port)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    simulator.revive(port)
    assert _Raw(port).line() == "PJLINK 0"


def test_loopback_only():
    with pytest.raises(ValueError):
        ProjectorSimulator("0.0.0.0")


def test_command_line_prints_one_json_line_per_projector():
    proc = subprocess.Popen([sys.executable, "-m", "controller.pollers.pjlink.simulator", "--projectors", "3",
                             "--class", "1", "--silent", "1"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [json.loads(proc.stdout.readline()) for _ in range(4)]
    finally:
        proc.terminate()
        proc.wait(10)
    assert lines[3] == {"ready": 3}
    assert [(d["kind"], d["class"], d["mode"]) for d in lines[:3]] == [
        ("projector", 1, "silent"), ("projector", 1, "ok"), ("projector", 1, "ok")]
    assert all(d["host"] == "127.0.0.1" and d["port"] > 0 for d in lines[:3])
