"""REST API of the after-hours energy report: JSON, and CSV/XLSX downloads with Vietnamese or English headers."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from sqlalchemy.orm import Session

from ..api.deps import PrincipalDep, SessionDep, SettingsDep
from ..auth import Principal
from ..config import Settings
from .export import render
from .report import MAX_PERIOD, EnergyReport, build_energy

router = APIRouter(prefix="/api/v1", tags=["reports"])

Start = Annotated[dt.datetime, Query(description="period start, with a time zone (e.g. 2026-11-23T00:00:00+07:00)")]
End = Annotated[dt.datetime, Query(description="period end (exclusive), with a time zone")]
SchoolQ = Annotated[str | None, Query(max_length=64)]
Lang = Annotated[str, Query(pattern="^(vi|en)$", description="language of headers in CSV/XLSX")]
MEDIA = {"csv": "text/csv; charset=utf-8", "json": "application/json",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def energy_report(session: Session, settings: Settings, principal: Principal, start: dt.datetime,
                  end: dt.datetime, school: str | None) -> EnergyReport:
    """The report over the principal's schools; a clear 422 for a period it cannot cover."""
    if start.tzinfo is None or end.tzinfo is None or end <= start or end - start > MAX_PERIOD:
        raise HTTPException(422, detail="give start < end, with time zones, at most 400 days apart")
    try:
        return build_energy(session, start, end, nominal_w=settings.energy_nominal_w,
                            offline_after_s=settings.offline_after_s, poll_gap_s=settings.energy_poll_gap_s,
                            school=school, visible=principal.schools)
    except (OverflowError, ValueError) as exc:  # a period at the edge of the calendar
        raise HTTPException(422, detail=str(exc)) from None


@router.get("/reports/energy", response_model=EnergyReport)
def read_energy(session: SessionDep, settings: SettingsDep, principal: PrincipalDep, start: Start, end: End,
                school: SchoolQ = None) -> EnergyReport:
    """Per school and room, the devices on outside school hours: hours, kWh, and how the energy is known."""
    return energy_report(session, settings, principal, start, end, school)


@router.get("/reports/energy/export", response_class=Response,
            responses={200: {"content": {MEDIA["csv"]: {}, MEDIA["xlsx"]: {}, MEDIA["json"]: {}}}})
def export_energy(session: SessionDep, settings: SettingsDep, principal: PrincipalDep, start: Start, end: End,
                  format: Annotated[str, Query(pattern="^(csv|xlsx|json)$")] = "xlsx",  # noqa: A002
                  school: SchoolQ = None, lang: Lang = "vi") -> Response:
    """The same report as a file to download."""
    report = energy_report(session, settings, principal, start, end, school)
    name = f"classfleet-energy-{start:%Y%m%d}-{end:%Y%m%d}.{format}"
    return Response(render(report, format, lang), media_type=MEDIA[format],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
