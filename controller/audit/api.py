"""REST API of the audit: GET /api/v1/audit (JSON) and /api/v1/audit/export (CSV or XLSX download), the
availability report, and POST /api/v1/imports/{inventory|plan} (the CLI's imports, as uploads)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from ..api.deps import NowDep, PrincipalDep, SessionDep, SettingsDep
from .availability import AvailabilityReport, build_availability
from .export import render
from .i18n import tr
from .report import AuditReport, build_report
from .uploads import MAX_UPLOAD_BYTES, UploadError, read_upload, run_import

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


class ImportErrorItem(BaseModel):
    """One problem of an imported file: spreadsheet row and column (null: the whole file)."""

    row: int | None
    column: str | None
    code: str
    message: str


class ImportChange(BaseModel):
    """One creation or update the file makes (or, in a dry run, would make)."""

    entity: str
    action: str
    key: str
    fields: dict[str, Any]


class ImportOutcome(BaseModel):
    """What an import did or, with ``dry_run``, would do; ``errors`` means nothing was imported."""

    ok: bool
    dry_run: bool
    rows: int
    created: dict[str, int]
    updated: dict[str, int]
    unchanged: int
    summary: str
    errors: list[ImportErrorItem]
    changes: list[ImportChange]


UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary",
                            "description": f"a .csv or .xlsx file, at most {MAX_UPLOAD_BYTES // 2**20} MiB"}}}}}}}


@router.post("/imports/{kind}", response_model=ImportOutcome, openapi_extra=UPLOAD_BODY, responses={
    403: {"description": "a read-only role, or rows of schools outside the user's (listed in errors)"},
    413: {"description": "the file is too large"}, 422: {"description": "the file has errors: nothing imported"}})
async def import_file(request: Request, principal: PrincipalDep,
                      kind: Annotated[str, Path(pattern="^(inventory|plan)$", description="inventory or plan")],
                      dry_run: Annotated[bool, Query(description="validate and show the changes; import nothing")]
                      = False, lang: Lang = "vi") -> Any:
    """Import the inventory or the equipment plan from an uploaded CSV/XLSX, as ``classfleet import`` does:
    all or nothing, idempotent, errors by row and column in ``lang``. Technicians import their schools' rows."""
    if principal.role not in ("admin", "technician"):  # before the body is read
        raise HTTPException(403, detail=f"the {principal.role} role cannot import")
    try:
        upload = await read_upload(request)
    except UploadError as exc:
        return JSONResponse({"detail": tr(lang, exc.code, **exc.values)}, status_code=exc.status)
    result = await run_in_threadpool(run_import, request.app.state.sessions, kind, upload, principal,
                                     dry_run=dry_run)
    status = 200 if result.ok else 403 if result.refused else 422
    return JSONResponse(ImportOutcome.model_validate(result.as_dict(lang)).model_dump(mode="json"),
                        status_code=status)
