"""Imports through the API and the console: a size-limited multipart upload, the importer of its kind run
within the user's schools, the audit log, and the console's previews waiting for confirmation.

The body is counted as it arrives and refused past the limit (413) before any parsing, so an upload can
never fill the disk or the memory; the form itself may hold one file and a few fields only.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import UploadFile

from ..auth import Principal
from ..store.models import AuditLog
from .importer import import_inventory
from .plan import import_plan
from .validation import ImportResult

MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # ~50,000 inventory rows: a department's whole file fits
FORM_OVERHEAD_BYTES = 64 * 1024  # multipart boundaries and the form's small fields
IMPORTERS: dict[str, Callable[..., ImportResult]] = {"inventory": import_inventory, "plan": import_plan}
PENDING_TTL_S = 1800.0  # a console preview can be confirmed for 30 minutes
PENDING_MAX = 8  # previews kept at once (each holds its file); the oldest goes first


class UploadError(Exception):
    """The upload cannot be used: an HTTP status and an i18n code (controller/audit/i18n.py) with values."""

    def __init__(self, status: int, code: str, **values: object) -> None:
        super().__init__(code)
        self.status, self.code, self.values = status, code, values


@dataclass(frozen=True)
class Upload:
    """One uploaded file and the form's text fields."""

    filename: str
    data: bytes
    fields: dict[str, str]


def _basename(name: str | None) -> str:
    """The file's own name (browsers on Windows may send a full path), bounded."""
    name = PureWindowsPath(PurePosixPath(name or "").name).name
    return name[-200:]


async def read_upload(request: Request, max_bytes: int = MAX_UPLOAD_BYTES) -> Upload:
    """Read a multipart form with one file, refusing more than ``max_bytes`` of file before parsing it."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise UploadError(422, "no_file")
    limit = max_bytes + FORM_OVERHEAD_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadError(413, "too_large", max=max_bytes // (1024 * 1024))
    body = bytearray()
    async for chunk in request.stream():  # chunked bodies declare no length: count them too
        body += chunk
        if len(body) > limit:
            raise UploadError(413, "too_large", max=max_bytes // (1024 * 1024))
    request._body = bytes(body)  # Starlette's form parser reads the cached body  # noqa: SLF001
    form = await request.form(max_files=1, max_fields=10)
    try:
        files = [v for v in form.values() if isinstance(v, UploadFile)]
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if not files or not files[0].filename:
            raise UploadError(422, "no_file")
        data = await files[0].read()
        if len(data) > max_bytes:
            raise UploadError(413, "too_large", max=max_bytes // (1024 * 1024))
        return Upload(_basename(files[0].filename), data, fields)
    finally:
        await form.close()


def writable_schools(principal: Principal) -> frozenset[str] | None:
    """The schools an importing user may change (None: every school, and districts too)."""
    return None if principal.everywhere else frozenset(principal.schools or ())


def run_import(sessions: sessionmaker[Session], kind: str, upload: Upload, principal: Principal, *,
               dry_run: bool) -> ImportResult:
    """Run the importer of ``kind`` within the principal's schools (blocking: call it from a thread). A refused
    file (rows of other schools) is written to the audit log too: it is someone trying to reach past their scope."""
    importer = IMPORTERS[kind]
    with sessions() as session:
        result = importer(session, upload.filename, upload.data, actor=principal.name,
                          writable=writable_schools(principal), dry_run=dry_run)
    if result.refused:
        refused = sorted({str(e.values.get("value")) for e in result.errors if e.code.startswith("scope_")})
        with sessions.begin() as session:
            session.add(AuditLog(actor=principal.name, action=f"{kind}.import_refused",
                                 target=f"file:{upload.filename}",
                                 detail={"rows": result.rows, "outside_scope": refused[:50], "dry_run": dry_run}))
    return result


@dataclass(frozen=True)
class Pending:
    """A previewed upload waiting for its user's confirmation."""

    user: str
    kind: str
    upload: Upload
    at: float


class PendingImports:
    """The console's previews between "check" and "import", in memory, bounded in count and age. (With
    several controllers behind one address, a confirmation reaching another one asks for the file again.)"""

    def __init__(self, ttl_s: float = PENDING_TTL_S, max_items: int = PENDING_MAX,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._items: dict[str, Pending] = {}
        self._lock = threading.Lock()
        self._ttl, self._max, self._clock = ttl_s, max_items, clock

    def put(self, user: str, kind: str, upload: Upload) -> str:
        """Keep a preview; returns the token its confirmation form carries."""
        token = secrets.token_urlsafe(18)
        with self._lock:
            self._expire()
            while len(self._items) >= self._max:
                self._items.pop(next(iter(self._items)))
            self._items[token] = Pending(user, kind, upload, self._clock())
        return token

    def take(self, token: str, user: str) -> Pending | None:
        """The preview behind ``token`` if it is this user's and still fresh (used once)."""
        with self._lock:
            self._expire()
            pending = self._items.get(token)
            if pending is None or pending.user != user:
                return None
            return self._items.pop(token)

    def _expire(self) -> None:
        now = self._clock()
        for token in [t for t, p in self._items.items() if now - p.at > self._ttl]:
            del self._items[token]


def pending_imports(request: Request) -> PendingImports:
    """The app's preview store, made on first use."""
    state: Any = request.app.state
    if not hasattr(state, "pending_imports"):
        state.pending_imports = PendingImports()
    store: PendingImports = state.pending_imports
    return store


def user_key(principal: Principal) -> str:
    """Who a preview belongs to."""
    return f"{principal.user_id}:{principal.name}"
