"""The audit report as JSON, CSV (one summary table) or XLSX (a summary sheet and one sheet per school)."""

from __future__ import annotations

import re
from typing import Any

from .i18n import tr
from .report import AuditReport, Counts, DeviceItem, MissingItem, flat_summary
from .tabular import bold_row, csv_bytes, new_workbook, xlsx_bytes

FORMATS = ("json", "csv", "xlsx")
# Column keys of the summary (CSV and the summary sheet), in order; header texts come from i18n.
SUMMARY_KEYS = ("level", "id", "name", "planned", "registered", "seen", "healthy", "missing_count",
                "unplanned_count", "long_unseen_count", "never_seen", "smart_rooms_l1", "smart_rooms_l2",
                "online_meeting_rooms", "laptops", "air_conditioners", "camera_systems")
KIND_PARTS = ("planned", "registered", "seen", "healthy")
LINE_KEYS = ("room_kind", "device_kind", "planned", "registered", "seen", "healthy", "missing_count",
             "unplanned_count")
DEVICE_KEYS = ("uid", "device_kind", "room", "room_kind", "serial", "asset_tag", "last_seen", "warranty_end")


def summary_header(lang: str, days: int) -> list[str]:
    """Localised summary headers; the three reported kinds expand into planned/registered/seen/healthy."""
    header: list[str] = []
    for key in SUMMARY_KEYS:
        if key in ("laptops", "air_conditioners", "camera_systems"):
            header += [f"{tr(lang, key)}: {tr(lang, part, days=days)}" for part in KIND_PARTS]
        else:
            header.append(tr(lang, key, days=days))
    return header


def summary_values(level: str, ident: str | None, name: str, c: Counts, lang: str) -> list[Any]:
    """One summary row's values, in SUMMARY_KEYS order."""
    values: list[Any] = [tr(lang, f"level.{level}"), ident or "", name, c.planned, c.registered, c.seen, c.healthy,
                         c.missing, c.unplanned, c.long_unseen, c.never_seen, c.smart_rooms_l1, c.smart_rooms_l2,
                         c.online_meeting_rooms]
    for kc in (c.laptops, c.air_conditioners, c.camera_systems):
        values += [kc.planned, kc.registered, kc.seen, kc.healthy]
    return values


def to_json(report: AuditReport) -> bytes:
    """The report as the API returns it."""
    return report.model_dump_json(indent=2).encode()


def to_csv(report: AuditReport, lang: str = "vi") -> bytes:
    """Summary rows (total, districts, schools), UTF-8 with a BOM so Excel shows Vietnamese correctly."""
    return csv_bytes(summary_header(lang, report.days),
                     (summary_values(level, ident, name, counts, lang)
                      for level, ident, name, counts in flat_summary(report)))


def _device_row(d: DeviceItem, lang: str) -> list[Any]:
    return [d.uid, d.kind, d.room or tr(lang, "unassigned"), d.room_kind or "", d.serial or "", d.asset_tag or "",
            d.last_seen.replace(tzinfo=None) if d.last_seen else None, d.warranty_end]


def sheet_title(school_id: str, used: set[str]) -> str:
    """An Excel-safe, unique sheet title (31 characters, no []:*?/\\)."""
    base = re.sub(r"[\[\]:*?/\\]", "_", school_id)[:31] or "school"
    title, n = base, 1
    while title.lower() in used:
        n += 1
        title = f"{base[:31 - len(str(n)) - 1]}~{n}"
    used.add(title.lower())
    return title


def to_xlsx(report: AuditReport, lang: str = "vi") -> bytes:
    """A summary sheet, then one sheet per school with its lines and its lists."""
    book, summary = new_workbook(tr(lang, "summary"))
    summary.append(summary_header(lang, report.days))
    bold_row(summary)
    for level, ident, name, counts in flat_summary(report):
        summary.append(summary_values(level, ident, name, counts, lang))
    summary.freeze_panes = "D2"
    used = {summary.title.lower()}
    by_school: dict[str, dict[str, list[DeviceItem]]] = {}
    for key, items in (("unplanned", report.unplanned), ("long_unseen", report.long_unseen),
                       ("warranty", report.warranty_ending)):
        for d in items:
            by_school.setdefault(d.school, {}).setdefault(key, []).append(d)
    missing: dict[str, list[MissingItem]] = {}
    for m in report.missing:
        missing.setdefault(m.school, []).append(m)
    for s in report.schools:
        ws = book.create_sheet(sheet_title(s.id, used))
        ws.append([tr(lang, "school"), s.id, s.name])
        ws.append([tr(lang, "generated_at"), report.generated_at.replace(tzinfo=None)])
        ws.append([])
        ws.append(summary_header(lang, report.days))
        ws.append(summary_values("school", s.id, s.name, s.counts, lang))
        ws.append([])
        ws.append([tr(lang, "sheet.lines")])
        ws.append([tr(lang, k, days=report.days) for k in LINE_KEYS])
        for line in s.lines:
            ws.append([line.room_kind or tr(lang, "unassigned"), line.device_kind, line.planned, line.registered,
                       line.seen, line.healthy, line.missing, line.unplanned])
        lists = by_school.get(s.id, {})
        for key, title in (("unplanned", "sheet.unplanned"), ("long_unseen", "sheet.long_unseen"),
                           ("warranty", "sheet.warranty")):
            if lists.get(key):
                ws.append([])
                ws.append([tr(lang, title, days=report.warranty_days)])
                ws.append([tr(lang, k) for k in DEVICE_KEYS])
                for d in lists[key]:
                    ws.append(_device_row(d, lang))
        if missing.get(s.id):
            ws.append([])
            ws.append([tr(lang, "sheet.missing")])
            ws.append([tr(lang, k) for k in ("room_kind", "device_kind", "planned", "registered", "missing_count")])
            for m in missing[s.id]:
                ws.append([m.room_kind, m.device_kind, m.planned, m.registered, m.missing])
        for row in (1, 4, 8):
            bold_row(ws, row)
    return xlsx_bytes(book)


def render(report: AuditReport, fmt: str, lang: str = "vi") -> bytes:
    """The report in ``fmt`` (json, csv or xlsx)."""
    if fmt == "json":
        return to_json(report)
    if fmt == "csv":
        return to_csv(report, lang)
    if fmt == "xlsx":
        return to_xlsx(report, lang)
    raise ValueError(f"format must be one of: {', '.join(FORMATS)}")
