"""A small asyncio PJLink client (class 1 and 2): one TCP connection per poll, authenticated once.

Why our own and not ``aiopjlink2``: that library opens a new TCP connection (and redoes the md5
handshake) for every single command, so one poll of eleven queries would cost eleven connections on
a projector that often accepts only one at a time; it also pulls in a serial-port dependency. The
protocol is a line exchange small enough to own: the projector greets with ``PJLINK 0`` (no
authentication) or ``PJLINK 1 <random>``; the first command is then prefixed with
``md5(random + password)`` in hex; every reply is ``%<class><CMD>=<param>\\r``, where the param may
be ``ERR1``..``ERR4``; a wrong hash is answered ``PJLINK ERRA`` and the connection is closed.

Parsing of the answers (power, input, lamps, error status) lives here too, as pure functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass
from typing import Literal

DEFAULT_PORT = 4352
MAX_LINE = 512  # the spec caps a reply at 136 bytes; anything longer is not a projector talking PJLink
ERROR_REPLIES = {
    "ERR1": "undefined command",
    "ERR2": "out of parameter",
    "ERR3": "unavailable time",
    "ERR4": "projector failure",
}
POWER_STATES = {"0": "off", "1": "on", "2": "cooling", "3": "warming"}
INPUT_KINDS = {"1": "rgb", "2": "video", "3": "digital", "4": "storage", "5": "network", "6": "internal"}
ERST_CATEGORIES = ("fan", "lamp", "temperature", "cover", "filter", "other")
ERST_LEVELS = {"0": "ok", "1": "warning", "2": "error"}
Failure = Literal["auth", "timeout", "unreachable", "protocol"]


class PJLinkError(Exception):
    """Anything that ends a conversation with a projector; ``failure`` says which kind."""

    failure: Failure = "protocol"


class PJLinkUnreachable(PJLinkError):
    """The TCP connection was refused, reset or closed before the projector answered."""

    failure: Failure = "unreachable"


class PJLinkTimeout(PJLinkError):
    """The projector accepted the connection but did not answer in time."""

    failure: Failure = "timeout"


class PJLinkAuthError(PJLinkError):
    """``PJLINK ERRA``: the password is wrong, or the projector wants one and we have none."""

    failure: Failure = "auth"


class PJLinkProtocolError(PJLinkError):
    """The peer does not speak PJLink (a wrong greeting, a malformed or mismatched reply)."""

    failure: Failure = "protocol"


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer to a query: ``value`` when it answered, ``error`` (``ERR1``..``ERR4``) when it refused."""

    command: str
    value: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the projector gave a value (not an ``ERRn``)."""
        return self.error is None


def auth_digest(random: str, password: str) -> str:
    """The PJLink hash: md5 of the projector's random followed by the password, lower-case hex."""
    return hashlib.md5((random + password).encode("utf-8"), usedforsecurity=False).hexdigest()


class PJLinkSession:
    """One authenticated connection: ``async with PJLinkSession(...) as s: await s.query("POWR")``."""

    def __init__(self, host: str, port: int = DEFAULT_PORT, password: str | None = None,
                 connect_timeout_s: float = 3.0, read_timeout_s: float = 3.0) -> None:
        self.host = host
        self.port = port
        self._password = password
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.auth_required: bool | None = None
        self._random: str | None = None
        self._authenticated = False
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> PJLinkSession:
        """Open on entry, so a ``with`` block always starts greeted."""
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close on exit, whatever happened inside."""
        await self.close()

    async def open(self) -> None:
        """Connect and read the greeting (bounded by the connect and read timeouts)."""
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port, limit=MAX_LINE)
        except TimeoutError:
            raise PJLinkTimeout("connect timed out") from None
        except OSError as exc:
            raise PJLinkUnreachable(f"connect failed: {exc.strerror or type(exc).__name__}") from None
        greeting = await self._read_line("greeting")
        if not greeting.upper().startswith("PJLINK "):
            raise PJLinkProtocolError(f"not a PJLink greeting: {greeting[:40]!r}")
        mode, _, random = greeting[7:].partition(" ")
        if mode == "0":
            self.auth_required, self._authenticated = False, True
        elif mode == "1" and random:
            self.auth_required, self._random = True, random.strip()
        elif greeting.upper() == "PJLINK ERRA":
            raise PJLinkAuthError("projector refused the connection (ERRA)")
        else:
            raise PJLinkProtocolError(f"unknown PJLink security mode: {greeting[:40]!r}")

    async def close(self) -> None:
        """Close the connection; a peer that already went away is not an error."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    async def query(self, command: str, pjclass: int = 1) -> Reply:
        """Send ``%<class><command> ?`` and read the answer; ``ERRn`` comes back in ``Reply.error``."""
        return await self.send(command, "?", pjclass)

    async def send(self, command: str, param: str, pjclass: int = 1) -> Reply:
        """Send one command with ``param``; the first one on an authenticated link carries the hash."""
        if self._writer is None:
            raise PJLinkUnreachable("not connected")
        if len(command) != 4 or not command.isalnum() or pjclass not in (1, 2) or len(param) > 128:
            raise ValueError(f"not a PJLink command: {command!r} {param!r}")
        line = f"%{pjclass}{command.upper()} {param}\r"
        if not self._authenticated:
            if self._password is None:
                raise PJLinkAuthError("projector requires a password and none is configured")
            assert self._random is not None
            line = auth_digest(self._random, self._password) + line
        try:
            self._writer.write(line.encode("ascii"))
            await self._writer.drain()
        except OSError as exc:
            raise PJLinkUnreachable(f"send failed: {exc.strerror or type(exc).__name__}") from None
        answer = await self._read_line(command)
        if answer.upper() == "PJLINK ERRA":
            raise PJLinkAuthError("wrong password (ERRA)")
        self._authenticated = True
        return parse_reply(answer, command, pjclass)

    async def _read_line(self, what: str) -> str:
        """One CR-terminated line under the read timeout."""
        assert self._reader is not None
        try:
            async with asyncio.timeout(self.read_timeout_s):
                raw = await self._reader.readuntil(b"\r")
        except TimeoutError:
            raise PJLinkTimeout(f"no answer to {what} within {self.read_timeout_s:g} s") from None
        except asyncio.IncompleteReadError:
            raise PJLinkUnreachable(f"connection closed while waiting for {what}") from None
        except asyncio.LimitOverrunError:
            raise PJLinkProtocolError(f"answer to {what} longer than {MAX_LINE} bytes") from None
        except OSError as exc:
            raise PJLinkUnreachable(f"connection lost: {exc.strerror or type(exc).__name__}") from None
        return raw.decode("utf-8", errors="replace").strip("\r\n\x00 ")


def parse_reply(answer: str, command: str, pjclass: int = 1) -> Reply:
    """Check ``%<class><CMD>=<param>`` against what was asked; ``ERRn`` becomes ``Reply.error``."""
    expected = f"%{pjclass}{command.upper()}="
    if not answer.upper().startswith(expected.upper()):
        raise PJLinkProtocolError(f"unexpected answer to {command}: {answer[:40]!r}")
    param = answer[len(expected):]
    if param.upper() in ERROR_REPLIES:
        return Reply(command, error=param.upper())
    return Reply(command, value=param)


def parse_power(value: str) -> str:
    """POWR: ``0`` off (standby), ``1`` on, ``2`` cooling down, ``3`` warming up."""
    try:
        return POWER_STATES[value.strip()]
    except KeyError:
        raise PJLinkProtocolError(f"unknown power state {value!r}") from None


def parse_input(value: str) -> str:
    """INPT: two characters, the kind (1 RGB .. 6 internal) and the number (1-9, class 2 also A-Z)."""
    value = value.strip()
    if len(value) != 2 or value[0] not in INPUT_KINDS or not value[1].isalnum():
        raise PJLinkProtocolError(f"unknown input {value!r}")
    return value


def input_name(value: str) -> str:
    """``31`` → ``digital 1``, for people."""
    return f"{INPUT_KINDS.get(value[:1], '?')} {value[1:]}"


def parse_lamps(value: str) -> list[tuple[int, bool]]:
    """LAMP: pairs of cumulative hours (0-99999) and lit (0/1), one pair per lamp (up to 8)."""
    fields = value.split()
    if not fields or len(fields) % 2 or len(fields) > 16:
        raise PJLinkProtocolError(f"malformed lamp answer {value!r}")
    lamps = []
    for hours, lit in zip(fields[::2], fields[1::2], strict=True):
        if not hours.isdigit() or lit not in ("0", "1"):
            raise PJLinkProtocolError(f"malformed lamp answer {value!r}")
        lamps.append((int(hours), lit == "1"))
    return lamps


def parse_errors(value: str) -> dict[str, str]:
    """ERST: six digits, fan, lamp, temperature, cover, filter, other; 0 ok, 1 warning, 2 error."""
    value = value.strip()
    if len(value) != len(ERST_CATEGORIES) or any(c not in ERST_LEVELS for c in value):
        raise PJLinkProtocolError(f"malformed error status {value!r}")
    return {name: ERST_LEVELS[c] for name, c in zip(ERST_CATEGORIES, value, strict=True)}
