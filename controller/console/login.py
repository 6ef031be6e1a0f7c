"""Console login: password form with CSRF protection and a rate limit, signed session cookie."""

from __future__ import annotations

import secrets
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from ..api.deps import SessionDep, get_principal
from ..api.origin import client_address
from ..auth import Principal, authenticate
from ..store.models import AuditLog
from .i18n import translator

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
MAX_FAILURES = 5
FAILURE_WINDOW_S = 300.0


def console_principal(request: Request, session: SessionDep) -> Principal:
    """The logged-in user, or a redirect to the login page."""
    try:
        return get_principal(request, session, request.app.state.settings)
    except HTTPException as exc:
        if exc.status_code != 401:
            raise
        raise HTTPException(303, headers={"Location": f"/console/login?next={request.url.path}"}) from None


ConsolePrincipal = Annotated[Principal, Depends(console_principal)]


def _failures(request: Request) -> dict[str, deque[float]]:
    app = request.app
    if not hasattr(app.state, "login_failures"):
        app.state.login_failures = defaultdict(deque)
    failures: dict[str, deque[float]] = app.state.login_failures
    return failures


@router.get("/console/login", response_class=HTMLResponse)
def login_page(request: Request, lang: str = "vi", next: str = "/console", error: str | None = None) -> Any:  # noqa: A002
    """The login form; a fresh CSRF token goes in the session and the form."""
    request.session["csrf"] = csrf = secrets.token_urlsafe(24)
    t = translator(lang)
    return templates.TemplateResponse(request, "login.html", {
        "t": t, "lang": lang, "csrf": csrf, "next": next if next.startswith("/console") else "/console",
        "error": t.get(f"login.{error}") if error else None})


@router.post("/console/login")
def login(request: Request, session: SessionDep, username: Annotated[str, Form(max_length=120)],
          password: Annotated[str, Form(max_length=200)], csrf: Annotated[str, Form(max_length=100)],
          next: Annotated[str, Form(max_length=200)] = "/console", lang: Annotated[str, Form()] = "vi") -> Any:  # noqa: A002
    """Check the CSRF token, the rate limit and the password; start a session."""
    expected = request.session.pop("csrf", None)
    if not expected or not secrets.compare_digest(expected, csrf):
        raise HTTPException(403, detail="invalid or missing CSRF token; reload the login page")
    key = f"{client_address(request) or '?'}|{username.lower()}"
    now = time.monotonic()
    recent = _failures(request)[key]
    while recent and now - recent[0] > FAILURE_WINDOW_S:
        recent.popleft()
    if len(recent) >= MAX_FAILURES:
        raise HTTPException(429, detail="too many failed logins; wait a few minutes")
    user = authenticate(session, username, password)
    target = next if next.startswith("/console") else "/console"
    if user is None:
        recent.append(now)
        return RedirectResponse(f"/console/login?lang={lang}&error=failed&next={target}", status_code=303)
    recent.clear()
    request.session.clear()
    request.session["user_id"] = user.id
    session.add(AuditLog(actor=user.username, action="user.login", target=f"user:{user.username}",
                         detail={"from": client_address(request)}))
    session.commit()
    return RedirectResponse(f"{target}?lang={lang}", status_code=303)


@router.post("/console/logout")
def logout(request: Request) -> Any:
    """End the session."""
    request.session.clear()
    return RedirectResponse("/console/login", status_code=303)
