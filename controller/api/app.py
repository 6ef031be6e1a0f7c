"""The FastAPI application factory: everything it needs is passed in, nothing built at import."""

from __future__ import annotations

import datetime as dt
import gzip
import hmac
import logging
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

log = logging.getLogger(__name__)


class MetricsCache:
    """Serves /metrics from a rendering at most ``ttl`` seconds old, however often it is scraped: rendering tens
    of thousands of series holds the GIL, and ingest shares this process. The gzip form (what Prometheus asks
    for) is made once per rendering too: a tenth of the bytes to push per scrape.

    With ``refresh_ahead`` (the controller's setting), a thread renders the next snapshot while scrapes keep
    coming, so a scrape only copies bytes and never waits for a rendering: every scrape but the first (and the
    first after ``idle_after`` seconds without any) is answered at once, with data at most ``ttl`` plus one
    rendering old, the same freshness as rendering on demand. Without scrapes the thread stops."""

    def __init__(self, render: Callable[[], bytes], ttl: float, *, refresh_ahead: bool = False,
                 idle_after: float | None = None) -> None:
        self._render = render
        self._ttl = ttl
        self._refresh_ahead = refresh_ahead and ttl > 0
        self._idle_after = idle_after if idle_after is not None else 4 * ttl
        self._lock = threading.Lock()
        self._body = b""
        self._gzipped: bytes | None = None
        self._at = float("-inf")  # when the rendering being served started
        self._render_s = 0.0
        self._asked_at = float("-inf")
        self._gzip_wanted = False
        self._refresher: threading.Thread | None = None
        self._closed = threading.Event()
        self.renderings = 0

    def get(self, gzipped: bool = False) -> bytes:
        """The latest rendering; made now if there is none recent enough (one renderer at a time)."""
        self._asked_at = time.monotonic()
        self._gzip_wanted = gzipped
        with self._lock:
            if time.monotonic() - self._at >= self._max_age():
                self._store(*self._rendering())
            if self._refresh_ahead and self._refresher is None and not self._closed.is_set():
                self._refresher = threading.Thread(target=self._refresh, name="classfleet-metrics-render",
                                                   daemon=True)
                self._refresher.start()
            if not gzipped:
                return self._body
            if self._gzipped is None:
                self._gzipped = _gzip(self._body)
            return self._gzipped

    def close(self) -> None:
        """Stop rendering ahead (the controller's shutdown)."""
        self._closed.set()
        refresher = self._refresher
        if refresher is not None:
            refresher.join(30)

    def _max_age(self) -> float:
        """How old the served rendering may be: the TTL, plus, while a rendering ahead is due, room for it."""
        return self._ttl + (max(1.0, 2 * self._render_s) if self._refresher else 0.0)

    def _rendering(self) -> tuple[float, float, bytes]:
        started = time.monotonic()
        body = self._render()
        return started, time.monotonic() - started, body

    def _store(self, started: float, took: float, body: bytes, gzipped: bytes | None = None) -> None:
        self._at, self._render_s, self._body, self._gzipped = started, took, body, gzipped
        self.renderings += 1

    def _refresh(self) -> None:
        """Render the next snapshot ``ttl`` after the last one started, off the scrapes' path."""
        try:
            while not self._closed.wait(max(0.0, self._at + self._ttl - time.monotonic())):
                if time.monotonic() - self._asked_at > self._idle_after:
                    return  # nobody scrapes: the next scrape renders on demand
                started, took, body = self._rendering()
                gzipped = _gzip(body) if self._gzip_wanted else None
                with self._lock:
                    self._store(started, took, body, gzipped)
        except Exception as exc:  # the next scrape renders on demand and reports what fails
            log.warning("rendering /metrics ahead failed: %s: %s", type(exc).__name__, exc)
        finally:
            with self._lock:
                self._refresher = None


def _gzip(body: bytes) -> bytes:
    """The fastest level: 9.4 MB of exposition text shrinks to about 0.5 MB either way."""
    return gzip.compress(body, compresslevel=1)


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
    refresh_metrics_ahead: bool = False,
) -> FastAPI:
    """Build the API app over an engine and a metrics registry (both owned by the caller). With
    ``refresh_metrics_ahead`` the caller closes ``app.state.metrics_cache`` before disposing the engine."""
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

    cache = app.state.metrics_cache = MetricsCache(lambda: render_metrics(registry), settings.metrics_cache_s,
                                                   refresh_ahead=refresh_metrics_ahead)

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
