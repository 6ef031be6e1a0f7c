"""What every console page shares: templates, the language choice, the forms' CSRF token, formatting."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Depends, HTTPException, Query, Request
from fastapi.templating import Jinja2Templates

from ..auth import Principal
from ..store.models import DEFAULT_TIMEZONE
from .i18n import translator

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
LOCAL_TZ = ZoneInfo(DEFAULT_TIMEZONE)
CSRF_KEY = "form_csrf"  # not login.py's "csrf": that one is single-use and popped at login


def get_lang(request: Request, lang: Annotated[str | None, Query(pattern="^(vi|en)$")] = None) -> str:
    """The page language: ``?lang=`` when given (and remembered in the session), else the remembered one, else vi."""
    if lang is not None:
        request.session["lang"] = lang
        return lang
    remembered = request.session.get("lang")
    return remembered if remembered in ("vi", "en") else "vi"


LangDep = Annotated[str, Depends(get_lang)]


def csrf_token(request: Request) -> str:
    """The session's form token, made on first use; every POST form of the console carries it."""
    token = request.session.get(CSRF_KEY)
    if not token:
        token = request.session[CSRF_KEY] = secrets.token_urlsafe(24)
    return str(token)


def check_csrf(request: Request, given: str | None) -> None:
    """403 unless the form's token is the session's: a page of another site cannot post for the user."""
    expected = request.session.get(CSRF_KEY)
    if not expected or not given or not secrets.compare_digest(str(expected), given):
        raise HTTPException(403, detail="invalid or missing CSRF token; reload the page")


def safe_next(target: str | None, default: str = "/console") -> str:
    """Only redirect back inside the console (no open redirect)."""
    if target and target.startswith("/console") and not target.startswith("//"):
        return target
    return default


def flash(request: Request, key: str, **values: object) -> None:
    """Leave a message (an i18n key) for the next page the user sees."""
    request.session["flash"] = {"key": key, "values": {k: str(v) for k, v in values.items()}}


def formatters(lang: str) -> dict[str, Callable[..., str]]:
    """Dates in Vietnam's time and numbers with the language's decimal mark, for templates."""

    def when(value: dt.datetime | None) -> str:
        if value is None:
            return "—"
        local = value.astimezone(LOCAL_TZ)
        return local.strftime("%d/%m/%Y %H:%M" if lang == "vi" else "%Y-%m-%d %H:%M")

    def num(value: float | None, digits: int = 1) -> str:
        if value is None:
            return "—"
        text = f"{value:,.{digits}f}"
        return text.translate(str.maketrans(",.", ".,")) if lang == "vi" else text

    return {"when": when, "num": num}


def render(request: Request, name: str, lang: str, principal: Principal, **context: Any) -> Any:
    """A page with the shared layout's needs filled in: texts, language switch, token, flash message."""
    t = translator(lang)
    message = request.session.pop("flash", None)
    flash_text = None
    if message:
        flash_text = t.get(message["key"], message["key"]).format(**message.get("values", {}))
    params = {k: v for k, v in request.query_params.items() if k != "lang"}
    other = "en" if lang == "vi" else "vi"
    switch = "?" + urlencode({**params, "lang": other})
    base = {"t": t, "lang": lang, "principal": principal, "csrf": csrf_token(request), "flash": flash_text,
            "switch_url": request.url.path + switch, "here": request.url.path, **formatters(lang)}
    return templates.TemplateResponse(request, name, {**base, **context})
