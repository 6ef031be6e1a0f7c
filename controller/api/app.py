"""The FastAPI application factory: everything it needs is passed in, nothing built at import."""

from __future__ import annotations

import datetime as dt
import gzip
import hmac
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from sqlalchemy import Engine, text
from starlette.middleware.sessions import SessionMiddleware

from .. import __version__
from ..audit.api import router as audit_router
from ..audit.console import router as audit_console_router
from ..config import Settings
from ..console.forms import router as console_forms_router
from ..console.login import router as login_router
from ..console.pages import router as console_pages_router
from ..console.views import router as console_router
from ..energy.api import router as energy_router
from ..energy.console import router as energy_console_router
from ..energy.timetable_api import router as timetable_router
from ..metrics import render_metrics
from ..store.db import session_factory
from .commands import router as commands_router
from .enrol import router as enrol_router
from .incidents import router as incidents_router
from .origin import ClientAddressMiddleware, record_origin
from .routes import router
from .schemas import Health


class _RenderCache:
    """Renders /metrics at most once per ``ttl`` seconds, however often it is scraped: rendering tens of
    thousands of series holds the GIL, and ingest shares this process. The gzip form (what Prometheus asks
    for) is made once per rendering too: a tenth of the bytes to push per scrape."""

    def __init__(self, render: Callable[[], bytes], ttl: float) -> None:
        self._render = render
        self._ttl = ttl
        self._lock = threading.Lock()
        self._body = b""
        self._gzipped: bytes | None = None
        self._at = float("-inf")

    def get(self, gzipped: bool = False) -> bytes:
        """The latest rendering, made now if it is older than the TTL (one renderer at a time)."""
        with self._lock:
            if time.monotonic() - self._at >= self._ttl:
                self._body, self._gzipped = self._render(), None
                self._at = time.monotonic()
            if not gzipped:
                return self._body
            if self._gzipped is None:
                self._gzipped = gzip.compress(self._body, compresslevel=1)
            return self._gzipped


def session_secret(settings: Settings) -> str:
    """The key that signs console sessions: configured, or generated once and kept (0600) in the data dir."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = settings.data_dir / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        import os
        import secrets

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key


def create_app(
    settings: Settings,
    engine: Engine,
    registry: CollectorRegistry,
    *,
    ingest_ready: Callable[[], bool] | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    lifespan: Any = None,
) -> FastAPI:
    """Build the API app over an engine and a metrics registry (both owned by the caller)."""
    app = FastAPI(
        title="classfleet", version=__version__, lifespan=lifespan,
        description="Smart-classroom device fleet manager: inventory, device state and health.",
    )
    app.add_middleware(SessionMiddleware, secret_key=session_secret(settings), session_cookie="classfleet_session",
                       same_site="strict", https_only=False, max_age=12 * 3600)
    app.add_middleware(ClientAddressMiddleware, settings=settings)
    app.state.settings = settings
    app.state.sessions = session_factory(engine)
    record_origin(app.state.sessions)  # every audit row written through the app says from where
    app.state.clock = clock or (lambda: dt.datetime.now(dt.UTC))
    app.include_router(router)
    app.include_router(enrol_router)
    app.include_router(commands_router)
    app.include_router(incidents_router)
    app.include_router(audit_router)
    app.include_router(audit_console_router)
    app.include_router(timetable_router)
    app.include_router(energy_router)
    app.include_router(energy_console_router)
    app.include_router(console_router)
    app.include_router(login_router)
    app.include_router(console_pages_router)
    app.include_router(console_forms_router)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console")

    @app.get("/healthz", response_model=Health, tags=["ops"])
    def healthz() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, tags=["ops"], responses={503: {"model": Health}})
    def readyz() -> Any:
        """Readiness: the store answers and, when ingest runs, the broker session is up."""
        checks: dict[str, str] = {}
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["store"] = "ok"
        except Exception as exc:  # report, never raise, from a probe
            checks["store"] = f"error: {type(exc).__name__}"
        if ingest_ready is not None:
            checks["mqtt"] = "ok" if ingest_ready() else "disconnected"
        ok = all(v == "ok" for v in checks.values())
        body = Health(status="ok" if ok else "unavailable", checks=checks)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    cache = _RenderCache(lambda: render_metrics(registry), settings.metrics_cache_s)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def metrics(request: Request) -> Response:
        """Prometheus exposition; needs ``Authorization: Bearer <token>`` when a token is configured."""
        token = settings.metrics_token
        if token is None and settings.auth and not settings.metrics_public:
            # /metrics names every device: with authentication on it is never served to anyone.
            return Response("set CLASSFLEET_METRICS_TOKEN (or CLASSFLEET_METRICS_PUBLIC=true on an internal "
                            "address)\n", status_code=401, headers={"WWW-Authenticate": "Bearer"})
        if token is not None:
            given = request.headers.get("authorization", "")
            expected = f"Bearer {token.get_secret_value()}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return Response("metrics token required\n", status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(cache.get(gzipped=True), media_type=CONTENT_TYPE_LATEST,
                            headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        return Response(cache.get(), media_type=CONTENT_TYPE_LATEST, headers={"Vary": "Accept-Encoding"})

    return app
