"""The console's audit pages: the report (/console/audit) with downloads; the import of the inventory and
the plan (/console/import: upload, preview of what would change, confirm); availability over a chosen
period (/console/availability). Vietnamese by default."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from ..api.deps import NowDep, SessionDep, SettingsDep
from ..console.common import LangDep, check_csrf, flash, render, school_zones, viewer_zone
from ..console.login import ConsolePrincipal
from ..store.models import DEFAULT_TIMEZONE
from .availability import build_availability
from .i18n import tr
from .report import build_report
from .uploads import (
    IMPORTERS,
    MAX_UPLOAD_BYTES,
    UploadError,
    pending_imports,
    read_upload,
    run_import,
    user_key,
)

router = APIRouter(include_in_schema=False)
MAX_LISTED = 500  # per list; the spreadsheet holds them all


@router.get("/console/audit", response_class=HTMLResponse)
def audit_page(request: Request, session: SessionDep, settings: SettingsDep, now: NowDep, principal: ConsolePrincipal,
               lang: LangDep,
               days: Annotated[int, Query(ge=1, le=3650)] = 30,
               warranty_days: Annotated[int, Query(ge=0, le=3650)] = 90,
               district: Annotated[str | None, Query(max_length=64)] = None,
               school: Annotated[str | None, Query(max_length=64)] = None) -> Any:
    """Totals, department figures, districts and schools, then the lists to act on."""
    report = build_report(session, now, settings.offline_after_s, days=days, warranty_days=warranty_days,
                          school=school, district=district, visible=principal.schools)
    params: dict[str, Any] = {"days": days, "warranty_days": warranty_days, "school": school, "district": district}
    params = {k: v for k, v in params.items() if v is not None}
    zones = school_zones(session, principal)
    return render(request, "audit.html", lang, principal, page_zone=viewer_zone(zones), zones=zones,
                  a=_audit_texts(lang), r=report, days=days,
                  warranty_days=warranty_days, query=urlencode({**params, "lang": lang}), max_listed=MAX_LISTED,
                  school=school or "", district=district or "")


# --- import: upload → preview (a dry run) → confirm ---------------------------------------------------

MAX_PREVIEW_ROWS = 200  # changes listed on the preview page (the counts are exact)
DOC = "docs/import-inventory.md"


def _audit_texts(lang: str) -> Any:
    """The audit texts for a template, as a function (``a('imp.title')``)."""
    return lambda key, **values: tr(lang, key, **values)


def _import_page(request: Request, lang: str, principal: Any, **context: Any) -> Any:
    """The import page: the form (for roles that may import), and a preview or errors when given."""
    can_import = principal.role in ("admin", "technician")
    scope = None if principal.everywhere else ", ".join(sorted(principal.schools or ()))
    return render(request, "import.html", lang, principal, a=_audit_texts(lang), can_import=can_import,
                  scope=scope, kinds=list(IMPORTERS), max_mb=MAX_UPLOAD_BYTES // 2**20, doc=DOC,
                  max_preview=MAX_PREVIEW_ROWS, **context)


@router.get("/console/import", response_class=HTMLResponse)
def import_page(request: Request, principal: ConsolePrincipal, lang: LangDep) -> Any:
    """The upload form (admins and technicians; others are told why there is none)."""
    return _import_page(request, lang, principal, kind="inventory")


@router.post("/console/import/preview", response_class=HTMLResponse)
async def import_preview(request: Request, principal: ConsolePrincipal, lang: LangDep) -> Any:
    """Check the uploaded file and show what importing it would change (a dry run: nothing is kept), or
    its errors; a clean file waits for confirmation."""
    if principal.role not in ("admin", "technician"):
        return _import_page(request, lang, principal, kind="inventory")
    try:
        upload = await read_upload(request)
    except UploadError as exc:  # nothing was changed: the form again, with the reason
        return _import_page(request, lang, principal, kind="inventory",
                            upload_error=tr(lang, exc.code, **exc.values))
    check_csrf(request, upload.fields.get("csrf"))
    kind = upload.fields.get("kind", "inventory")
    if kind not in IMPORTERS:
        kind = "inventory"
    result = await run_in_threadpool(run_import, request.app.state.sessions, kind, upload, principal,
                                     dry_run=True)
    token = pending_imports(request).put(user_key(principal), kind, upload) if result.ok and result.changed else None
    return _import_page(request, lang, principal, kind=kind, result=result, filename=upload.filename, token=token,
                        errors=[e.text(lang) for e in result.errors])


@router.post("/console/import/confirm")
def import_confirm(request: Request, principal: ConsolePrincipal, lang: LangDep,
                   token: Annotated[str, Form(max_length=100)], csrf: Annotated[str | None, Form(max_length=100)] = None
                   ) -> Any:
    """Import the previewed file for real (checked again: the store may have changed since the preview)."""
    check_csrf(request, csrf)
    pending = pending_imports(request).take(token, user_key(principal))
    if pending is None or principal.role not in ("admin", "technician"):
        flash(request, "imp.flash", summary=tr(lang, "import.expired"))
        return RedirectResponse("/console/import", status_code=303)
    result = run_import(request.app.state.sessions, pending.kind, pending.upload, principal, dry_run=False)
    if result.ok:
        flash(request, "imp.flash", summary=f"{pending.upload.filename}: {result.summary(lang)}")
        return RedirectResponse("/console/import", status_code=303)
    return _import_page(request, lang, principal, kind=pending.kind, result=result, filename=pending.upload.filename,
                        token=None, errors=[e.text(lang) for e in result.errors])


# --- availability over a chosen period ------------------------------------------------------------------

PRESETS = ("this_week", "last_week", "last_30", "this_month", "last_month")


def preset_period(preset: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """A named period as (first day, last day), both inclusive, around ``today`` (local date)."""
    monday = today - dt.timedelta(days=today.weekday())
    first_of_month = today.replace(day=1)
    if preset == "last_week":
        return monday - dt.timedelta(days=7), monday - dt.timedelta(days=1)
    if preset == "last_30":
        return today - dt.timedelta(days=29), today
    if preset == "this_month":
        return first_of_month, today
    if preset == "last_month":
        last = first_of_month - dt.timedelta(days=1)
        return last.replace(day=1), last
    return monday, today


@router.get("/console/availability", response_class=HTMLResponse)
def availability_page(request: Request, session: SessionDep, settings: SettingsDep, now: NowDep,
                      principal: ConsolePrincipal, lang: LangDep,
                      preset: Annotated[str | None, Query(pattern="^(" + "|".join(PRESETS) + ")$")] = None,
                      start: Annotated[dt.date | None, Query()] = None, end: Annotated[dt.date | None, Query()] = None,
                      school: Annotated[str | None, Query(max_length=64)] = None) -> Any:
    """Per school and room kind: devices, school hours, share working, incidents per device, MTTR; a school
    line sums its rows (weighted by devices). Days are local days (Vietnam's time); end is inclusive."""
    zone = ZoneInfo(DEFAULT_TIMEZONE)
    today = now.astimezone(zone).date()
    if start is None or end is None:
        preset = preset or "this_week"
        start, end = preset_period(preset, today)
    else:
        preset = None
    error = None
    rows: list[Any] = []
    if end < start or (end - start).days > 400:
        error = tr(lang, "av.bad_period")
    else:
        begin = dt.datetime.combine(start, dt.time(0), zone)
        finish = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0), zone)
        rows = build_availability(session, begin, finish, settings.offline_after_s, school=school or None,
                                  visible=principal.schools).rows
    schools: dict[str, dict[str, Any]] = {}
    for row in rows:
        total = schools.setdefault(row.school, {"school": row.school, "devices": 0, "working": 0.0, "incidents": 0,
                                                "hours": row.school_hours, "rows": []})
        total["rows"].append(row)
        total["devices"] += row.devices
        total["working"] += row.availability * row.devices
        total["incidents"] += row.incidents
    for total in schools.values():
        total["availability"] = total["working"] / total["devices"] if total["devices"] else 0.0
        total["per_device"] = total["incidents"] / total["devices"] if total["devices"] else 0.0
    period = {"start": start.isoformat(), "end": end.isoformat()}
    api_query = urlencode({"start": f"{start.isoformat()}T00:00:00+07:00",
                           "end": f"{(end + dt.timedelta(days=1)).isoformat()}T00:00:00+07:00",
                           **({"school": school} if school else {})})
    return render(request, "availability.html", lang, principal, a=_audit_texts(lang), presets=PRESETS,
                  preset=preset, period=period, schools=list(schools.values()), error=error, school=school or "",
                  api_url=f"/api/v1/reports/availability?{api_query}")
