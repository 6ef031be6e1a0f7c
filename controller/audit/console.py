"""The console's audit page (/console/audit): the report as a page, with downloads; vi by default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ..api.deps import NowDep, SessionDep, SettingsDep
from ..console.login import ConsolePrincipal
from .i18n import tr
from .report import build_report

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
MAX_LISTED = 500  # per list; the spreadsheet holds them all


@router.get("/console/audit", response_class=HTMLResponse)
def audit_page(request: Request, session: SessionDep, settings: SettingsDep, now: NowDep, principal: ConsolePrincipal,
               lang: Annotated[str, Query(pattern="^(vi|en)$")] = "vi",
               days: Annotated[int, Query(ge=1, le=3650)] = 30,
               warranty_days: Annotated[int, Query(ge=0, le=3650)] = 90,
               district: Annotated[str | None, Query(max_length=64)] = None,
               school: Annotated[str | None, Query(max_length=64)] = None) -> Any:
    """Totals, department figures, districts and schools, then the lists to act on."""
    report = build_report(session, now, settings.offline_after_s, days=days, warranty_days=warranty_days,
                          school=school, district=district, visible=principal.schools)
    params: dict[str, Any] = {"days": days, "warranty_days": warranty_days, "school": school, "district": district}
    params = {k: v for k, v in params.items() if v is not None}
    query = urlencode({**params, "lang": lang})
    other_query = urlencode({**params, "lang": "en" if lang == "vi" else "vi"})

    def t(key: str, **values: object) -> str:
        return tr(lang, key, **values)

    context = {"lang": lang, "t": t, "r": report, "days": days, "warranty_days": warranty_days, "query": query,
               "other_query": other_query,
               "max_listed": MAX_LISTED, "school": school or "", "district": district or ""}
    return templates.TemplateResponse(request, "audit.html", context)
