"""Equipment plan import (issue 7): planned counts per school × room kind × device kind, upserted.

Same rules as the inventory import: every row validated, errors by row and column, nothing written from
a file with errors, re-importing changes nothing. Lines absent from the file are kept (a plan is imported
school by school); set ``planned`` to 0 to cancel a line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..store.models import DEVICE_KINDS, ROOM_KINDS, AuditLog, EquipmentPlan, School
from .importer import upsert
from .validation import (
    ImportResult,
    Progress,
    RowError,
    check_choice,
    check_columns,
    check_id,
    load_table,
    transaction,
    validate_row,
)

COLUMNS = ("school", "room_kind", "device_kind", "planned")


class PlanRow(BaseModel):
    """One plan line: how many devices of a kind were bought for a school's rooms of a kind."""

    school: Annotated[str, AfterValidator(check_id)]
    room_kind: Annotated[str, AfterValidator(lambda v: check_choice(v, ROOM_KINDS))]
    device_kind: Annotated[str, AfterValidator(lambda v: check_choice(v, DEVICE_KINDS))]
    planned: Annotated[int, Field(ge=0, le=1_000_000)]


def import_plan(session: Session, path: Path | str, data: bytes | None = None, *, actor: str = "import",
                progress: Progress | None = None, writable: frozenset[str] | None = None,
                dry_run: bool = False) -> ImportResult:
    """Validate the whole plan file, then upsert its lines in one transaction (nothing on any error).
    ``writable``: the schools the importing user may change (None: all); ``dry_run``: roll back at the end."""
    result = ImportResult(dry_run=dry_run)
    if (table := load_table(path, data, result)) is None:
        return result
    errors = check_columns(table, COLUMNS, COLUMNS)
    rows: list[tuple[int, PlanRow]] = []
    seen: dict[tuple[str, str, str], int] = {}
    total = len(table.rows)
    for i, (row, cells) in enumerate([] if errors else table.rows, start=1):
        obj, row_errors = validate_row(PlanRow, row, cells)
        errors += row_errors
        if isinstance(obj, PlanRow):
            key = (obj.school, obj.room_kind, obj.device_kind)
            if key in seen:
                errors.append(RowError(row, "device_kind", "duplicate", {"other": seen[key]}))
            else:
                seen[key] = row
                rows.append((row, obj))
        if progress and (i % 500 == 0 or i == total):
            progress(i, total)
    if writable is not None:  # refused before the store is read: nothing is said about other schools
        refused = [RowError(row, "school", "scope_school", {"value": cells.get("school")})
                   for row, cells in table.rows
                   if cells.get("school") and cells["school"] not in writable]
        if refused:
            result.errors = sorted(errors + refused, key=lambda e: (e.row or 0, e.column or ""))
            return result
    with transaction(session, dry_run):
        schools = set(session.scalars(select(School.id).where(School.id.in_({r.school for _, r in rows}))))
        errors += [RowError(row, "school", "unknown_school", {"value": r.school})
                   for row, r in rows if r.school not in schools]
        if errors:
            result.errors = sorted(errors, key=lambda e: (e.row or 0, e.column or ""))
            return result
        existing: dict[Any, dict[str, Any]] = {
            (p.school_id, p.room_kind, p.device_kind): {"id": p.id, "planned": p.planned}
            for p in session.execute(select(EquipmentPlan.id, EquipmentPlan.school_id, EquipmentPlan.room_kind,
                                            EquipmentPlan.device_kind, EquipmentPlan.planned)
                                     .where(EquipmentPlan.school_id.in_(schools)))}
        upsert(session, EquipmentPlan, "plan_lines", existing, (
            ((r.school, r.room_kind, r.device_kind), {"planned": r.planned},
             {"school_id": r.school, "room_kind": r.room_kind, "device_kind": r.device_kind})
            for _, r in rows), result)
        if result.changed:
            session.add(AuditLog(actor=actor, action="plan.import", target=f"file:{Path(path).name}",
                                 detail={"rows": result.rows, "created": result.created, "updated": result.updated}))
    return result
