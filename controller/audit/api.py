"""REST API of the audit: GET /api/v1/audit (JSON) and /api/v1/audit/export (CSV or XLSX download)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from ..api.deps import NowDep, PrincipalDep, SessionDep, SettingsDep
from .availability import AvailabilityReport, build_availability
from .export import render
from .report import AuditReport, build_report

router = APIRouter(prefix="/api/v1", tags=["audit"])

Days = Annotated[int, Query(ge=1, le=3650, description="seen within this many days")]
WarrantyDays = Annotated[int, Query(ge=0, le=3650, description="warranties ending within this many days")]
SchoolQ = Annotated[str | None, Query(max_length=64)]
Lang = Annotated[str, Query(pattern="^(vi|en)$", description="language of headers in CSV/XLSX")]
MEDIA = {"csv": "text/csv; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


@router.get("/audit", response_model=AuditReport)
def read_audit(session: SessionDep, settings: SettingsDep, now: NowDep, principal: PrincipalDep, days: Days = 30,
               warranty_days: WarrantyDays = 90, school: SchoolQ = None, district: SchoolQ = None,
               lang: Lang = "vi") -> AuditReport:
    """The plan against registered, recently seen and healthy devices, per school, district and in total."""
    del lang  # JSON keys are language-neutral; accepted so every audit URL takes the same parameters
    return build_report(session, now, settings.offline_after_s, days=days, warranty_days=warranty_days,
                        school=school, district=district, visible=principal.schools)


@router.get("/audit/export", response_class=Response,
            responses={200: {"content": {MEDIA["csv"]: {}, MEDIA["xlsx"]: {}}}})
def export_audit(session: SessionDep, settings: SettingsDep, now: NowDep, principal: PrincipalDep,
                 format: Annotated[str, Query(pattern="^(csv|xlsx)$")] = "xlsx", days: Days = 30,  # noqa: A002
                 warranty_days: WarrantyDays = 90, school: SchoolQ = None, district: SchoolQ = None,
                 lang: Lang = "vi") -> Response:
    """The same report as a spreadsheet to download, with Vietnamese or English headers."""
    report = build_report(session, now, settings.offline_after_s, days=days, warranty_days=warranty_days,
                          school=school, district=district, visible=principal.schools)
    name = f"classfleet-audit-{now:%Y%m%d}.{format}"
    return Response(render(report, format, lang), media_type=MEDIA[format],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/reports/availability", response_model=AvailabilityReport)
def read_availability(session: SessionDep, settings: SettingsDep, principal: PrincipalDep,
                      start: Annotated[dt.datetime, Query(description="period start, with a time zone")],
                      end: Annotated[dt.datetime, Query(description="period end, with a time zone")],
                      school: SchoolQ = None) -> AvailabilityReport:
    """Share of school hours each room kind's devices were working, incidents per device, MTTR."""
    if start.tzinfo is None or end.tzinfo is None or end <= start or end - start > dt.timedelta(days=400):
        raise HTTPException(422, detail="give start < end, with time zones, at most 400 days apart")
    return build_availability(session, start, end, settings.offline_after_s, school=school,
                              visible=principal.schools)
