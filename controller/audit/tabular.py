"""Reading CSV and XLSX files into header-keyed rows with spreadsheet row numbers (header = row 1), and the
few steps every export writes them with (a BOM on CSV, a titled first sheet, a bold header)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class TableError(Exception):
    """The file as a whole cannot be used: its code is an i18n key, ``values`` fill its text."""

    def __init__(self, code: str, **values: object) -> None:
        super().__init__(code)
        self.code = code
        self.values = values


@dataclass
class Table:
    """A header (lower-cased, stripped) and its data rows as (row number, {column: cell})."""

    columns: list[str]
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


def _cell(value: Any) -> Any:
    """Normalise a cell: blank → None; spreadsheet numbers such as serials 12345.0 → '12345'; dates kept."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date() if value.time() == dt.time(0) else value
    if isinstance(value, dt.date):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text or None


def _table(lines: Iterator[list[Any]]) -> Table:
    """Turn raw rows (first = header) into a Table, skipping blank rows but keeping row numbers."""
    header = next(lines, None)
    if header is None or not any(_cell(h) for h in header):
        raise TableError("empty_file")
    columns = [str(_cell(h) or "").lower() for h in header]
    table = Table(columns)
    for number, raw in enumerate(lines, start=2):
        cells = {col: _cell(v) for col, v in zip(columns, raw, strict=False) if col}
        if any(v is not None for v in cells.values()):
            table.rows.append((number, cells))
    return table


def read_table(path: Path | str, data: bytes | None = None) -> Table:
    """Read ``path`` (or ``data`` named by ``path``) as CSV (UTF-8, BOM allowed, , or ;) or XLSX (first sheet)."""
    name = str(path).lower()
    try:
        raw = data if data is not None else Path(path).read_bytes()
    except OSError as exc:
        raise TableError("unreadable", detail=exc.strerror or str(exc)) from None
    if name.endswith(".csv"):
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise TableError("unreadable", detail="not UTF-8") from None
        first = text.split("\n", 1)[0]
        delimiter = ";" if first.count(";") > first.count(",") else ","  # Excel in vi locale writes ';'
        try:  # newline="": the csv module handles quoted line breaks and lone carriage returns itself
            return _table(iter(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)))
        except csv.Error as exc:
            raise TableError("unreadable", detail=str(exc)[:200]) from None
    if name.endswith(".xlsx"):
        import openpyxl  # type: ignore[import-untyped]

        try:
            book = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many kinds for a damaged file
            raise TableError("unreadable", detail=type(exc).__name__) from None
        try:
            sheet = book.worksheets[0]
            return _table(iter([list(r) for r in sheet.iter_rows(values_only=True)]))
        finally:
            book.close()
    raise TableError("bad_format")


def csv_bytes(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> bytes:
    """A header and its rows as CSV, UTF-8 with a BOM so Excel shows Vietnamese correctly."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode()


def new_workbook(title: str) -> tuple[Any, Any]:
    """An XLSX workbook and its first sheet, titled (Excel takes at most 31 characters)."""
    from openpyxl import Workbook  # type: ignore[import-untyped]

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title[:31]
    return book, sheet


def bold_row(sheet: Any, row: int = 1) -> None:
    """Set a sheet's row (the header) in bold."""
    from openpyxl.styles import Font  # type: ignore[import-untyped]

    bold = Font(bold=True)
    for cell in sheet[row]:
        cell.font = bold


def xlsx_bytes(book: Any) -> bytes:
    """The workbook as the bytes of an .xlsx file."""
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
