"""Simulated PJLink projectors for the demo, the tests and the benchmark: real TCP on loopback.

Each projector listens on its own port and follows the PJLink specification (class 1 and 2): it
greets with ``PJLINK 0`` or ``PJLINK 1 <random>``, checks ``md5(random + password)`` on the first
command and answers ``PJLINK ERRA`` (then closes) on a wrong or missing hash, answers
``%<class><CMD>=<param>``, ``ERR1`` for an undefined command (or a class 2 command on a class 1
projector), ``ERR2`` for a parameter out of range, ``ERR3`` when the command is unavailable in the
current state (input while in standby) and, when told to, ``ERR4`` for a projector failure. Power,
input, lamps and the ERST error flags can be changed while it runs; a ``silent`` projector accepts
the connection and never says a word, a ``mute`` one greets and then never answers.

Run ``python -m controller.pollers.pjlink.simulator --projectors 5`` for the demo: it prints one JSON
line per projector (``{"kind": "projector", "port": ...}``) and serves until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from ..simthread import ThreadedSimulator
from .protocol import ERST_CATEGORIES, INPUT_KINDS

Mode = Literal["ok", "silent", "mute"]
Power = Literal["off", "on", "cooling", "warming"]
POWER_CODES: dict[str, str] = {"off": "0", "on": "1", "cooling": "2", "warming": "3"}
LEVEL_CODES: dict[str, str] = {"ok": "0", "warning": "1", "error": "2"}
MAX_LINE = 256
IDLE_TIMEOUT_S = 30.0  # the spec: the projector closes a connection that sends nothing for 30 s
_HASHED = re.compile(r"^([0-9a-fA-F]{32})(%.*)$")
QUERY_ONLY = frozenset({"ERST", "LAMP", "INST", "NAME", "INF1", "INF2", "INFO", "CLSS", "SNUM", "SVER", "FILT",
                        "RLMP", "RFIL"})
CLASS2_ONLY = frozenset({"SNUM", "SVER", "FILT", "RLMP", "RFIL"})


@dataclass
class SimProjector:
    """One simulated projector; its fields may be changed while it runs (tests flip them)."""

    password: str | None = field(default=None, repr=False)  # None: no authentication (PJLINK 0)
    pjlink_class: int = 1
    name: str = "Phong 101"
    manufacturer: str = "ClassfleetSim"
    model: str = "SimProjector-1"
    other: str = "sim"
    serial: str = "SIMPJ0001"
    firmware: str = "1.0.3"
    power: Power = "on"
    input: str = "31"
    inputs: tuple[str, ...] = ("11", "21", "31", "32", "51")
    lamp_hours: list[int] = field(default_factory=lambda: [1200])  # []: no lamp (laser): LAMP answers ERR1
    filter_hours: int = 300
    errors: dict[str, str] = field(default_factory=dict)  # ERST category -> ok | warning | error
    mode: Mode = "ok"
    replies: dict[str, str] = field(default_factory=dict)  # command -> forced param, e.g. {"LAMP": "ERR3"}
    unsupported: frozenset[str] = frozenset()  # commands answered ERR1 (the firmware does not know them)
    one_command_per_connection: bool = False  # close after each answer, as some firmwares do
    connections: int = 0
    commands: int = 0

    def set_error(self, category: str, level: str) -> None:
        """Set one ERST flag: ``fan``, ``lamp``, ``temperature``, ``cover``, ``filter`` or ``other``."""
        if category not in ERST_CATEGORIES or level not in LEVEL_CODES:
            raise ValueError(f"unknown error flag {category}={level}")
        self.errors[category] = level

    def erst(self) -> str:
        """The six ERST digits."""
        return "".join(LEVEL_CODES[self.errors.get(c, "ok")] for c in ERST_CATEGORIES)

    def lamp_answer(self) -> str | None:
        """LAMP: ``hours lit`` per lamp; lamps are lit while the projector is on or warming up."""
        if not self.lamp_hours:
            return None
        lit = "1" if self.power in ("on", "warming") else "0"
        return " ".join(f"{h} {lit}" for h in self.lamp_hours)

    def answer(self, pjclass: int, command: str, param: str) -> str:
        """The param of the reply to one command, following the spec's rules for ERR1, ERR2 and ERR3."""
        if command in self.replies:
            return self.replies[command]
        if command in self.unsupported or (command in CLASS2_ONLY and (pjclass != 2 or self.pjlink_class != 2)):
            return "ERR1"
        if pjclass == 2 and self.pjlink_class != 2:
            return "ERR1"
        query = param == "?"
        if command in QUERY_ONLY and not query:
            return "ERR2"
        if command == "POWR":
            if query:
                return POWER_CODES[self.power]
            if param not in ("0", "1"):
                return "ERR2"
            if self.power in ("cooling", "warming"):
                return "ERR3"
            self.power = "on" if param == "1" else "off"
            return "OK"
        if command == "INPT":
            if query:
                return self.input if self.power == "on" else "ERR3"
            if len(param) != 2 or param[0] not in INPUT_KINDS:
                return "ERR2"
            if param not in self.inputs:
                return "ERR2"
            if self.power != "on":
                return "ERR3"
            self.input = param
            return "OK"
        if command == "AVMT":
            return "30" if query else ("OK" if param in ("10", "11", "20", "21", "30", "31") else "ERR2")
        simple: dict[str, str | None] = {
            "ERST": self.erst(), "LAMP": self.lamp_answer(), "INST": " ".join(self.inputs), "NAME": self.name,
            "INF1": self.manufacturer, "INF2": self.model, "INFO": self.other, "CLSS": str(self.pjlink_class),
            "SNUM": self.serial, "SVER": self.firmware, "FILT": str(self.filter_hours), "RLMP": "SIM-LAMP-01",
            "RFIL": "SIM-FILTER-01",
        }
        if command not in simple:
            return "ERR1"
        value = simple[command]
        return "ERR1" if value is None else value


def _md5(text: str) -> str:
    """The hex md5 the projector expects (random + password)."""
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


class ProjectorSimulator(ThreadedSimulator):
    """Many simulated projectors, one loopback port each, served by one event loop."""

    thread_name = "PJLink simulator"

    def __init__(self, host: str = "127.0.0.1", idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        if not host.startswith("127."):
            raise ValueError("the simulator serves on loopback only")
        self.host = host
        self.idle_timeout_s = idle_timeout_s
        self.projectors: dict[int, SimProjector] = {}
        self._servers: dict[int, asyncio.Server] = {}
        self._handlers: set[asyncio.Task[Any]] = set()
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- asyncio API (the simulator's own loop) --------------------------------------------------

    async def astart(self) -> None:
        """Prepare; projectors are added with ``aadd``."""
        self._stopping = asyncio.Event()

    async def aadd(self, projector: SimProjector, port: int = 0, listening: bool = True) -> int:
        """Serve ``projector`` on ``port`` (0: a free one); ``listening=False`` registers it powered off."""
        server = await asyncio.start_server(lambda r, w: self._serve(projector, r, w), self.host, port,
                                            limit=MAX_LINE, reuse_address=True)
        port = int(server.sockets[0].getsockname()[1])
        self.projectors[port] = projector
        self._servers[port] = server
        if not listening:
            await self.akill(port)
        return port

    async def akill(self, port: int) -> None:
        """Close the projector's port: connection refused, like a projector at the wall switch."""
        server = self._servers.pop(port, None)
        if server is not None:
            server.close()
            await server.wait_closed()

    async def arevive(self, port: int) -> None:
        """Listen on the projector's port again."""
        if port in self._servers:
            return
        projector = self.projectors[port]
        self._servers[port] = await asyncio.start_server(lambda r, w: self._serve(projector, r, w), self.host, port,
                                                         limit=MAX_LINE, reuse_address=True)

    async def astop(self) -> None:
        """Release silent handlers and close every port."""
        if self._stopping is not None:
            self._stopping.set()
        for port in list(self._servers):
            server = self._servers.pop(port)
            server.close()
        # every connection handler, including those accepted but not yet started (not in _handlers yet)
        current = asyncio.current_task()
        pending = (asyncio.all_tasks() - {current}) | self._handlers  # the loop is the simulator's own
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2)

    # -- thread API (tests, demo) ----------------------------------------------------------------


    # -- one connection --------------------------------------------------------------------------

    async def _serve(self, projector: SimProjector, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        """One client connection, from greeting to close."""
        task = asyncio.current_task()
        assert task is not None and self._stopping is not None
        self._handlers.add(task)
        projector.connections += 1
        try:
            if projector.mode == "silent":  # accept, never answer; read until the client gives up
                while await reader.read(MAX_LINE):
                    pass
                return
            random = secrets.token_hex(4) if projector.password is not None else None
            writer.write(b"PJLINK 1 " + random.encode() + b"\r" if random else b"PJLINK 0\r")
            await writer.drain()
            authenticated = random is None
            while not self._stopping.is_set():
                try:
                    async with asyncio.timeout(self.idle_timeout_s):
                        raw = await reader.readuntil(b"\r")
                except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
                    return
                line = raw.decode("utf-8", errors="replace").strip("\r\n")
                if projector.mode == "mute":
                    continue
                if not authenticated:
                    match = _HASHED.match(line)
                    assert projector.password is not None and random is not None
                    if match is None or match.group(1).lower() != _md5(random + projector.password):
                        writer.write(b"PJLINK ERRA\r")
                        await writer.drain()
                        return
                    authenticated, line = True, match.group(2)
                reply = self._reply(projector, line)
                if reply is not None:
                    writer.write(reply.encode("utf-8") + b"\r")
                    await writer.drain()
                    if projector.one_command_per_connection:
                        return
        except (ConnectionError, OSError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._handlers.discard(task)

    @staticmethod
    def _reply(projector: SimProjector, line: str) -> str | None:
        """``%<class><CMD>=<param>`` for one request line; a line that is not a command gets no answer."""
        if len(line) < 7 or line[0] != "%" or line[1] not in "12":
            return None
        pjclass, command = int(line[1]), line[2:6].upper()
        if len(line) < 8 or line[6] != " ":
            return f"%{pjclass}{command}=ERR2"
        projector.commands += 1
        return f"%{pjclass}{command}={projector.answer(pjclass, command, line[7:])}"


@contextlib.contextmanager
def running_simulator(*projectors: SimProjector) -> Iterator[tuple[ProjectorSimulator, list[int]]]:
    """A started simulator serving ``projectors``; yields it and their ports."""
    sim = ProjectorSimulator().start()
    try:
        ports = [sim.add(p) for p in projectors]
        yield sim, ports
    finally:
        sim.stop()


def fleet(projectors: int, pjlink_class: int = 2, password: str | None = None, lamp_hours: int = 1200,
          serial_prefix: str = "SIMPJ") -> list[SimProjector]:
    """A demo fleet of healthy projectors with distinct serials and names."""
    return [SimProjector(password=password, pjlink_class=pjlink_class, serial=f"{serial_prefix}{i:04d}",
                         name=f"Projector {i}", lamp_hours=[lamp_hours] if lamp_hours >= 0 else [])
            for i in range(1, projectors + 1)]


async def _serve(args: argparse.Namespace) -> None:
    """The command line's server: start, print the ports as JSON lines, serve until SIGINT/SIGTERM."""
    sim = ProjectorSimulator(args.host)
    await sim.astart()
    projectors = fleet(args.projectors, args.pjlink_class, args.password, args.lamp_hours, args.serial_prefix)
    for i, projector in enumerate(projectors):
        if i < args.silent:
            projector.mode = "silent"
        port = await sim.aadd(projector, args.port_base + i if args.port_base else 0)
        print(json.dumps({"kind": "projector", "host": args.host, "port": port, "serial": projector.serial,
                          "class": projector.pjlink_class, "auth": projector.password is not None,
                          "mode": projector.mode}), flush=True)
    print(json.dumps({"ready": len(projectors)}), flush=True)
    await sim.aserve_until_signalled()


def main(argv: list[str] | None = None) -> None:
    """``python -m controller.pollers.pjlink.simulator``: a simulated fleet on loopback for the demo or bench."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projectors", type=int, default=5)
    parser.add_argument("--class", dest="pjlink_class", type=int, choices=(1, 2), default=2)
    parser.add_argument("--password", default=None, help="PJLink password (none: no authentication)")
    parser.add_argument("--lamp-hours", type=int, default=1200, help="hours on every lamp (-1: no lamp)")
    parser.add_argument("--silent", type=int, default=0, help="the first N projectors accept and never answer")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port-base", type=int, default=0, help="consecutive ports from here (0: free ports)")
    parser.add_argument("--serial-prefix", default="SIMPJ")
    args = parser.parse_args(argv)
    if not 0 <= args.projectors <= 5000:
        parser.error("at most 5000 projectors")
    if not args.host.startswith("127."):
        parser.error("the simulator serves on loopback (127.0.0.0/8) only")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
