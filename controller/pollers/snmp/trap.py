"""SNMP trap receiver (pysnmp): linkDown/linkUp/coldStart/warmStart, v1/v2c and v3, on a configurable port.

A trap is a hint, not state: it triggers an immediate re-poll of the device that sent it, so what the
store holds always comes from a poll. Datagrams that are not SNMP, or that the engine refuses (wrong
community, unknown v3 user or key), are handed to ``on_reject`` with a clear reason.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .transport import V3Credentials, _ber_looks_like_snmp, format_oid

log = logging.getLogger(__name__)

DEFAULT_TRAP_PORT = 10162  # 162 needs CAP_NET_BIND_SERVICE (the systemd unit grants it)
TRAP_NAMES = {
    "1.3.6.1.6.3.1.1.5.1": "coldStart", "1.3.6.1.6.3.1.1.5.2": "warmStart",
    "1.3.6.1.6.3.1.1.5.3": "linkDown", "1.3.6.1.6.3.1.1.5.4": "linkUp",
}
SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
IF_INDEX = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1)


@dataclass(frozen=True, slots=True)
class TrapEvent:
    """One accepted notification: who sent it, what it is, and the interface it names (if any)."""

    source: tuple[str, int]
    trap_oid: str
    name: str
    if_index: int | None
    received_at: dt.datetime
    varbinds: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TrapUser:
    """An SNMPv3 trap sender: its credentials and its engine id (v3 traps are keyed on the sender's engine)."""

    credentials: V3Credentials
    engine_id: bytes


# counters the engine bumps when it refuses a message, and what each means for a technician
REFUSALS = (
    ("__SNMPv2-MIB", "snmpInBadCommunityNames", "bad_community", "wrong SNMPv1/v2c community"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownUserNames", "auth_failed", "unknown SNMPv3 user"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsWrongDigests", "auth_failed", "wrong SNMPv3 auth key"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsDecryptionErrors", "auth_failed", "wrong SNMPv3 privacy key"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownEngineIDs", "auth_failed", "unknown SNMPv3 engine id"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnsupportedSecLevels", "auth_failed", "unsupported SNMPv3 level"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsNotInTimeWindows", "auth_failed", "SNMPv3 message outside time window"),
)


class TrapReceiver:
    """Listens on one UDP port on the running event loop; ``on_trap`` and ``on_reject`` must not block."""

    def __init__(self, on_trap: Callable[[TrapEvent], None],
                 on_reject: Callable[[tuple[str, int], str, str, bytes], None], *, host: str = "127.0.0.1",
                 port: int = DEFAULT_TRAP_PORT, communities: Sequence[str] = ("public",),
                 v3_users: Sequence[TrapUser] = ()) -> None:
        self.on_trap = on_trap
        self.on_reject = on_reject
        self.host, self.port = host, port
        self.communities = tuple(communities)
        self.v3_users = tuple(v3_users)
        self.accepted = 0
        self.rejected = 0
        self._engine: Any = None
        self._receiver: Any = None
        self._delivered = False

    def start(self) -> int:
        """Bind and register with pysnmp; returns the bound port (useful with ``port=0``)."""
        from pysnmp.carrier.asyncio.dgram import udp
        from pysnmp.carrier.asyncio.dispatch import AsyncioDispatcher
        from pysnmp.entity import config, engine
        from pysnmp.entity.rfc3413 import ntfrcv
        from pysnmp.hlapi.v3arch.asyncio import auth as a
        from pysnmp.proto.rfc1902 import OctetString

        loop = asyncio.get_running_loop()
        receiver = self

        class Dispatcher(AsyncioDispatcher):  # type: ignore[misc]
            """Sees every datagram before and after pysnmp, to tell a refused one from an accepted trap."""

            def _callback_function(self, transport: Any, address: Any, message: Any) -> None:
                receiver._datagram(address, bytes(message), lambda: super(Dispatcher, self)._callback_function(
                    transport, address, message))

        snmp_engine = engine.SnmpEngine()
        dispatcher = Dispatcher(loop=loop)
        snmp_engine.register_transport_dispatcher(dispatcher)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self.host, self.port))
        self.port = int(sock.getsockname()[1])
        config.add_transport(snmp_engine, udp.DOMAIN_NAME, udp.UdpAsyncioTransport().open_server_mode(sock=sock))
        for i, community in enumerate(self.communities):
            config.add_v1_system(snmp_engine, f"trap-area-{i}", community)
        auth_protos = {"MD5": a.USM_AUTH_HMAC96_MD5, "SHA": a.USM_AUTH_HMAC96_SHA,
                       "SHA224": a.USM_AUTH_HMAC128_SHA224, "SHA256": a.USM_AUTH_HMAC192_SHA256,
                       "SHA384": a.USM_AUTH_HMAC256_SHA384, "SHA512": a.USM_AUTH_HMAC384_SHA512}
        priv_protos = {"DES": a.USM_PRIV_CBC56_DES, "AES": a.USM_PRIV_CFB128_AES,
                       "AES192": a.USM_PRIV_CFB192_AES, "AES256": a.USM_PRIV_CFB256_AES}
        for user in self.v3_users:
            c = user.credentials
            kwargs: dict[str, Any] = {"securityEngineId": OctetString(user.engine_id)}
            if c.auth_key:
                kwargs.update(authProtocol=auth_protos[c.auth_protocol], authKey=c.auth_key)
                if c.priv_key:
                    kwargs.update(privProtocol=priv_protos[c.priv_protocol], privKey=c.priv_key)
            config.add_v3_user(snmp_engine, c.user, **kwargs)
        self._receiver = ntfrcv.NotificationReceiver(snmp_engine, self._notification)
        self._engine = snmp_engine
        log.info("SNMP trap receiver listening on %s:%d", self.host, self.port)
        return self.port

    def stop(self) -> None:
        """Close the socket."""
        if self._engine is not None:
            if self._receiver is not None:
                self._receiver.close(self._engine)
            self._engine.close_dispatcher()
        self._engine = self._receiver = None

    def _counters(self) -> list[int]:
        """The engine's refusal counters, to tell why a datagram was dropped."""
        values = []
        builder = self._engine.get_mib_builder()
        for module, name, _, _ in REFUSALS:
            try:
                (symbol,) = builder.import_symbols(module, name)
                values.append(int(symbol.syntax))
            except Exception:  # noqa: BLE001 - a counter pysnmp does not keep just cannot explain a refusal
                values.append(0)
        return values

    def _datagram(self, address: Any, message: bytes, process: Callable[[], None]) -> None:
        """Process one datagram; anything that did not end in a notification is rejected with a reason."""
        source = (str(address[0]), int(address[1]))
        if not _ber_looks_like_snmp(message):
            self._reject(source, "malformed_trap", "the datagram is not SNMP (BER) at all", message)
            return
        before = self._counters()
        self._delivered = False
        try:
            process()
        except Exception as exc:  # noqa: BLE001 - pysnmp raising on a hostile datagram must not stop the receiver
            self._reject(source, "malformed_trap", f"pysnmp could not process it: {exc}", message)
            return
        if self._delivered:
            return
        after = self._counters()
        for (_, _, reason, text), b, a in zip(REFUSALS, before, after, strict=True):
            if a > b:
                self._reject(source, reason, f"trap refused: {text}", message)
                return
        self._reject(source, "malformed_trap", "SNMP message that is not an acceptable notification", message)

    def _reject(self, source: tuple[str, int], reason: str, detail: str, message: bytes) -> None:
        self.rejected += 1
        self.on_reject(source, reason, detail, message)

    def _notification(self, snmp_engine: Any, state_reference: Any, context_engine_id: Any, context_name: Any,
                      varbinds: Any, cb_ctx: Any) -> None:
        """pysnmp's callback for an accepted TRAP/INFORM (v1 traps arrive translated to v2 form)."""
        self._delivered = True
        context = snmp_engine.observer.get_execution_context("rfc3412.receiveMessage:request")
        address = context["transportAddress"]
        source = (str(address[0]), int(address[1]))
        values: dict[str, Any] = {}
        trap_oid, if_index = "", None
        for name, value in varbinds:
            oid = tuple(name)
            if oid == SNMP_TRAP_OID:
                trap_oid = format_oid(tuple(value))
            elif oid[:len(IF_INDEX)] == IF_INDEX:
                if_index = int(value)
            values[format_oid(oid)] = value.prettyPrint()
        self.accepted += 1
        event = TrapEvent(source, trap_oid, TRAP_NAMES.get(trap_oid, "other"), if_index,
                          dt.datetime.now(dt.UTC), values)
        log.debug("SNMP trap %s from %s:%d", event.name, *source)
        self.on_trap(event)
