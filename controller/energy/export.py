"""The energy report as JSON (what the API returns), CSV (the device rows) or XLSX (devices, rooms, schools)."""

from __future__ import annotations

from typing import Any

from ..audit.i18n import tr
from ..audit.tabular import bold_row, csv_bytes, new_workbook, xlsx_bytes
from .report import EnergyReport, EnergyRow, EnergyTotal

FORMATS = ("json", "csv", "xlsx")
ROW_KEYS = ("school", "room", "room_name", "device", "name", "kind", "hours", "kwh", "method")
TOTAL_KEYS = ("school", "room", "name", "devices", "hours", "kwh")


def header(keys: tuple[str, ...], lang: str) -> list[str]:
    """Localised column headers."""
    return [tr(lang, f"energy.{k}") for k in keys]


def row_values(r: EnergyRow, lang: str) -> list[Any]:
    """One device row, in ROW_KEYS order (the method in words)."""
    return [r.school, r.room or tr(lang, "unassigned"), r.room_name or "", r.device, r.name or "", r.kind, r.hours,
            r.kwh, tr(lang, f"energy.method.{r.method}")]


def total_values(t: EnergyTotal, lang: str, rooms: bool) -> list[Any]:
    """One school or room sum."""
    room = (t.room or tr(lang, "unassigned")) if rooms else ""
    return [t.school, room, t.name or "", t.devices, t.hours, t.kwh]


def to_csv(report: EnergyReport, lang: str = "vi") -> bytes:
    """The device rows, UTF-8 with a BOM so Excel shows Vietnamese correctly."""
    return csv_bytes(header(ROW_KEYS, lang), (row_values(r, lang) for r in report.rows))


def to_xlsx(report: EnergyReport, lang: str = "vi") -> bytes:
    """Three sheets: devices, rooms, schools; then the period and the nominal powers used."""
    book, devices = new_workbook(tr(lang, "energy.sheet.devices"))
    devices.append(header(ROW_KEYS, lang))
    for r in report.rows:
        devices.append(row_values(r, lang))
    rooms = book.create_sheet(tr(lang, "energy.sheet.rooms")[:31])
    rooms.append(header(TOTAL_KEYS, lang))
    for t in report.rooms:
        rooms.append(total_values(t, lang, rooms=True))
    schools = book.create_sheet(tr(lang, "energy.sheet.schools")[:31])
    schools.append(header(TOTAL_KEYS, lang))
    for t in report.schools:
        schools.append(total_values(t, lang, rooms=False))
    about = book.create_sheet(tr(lang, "energy.sheet.about")[:31])
    about.append([tr(lang, "energy.start"), report.start.isoformat()])
    about.append([tr(lang, "energy.end"), report.end.isoformat()])
    for kind, watts in report.nominal_w.items():
        about.append([tr(lang, "energy.nominal", kind=kind), watts])
    for sheet in (devices, rooms, schools):
        bold_row(sheet)
        sheet.freeze_panes = "A2"
    return xlsx_bytes(book)


def render(report: EnergyReport, fmt: str, lang: str = "vi") -> bytes:
    """The report in ``fmt`` (json, csv or xlsx)."""
    if fmt == "json":
        return report.model_dump_json(indent=2).encode()
    if fmt == "csv":
        return to_csv(report, lang)
    if fmt == "xlsx":
        return to_xlsx(report, lang)
    raise ValueError(f"format must be one of: {', '.join(FORMATS)}")
