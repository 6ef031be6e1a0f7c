"""SNMP transport: the only module that talks to the network (pysnmp 7, asyncio, one shared engine).

Decoding never sees pysnmp types: a transport returns plain Python values (``int``, ``bytes``, or
a dotted ``str`` for OBJECT IDENTIFIER), keyed by OID tuples, so decoding is tested on recordings
and the transport on real agents (STYLE: the transport is an interface).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Oid = tuple[int, ...]
Value = int | bytes | str


def parse_oid(text: str) -> Oid:
    """``"1.3.6.1"`` or ``".1.3.6.1"`` → ``(1, 3, 6, 1)``."""
    return tuple(int(p) for p in text.strip().strip(".").split("."))


def format_oid(oid: Oid) -> str:
    """``(1, 3, 6, 1)`` → ``"1.3.6.1"``."""
    return ".".join(str(p) for p in oid)


AUTH_PROTOCOLS = ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")
PRIV_PROTOCOLS = ("DES", "AES", "AES192", "AES256")


@dataclass(frozen=True, slots=True)
class V3Credentials:
    """SNMPv3 USM credentials; without keys the level is noAuthNoPriv, with an auth key only authNoPriv."""

    user: str
    auth_key: str | None = None
    priv_key: str | None = None
    auth_protocol: str = "SHA"
    priv_protocol: str = "AES"

    def __repr__(self) -> str:
        """Never show the keys (DESIGN §8: secrets never appear in logs)."""
        return f"V3Credentials(user={self.user!r}, auth={self.auth_protocol}, priv={self.priv_protocol})"


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to reach one agent: ``version`` is ``1``, ``2c`` or ``3``."""

    host: str
    port: int = 161
    version: str = "2c"
    community: str = field(default="public", repr=False)
    v3: V3Credentials | None = None
    timeout_s: float = 2.0
    retries: int = 1
    max_repetitions: int = 25

    @property
    def address(self) -> str:
        """``host:port`` for messages (never the credentials)."""
        return f"{self.host}:{self.port}"


class SnmpError(Exception):
    """A failed request with a short machine reason (``timeout``, ``auth_failed``, ``malformed_response``,
    ``agent_error``, ``transport``) and a human detail, so the store can record why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Transport(Protocol):
    """What decoding needs from the network: GET scalars and walk table columns."""

    async def get(self, target: Target, oids: Sequence[Oid]) -> dict[Oid, Value]:
        """Values of the given instances; missing ones (noSuchObject/Instance) are left out."""
        ...

    async def walk(self, target: Target, columns: Sequence[Oid]) -> dict[Oid, dict[Oid, Value]]:
        """For each column prefix, ``{row index (the OID suffix): value}`` (walked side by side)."""
        ...


def _ber_looks_like_snmp(message: bytes) -> bool:
    """A cheap check that a datagram is one BER SEQUENCE holding an INTEGER version, as SNMP is."""
    if len(message) < 4 or message[0] != 0x30:
        return False
    first = message[1]
    if first < 0x80:
        length, head = first, 2
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or len(message) < 2 + n:
            return False
        length, head = int.from_bytes(message[2:2 + n], "big"), 2 + n
    return head + length == len(message) and len(message) > head and message[head] == 0x02


class PysnmpTransport:
    """The real transport: one pysnmp engine (one UDP socket) for every target of an event loop."""

    def __init__(self) -> None:
        self._engine: object | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._malformed: dict[tuple[str, int], float] = {}
        self._auth_cache: dict[tuple[object, ...], object] = {}
        self._target_cache: dict[tuple[object, ...], object] = {}
        self._reps_cap: dict[tuple[str, int, Oid], int] = {}  # tables an agent can only walk row by row

    def _ensure_engine(self) -> object:
        """Create the engine on the running loop (pysnmp's dispatcher binds to the loop it is made on)."""
        loop = asyncio.get_running_loop()
        if self._engine is not None and self._loop is loop:
            return self._engine
        from pysnmp.carrier.asyncio.dispatch import AsyncioDispatcher
        from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

        engine = SnmpEngine()
        dispatcher = AsyncioDispatcher(loop=loop)
        engine.register_transport_dispatcher(dispatcher)
        dispatcher.register_routing_callback(self._route)
        self._engine, self._loop = engine, loop
        self._auth_cache.clear()
        self._target_cache.clear()
        return engine

    def _route(self, domain: object, address: object, message: bytes) -> None:
        """Note datagrams that are not SNMP at all, per sender, so a timeout can say "answered garbage"."""
        if not _ber_looks_like_snmp(bytes(message)):
            host, port = address[0], address[1]  # type: ignore[index]
            if len(self._malformed) > 10_000:  # junk from addresses we never ask must not pile up
                self._malformed.clear()
            self._malformed[(str(host), int(port))] = time.monotonic()
        return None

    def close(self) -> None:
        """Close the engine's socket; a later request opens a new one."""
        if self._engine is not None:
            # closing a half-open engine must not mask the caller's error
            with contextlib.suppress(Exception):
                self._engine.close_dispatcher()  # type: ignore[attr-defined]
        self._engine = None
        self._loop = None

    def _auth(self, target: Target) -> object:
        """pysnmp auth data for a target, cached so the engine's LCD is configured once per credential."""
        from pysnmp.hlapi.v3arch.asyncio import CommunityData, UsmUserData
        from pysnmp.hlapi.v3arch.asyncio import auth as a

        if target.version in ("1", "2c"):
            key: tuple[object, ...] = (target.version, target.community)
            if key not in self._auth_cache:
                self._auth_cache[key] = CommunityData(target.community, mpModel=0 if target.version == "1" else 1)
            return self._auth_cache[key]
        if target.v3 is None:
            raise SnmpError("config", "SNMPv3 target without credentials")
        v3 = target.v3
        key = ("3", v3.user, v3.auth_key, v3.priv_key, v3.auth_protocol, v3.priv_protocol)
        if key not in self._auth_cache:
            auth_protos = {"MD5": a.USM_AUTH_HMAC96_MD5, "SHA": a.USM_AUTH_HMAC96_SHA,
                           "SHA224": a.USM_AUTH_HMAC128_SHA224, "SHA256": a.USM_AUTH_HMAC192_SHA256,
                           "SHA384": a.USM_AUTH_HMAC256_SHA384, "SHA512": a.USM_AUTH_HMAC384_SHA512}
            priv_protos = {"DES": a.USM_PRIV_CBC56_DES, "AES": a.USM_PRIV_CFB128_AES,
                           "AES192": a.USM_PRIV_CFB192_AES, "AES256": a.USM_PRIV_CFB256_AES}
            kwargs: dict[str, object] = {}
            if v3.auth_key:
                kwargs.update(authKey=v3.auth_key, authProtocol=auth_protos[v3.auth_protocol.upper()])
                if v3.priv_key:
                    kwargs.update(privKey=v3.priv_key, privProtocol=priv_protos[v3.priv_protocol.upper()])
            self._auth_cache[key] = UsmUserData(v3.user, **kwargs)
        return self._auth_cache[key]

    async def _udp(self, target: Target) -> object:
        """The pysnmp transport target (address, timeout, retries), cached per target settings."""
        from pysnmp.hlapi.v3arch.asyncio import UdpTransportTarget

        key = (target.host, target.port, target.timeout_s, target.retries)
        cached = self._target_cache.get(key)
        if cached is None:
            try:
                cached = await UdpTransportTarget.create((target.host, target.port), timeout=target.timeout_s,
                                                         retries=target.retries)
            except Exception as exc:  # noqa: BLE001 - pysnmp raises its own error types for bad addresses
                raise SnmpError("transport", f"cannot resolve {target.host}: {exc}") from None
            if len(self._target_cache) > 100_000:
                self._target_cache.clear()
            self._target_cache[key] = cached
        return cached

    def _raise_for(self, target: Target, indication: object, started: float) -> None:
        """Turn a pysnmp error indication into an ``SnmpError`` with a reason a technician can act on."""
        from pysnmp.proto import errind

        name = type(indication).__name__
        if isinstance(indication, errind.RequestTimedOut):
            seen = self._malformed.pop((target.host, target.port), None)
            if seen is not None and seen >= started:
                raise SnmpError("malformed_response", f"{target.address} answered with data that is not SNMP")
            hint = "wrong community, or" if target.version in ("1", "2c") else "wrong v3 user/keys, or"
            raise SnmpError("timeout", f"no answer from {target.address} after {target.retries + 1} tries of "
                            f"{target.timeout_s:g}s ({hint} host down, or SNMP off)")
        if "Ciphering services not available" in str(indication):
            raise SnmpError("config", "SNMPv3 privacy needs the 'cryptography' package (pip install cryptography)")
        auth_like = ("UnknownUserName", "WrongDigest", "AuthenticationError", "AuthenticationFailure",
                     "DecryptionError", "UnknownSecurityName", "UnsupportedSecurityLevel", "NotInTimeWindow",
                     "UnknownEngineID")
        if name in auth_like:
            raise SnmpError("auth_failed", f"{target.address} refused the SNMPv3 credentials ({indication})")
        raise SnmpError("snmp_error", f"{target.address}: {indication}")

    async def _send(self, engine: Any, auth: Any, udp: Any, kind: str, oids: Sequence[Oid],
                    max_repetitions: int = 0) -> tuple[Any, Any, Any, Any]:
        """One request through pysnmp's command generators, below the hlapi: the hlapi resolves every
        OID through a MIB view (loading the MIB compiler), which costs more CPU than the SNMP itself."""
        from pysnmp.entity.rfc3413 import cmdgen
        from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD
        from pysnmp.proto.rfc1902 import Null, ObjectName

        addr_name, _ = LCD.configure(engine, auth, udp, b"")
        future: asyncio.Future[tuple[Any, Any, Any, Any]] = asyncio.get_running_loop().create_future()

        def done(snmp_engine: Any, handle: Any, indication: Any, status: Any, index: Any, varbinds: Any,
                 ctx: Any) -> None:
            if not future.done():
                future.set_result((indication, status, index, varbinds))

        varbinds = [(ObjectName(o), Null("")) for o in oids]
        if kind == "get":
            cmdgen.GetCommandGenerator().send_varbinds(engine, addr_name, None, b"", varbinds, done)
        elif kind == "next":
            cmdgen.NextCommandGenerator().send_varbinds(engine, addr_name, None, b"", varbinds, done)
        else:
            cmdgen.BulkCommandGenerator().send_varbinds(engine, addr_name, None, b"", 0, max_repetitions, varbinds,
                                                        done)
        return await future

    async def get(self, target: Target, oids: Sequence[Oid]) -> dict[Oid, Value]:
        """GET the instances; on SNMPv1 a noSuchName drops that OID and asks again for the rest."""
        engine = self._ensure_engine()
        auth, udp = self._auth(target), await self._udp(target)
        pending = list(oids)
        out: dict[Oid, Value] = {}
        while pending:
            started = time.monotonic()
            ind, status, index, vbs = await self._send(engine, auth, udp, "get", pending)
            if ind:
                self._raise_for(target, ind, started)
            if status:
                if int(status) == 2 and 0 < int(index) <= len(pending):  # v1 noSuchName
                    del pending[int(index) - 1]
                    continue
                raise SnmpError("agent_error", f"{target.address} answered {status.prettyPrint()}")
            for name, value in vbs:
                converted = _plain(value)
                if converted is not None:
                    out[tuple(name)] = converted
            break
        return out

    async def walk(self, target: Target, columns: Sequence[Oid]) -> dict[Oid, dict[Oid, Value]]:
        """Walk columns side by side: GETBULK on v2c/v3, multi-varbind GETNEXT on v1."""
        engine = self._ensure_engine()
        auth, udp = self._auth(target), await self._udp(target)
        result: dict[Oid, dict[Oid, Value]] = {c: {} for c in columns}
        cursor: dict[Oid, Oid] = {c: c for c in columns}
        requests = 0
        while cursor:
            requests += 1
            if requests > 5000:
                raise SnmpError("agent_error", f"{target.address}: walk did not end after 5000 requests")
            active = list(cursor)
            oids = [cursor[c] for c in active]
            started = time.monotonic()
            cap_key = (target.host, target.port, columns[0])
            reps = max(1, min(target.max_repetitions, 60 // len(active) or 1, self._reps_cap.get(cap_key, 1000)))
            if target.version == "1":
                ind, status, index, vbs = await self._send(engine, auth, udp, "next", oids)
            else:
                ind, status, index, vbs = await self._send(engine, auth, udp, "bulk", oids, reps)
            if ind:
                try:
                    self._raise_for(target, ind, started)
                except SnmpError as exc:
                    # The agent answered this walk before, so it is alive: some agents (and snmpsim on a
                    # value it cannot encode) drop a large GETBULK answer. Walk this table one row at a time.
                    if exc.reason == "timeout" and requests > 1 and reps > 1 and target.version != "1":
                        self._reps_cap[cap_key] = 1
                        requests -= 1
                        continue
                    raise
            if status:
                if int(status) == 2 and 0 < int(index) <= len(active):  # v1 end of view: that column is done
                    del cursor[active[int(index) - 1]]
                    continue
                raise SnmpError("agent_error", f"{target.address} answered {status.prettyPrint()}")
            if not vbs:
                break
            done: set[Oid] = set()
            for i, (name, value) in enumerate(vbs):
                column = active[i % len(active)]
                if column in done:
                    continue
                oid = tuple(name)
                converted = _plain(value)
                if converted is None or oid[:len(column)] != column or oid <= cursor[column]:
                    done.add(column)  # left the column, end of view, or not increasing
                    continue
                result[column][oid[len(column):]] = converted
                cursor[column] = oid
            for column in done:
                cursor.pop(column, None)
        return result


def _plain(value: object) -> Value | None:
    """pyasn1 value → int / bytes / dotted str; ``None`` for noSuchObject, noSuchInstance, endOfMibView."""
    from pyasn1.type import univ
    from pysnmp.proto import rfc1902

    if isinstance(value, rfc1902.ObjectIdentifier | univ.ObjectIdentifier):
        return format_oid(tuple(value))
    if isinstance(value, univ.OctetString):
        return bytes(value)
    if isinstance(value, univ.Integer):
        return int(value)
    return None


async def gather_bounded(limit: int, coros: Iterable[object]) -> list[object]:
    """Run awaitables with at most ``limit`` in flight; results in order, exceptions returned."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coro: object) -> object:
        async with semaphore:
            return await coro  # type: ignore[misc]

    return list(await asyncio.gather(*(one(c) for c in coros), return_exceptions=True))
