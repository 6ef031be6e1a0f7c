"""What every console page shares: templates, the language choice, the forms' CSRF token, formatting."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date, format_datetime, get_timezone_gmt, get_timezone_name
from babel.numbers import format_decimal
from fastapi import Depends, HTTPException, Query, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..auth import Principal
from ..store.models import DEFAULT_TIMEZONE, School
from .i18n import translator

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
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


@lru_cache(maxsize=256)
def zone(name: str | None) -> ZoneInfo:
    """A school's time zone; the default (Vietnam) for a missing or unknown name rather than a broken page."""
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def school_zones(session: Session, principal: Principal) -> dict[str, str]:
    """Each school the principal may see → its time zone name (for pages that mix schools)."""
    return {school_id: tz or DEFAULT_TIMEZONE for school_id, tz in session.execute(
        select(School.id, School.timezone).where(principal.scope(School.id)))}


def viewer_zone(zones: Mapping[str, str]) -> str:
    """The zone a page mixing schools is shown in: the one all the viewer's schools share, else the default."""
    names = set(zones.values())
    return names.pop() if len(names) == 1 else DEFAULT_TIMEZONE


class Formats:
    """Dates in a page's time zone (or a row's school's) and numbers, in the user's locale (Babel), and the
    sentence that says which zone the page's times are in."""

    def __init__(self, lang: str, page_zone: str | None = None, zones: Mapping[str, str] | None = None,
                 now: dt.datetime | None = None) -> None:
        self.lang = lang
        self.zone = zone(page_zone)
        self.zones = dict(zones or {})
        self.now = now or dt.datetime.now(dt.UTC)

    def _zone_for(self, school: str | None) -> ZoneInfo:
        return zone(self.zones[school]) if school in self.zones else self.zone

    def when(self, value: dt.datetime | None, school: str | None = None) -> str:
        """A moment in the page's zone, or in ``school``'s with its UTC offset when that zone differs."""
        if value is None:
            return "—"
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        tz = self._zone_for(school)
        text = format_datetime(value, "short", tzinfo=tz, locale=self.lang)
        if tz.key != self.zone.key:
            text += f" ({get_timezone_gmt(value.astimezone(tz), 'long', locale=self.lang)})"
        return text

    def day(self, value: dt.date | None) -> str:
        """A calendar date (a warranty's end)."""
        return "—" if value is None else format_date(value, "medium", locale=self.lang)

    def num(self, value: float | None, digits: int = 1) -> str:
        """A number with the locale's decimal mark and grouping."""
        if value is None:
            return "—"
        pattern = "#,##0." + "0" * digits if digits > 0 else "#,##0"
        return format_decimal(value, pattern, locale=self.lang)

    def local_input(self, value: dt.datetime | None, school: str | None = None) -> str:
        """A moment as an ``<input type=datetime-local>`` value in the page's (or school's) zone."""
        if value is None:
            return ""
        return value.astimezone(self._zone_for(school)).strftime("%Y-%m-%dT%H:%M")

    def zone_label(self, name: str | None = None) -> str:
        """A zone's name and current offset in the user's language, e.g. 'Giờ Việt Nam (GMT+07:00)'."""
        tz = zone(name) if name else self.zone
        return (f"{get_timezone_name(tz, locale=self.lang)} "
                f"({get_timezone_gmt(self.now.astimezone(tz), 'long', locale=self.lang)})")

    def note(self) -> str:
        """What the page footer says about its times."""
        t = translator(self.lang)
        text = t["times"].format(zone=self.zone_label())
        if any(zone(z).key != self.zone.key for z in self.zones.values()):
            text += " " + t["times.other_zones"]
        return text

    def helpers(self) -> dict[str, Callable[..., str]]:
        """The functions templates call."""
        return {"when": self.when, "day": self.day, "num": self.num, "local_input": self.local_input,
                "zone_label": self.zone_label}


def render(request: Request, name: str, lang: str, principal: Principal, *, page_zone: str | None = None,
           zones: Mapping[str, str] | None = None, **context: Any) -> Any:
    """A page with the shared layout's needs filled in: texts, language switch, token, flash message, and
    dates in ``page_zone`` (a school's; default Vietnam's), rows of other schools in their ``zones``."""
    t = translator(lang)
    formats = Formats(lang, page_zone, zones)
    message = request.session.pop("flash", None)
    flash_text = None
    if message:
        flash_text = t.get(message["key"], message["key"]).format(**message.get("values", {}))
    params = {k: v for k, v in request.query_params.items() if k != "lang"}
    other = "en" if lang == "vi" else "vi"
    switch = "?" + urlencode({**params, "lang": other})
    base = {"t": t, "lang": lang, "principal": principal, "csrf": csrf_token(request), "flash": flash_text,
            "switch_url": request.url.path + switch, "here": request.url.path, "times_note": formats.note(),
            **formats.helpers()}
    return templates.TemplateResponse(request, name, {**base, **context})
