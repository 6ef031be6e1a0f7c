"""Template files for the imports (docs/templates/): ``python -m controller.audit.template_files docs/templates``."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

from .importer import COLUMNS as INVENTORY_COLUMNS
from .plan import COLUMNS as PLAN_COLUMNS
from .tabular import bold_row, new_workbook, xlsx_bytes

INVENTORY_EXAMPLE: list[dict[str, Any]] = [
    {"record": "district", "district": "q1", "name": "Phòng GD&ĐT Quận 1"},
    {"record": "school", "school": "thcs-le-loi", "name": "Trường THCS Lê Lợi", "district": "q1",
     "timezone": "Asia/Ho_Chi_Minh"},
    {"record": "room", "school": "thcs-le-loi", "room": "P101", "kind": "smart_l1", "name": "Phòng 101"},
    {"record": "room", "school": "thcs-le-loi", "room": "P201", "kind": "smart_l2", "name": "Phòng 201"},
    {"record": "room", "school": "thcs-le-loi", "room": "HOP-1", "kind": "online_meeting",
     "name": "Phòng họp trực tuyến"},
    {"record": "device", "school": "thcs-le-loi", "uid": "ac-p201-1", "kind": "air_conditioner", "room": "P201",
     "name": "Điều hòa P201", "vendor": "Daikin", "model": "FTKB35WAVMV", "serial": "E012345",
     "asset_tag": "TS-2025-0101", "purchase_date": "2025-08-15", "warranty_end": "2027-08-15"},
    {"record": "device", "school": "thcs-le-loi", "uid": "proj-p101", "kind": "projector", "room": "P101",
     "vendor": "Epson", "model": "EB-X06", "serial": "X5KF123456", "asset_tag": "TS-2025-0102",
     "purchase_date": "15/08/2025", "warranty_end": "15/08/2027"},
    {"record": "device", "school": "thcs-le-loi", "uid": "board-p101", "kind": "smart_board", "room": "P101",
     "name": "Bảng tương tác (thụ động)", "vendor": "Hitachi", "model": "StarBoard"},
]
PLAN_EXAMPLE: list[dict[str, Any]] = [
    {"school": "thcs-le-loi", "room_kind": "smart_l2", "device_kind": "laptop", "planned": 45},
    {"school": "thcs-le-loi", "room_kind": "smart_l2", "device_kind": "air_conditioner", "planned": 2},
    {"school": "thcs-le-loi", "room_kind": "smart_l1", "device_kind": "projector", "planned": 1},
    {"school": "thcs-le-loi", "room_kind": "corridor", "device_kind": "nvr", "planned": 1},
    {"school": "thcs-le-loi", "room_kind": "corridor", "device_kind": "camera", "planned": 8},
]
TEMPLATES = {"inventory-template": (INVENTORY_COLUMNS, INVENTORY_EXAMPLE),
             "plan-template": (PLAN_COLUMNS, PLAN_EXAMPLE)}


def template_csv(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> bytes:
    """A template as CSV (UTF-8 with a BOM so Excel opens Vietnamese text correctly)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode()


def template_xlsx(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> bytes:
    """A template as XLSX: the same table on the first sheet, dates as text so both spellings stay visible."""
    book, sheet = new_workbook("data")
    sheet.append(list(columns))
    bold_row(sheet)
    for row in rows:
        sheet.append([row.get(c) for c in columns])
    return xlsx_bytes(book)


def write_template(directory: Path, name: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> list[Path]:
    """Write one template as ``name``.csv and ``name``.xlsx into ``directory`` (made if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, data in (("csv", template_csv(columns, rows)), ("xlsx", template_xlsx(columns, rows))):
        path = directory / f"{name}.{suffix}"
        path.write_bytes(data)
        written.append(path)
    return written


def write_templates(directory: Path) -> list[Path]:
    """Write every template as .csv and .xlsx into ``directory``."""
    return [path for name, (columns, rows) in TEMPLATES.items()
            for path in write_template(directory, name, columns, rows)]


if __name__ == "__main__":
    for written_path in write_templates(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/templates")):
        print(written_path)
