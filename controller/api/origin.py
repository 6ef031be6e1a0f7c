"""Where a request came from, for the audit log's "from where" (issue 4: who, what, when, from where).

An ASGI middleware works out the client's address once per request and keeps it in a context
variable; a ``before_flush`` listener on the app's session factory writes it into every new audit
row (``detail["from"]``) that does not name one. So every write path that uses the app's sessions
(API routes, console forms, uploads) records it without each handler having to remember.

A proxy's header (e.g. ``X-Forwarded-For``) is believed only when the settings name it *and* the
direct peer is one of the configured trusted proxies; otherwise anyone could write any address.
"""

from __future__ import annotations

import ipaddress
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from ..config import Settings
from ..store.models import AuditLog

_client: ContextVar[str | None] = ContextVar("classfleet_client_address", default=None)
MAX_HOPS = 20  # entries of a forwarded header looked at; a longer one is a made-up header


def _networks(values: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(v, strict=False) for v in values]


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


def resolve_client(peer: str | None, forwarded: str | None, header: str | None,
                   trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str | None:
    """The client's address: the direct peer, unless a proxy header is configured and the peer is a trusted
    proxy; then the right-most address of the header that is not itself a trusted proxy."""
    if not header or not forwarded or peer is None:
        return peer
    peer_ip = _parse(peer)
    if peer_ip is None or not any(peer_ip in net for net in trusted):
        return peer
    hops = [h for h in forwarded.split(",")[-MAX_HOPS:] if h.strip()]
    for hop in reversed(hops):
        ip = _parse(hop)
        if ip is None:
            return peer  # garbage in the header: keep what we know for sure
        if not any(ip in net for net in trusted):
            return str(ip)
    return str(_parse(hops[0])) if hops else peer


class ClientAddressMiddleware:
    """Works out each HTTP request's client address (see ``resolve_client``) for the audit log."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.header = settings.proxy_client_header
        self.trusted = _networks(settings.trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Set the context variable for the request, then reset it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        peer = conn.client.host if conn.client else None
        forwarded = conn.headers.get(self.header) if self.header else None
        address = resolve_client(peer, forwarded, self.header, self.trusted)
        scope.setdefault("state", {})["client_address"] = address
        token = _client.set(address)
        try:
            await self.app(scope, receive, send)
        finally:
            _client.reset(token)


def client_address(conn: HTTPConnection) -> str | None:
    """The request's client address as the middleware saw it (the direct peer when it did not run)."""
    address = conn.scope.get("state", {}).get("client_address")
    if address is not None:
        return str(address)
    return conn.client.host if conn.client else None


def _stamp(session: Session, _context: Any, _instances: Any) -> None:
    address = _client.get()
    if address is None:
        return
    for obj in session.new:
        if isinstance(obj, AuditLog) and not (obj.detail or {}).get("from"):
            obj.detail = {**(obj.detail or {}), "from": address}


def record_origin(sessions: sessionmaker[Session]) -> None:
    """Make every session of ``sessions`` stamp new audit rows with the current request's address."""
    event.listen(sessions, "before_flush", _stamp)
