"""Inventory import (issue 7): districts, schools, rooms and devices that cannot speak for themselves.

One flat table (CSV or the first XLSX sheet) with a ``record`` column saying what each row is; see
docs/import-inventory.md. Every row is validated first; a file with any error imports nothing; a clean
file is upserted by natural keys in one transaction, so importing it again changes nothing. Blank
optional cells never erase what is stored.

Through the API and the console, ``writable`` is the importing user's schools: rows of other schools, and
district rows for anyone not department-wide, are refused (``scope_*`` errors) before the store is read,
so a refusal says nothing about what exists there. ``dry_run`` validates and applies, then rolls back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from ..adapters.registry import PLUG_WATCHERS, valid_address
from ..store.models import DEFAULT_TIMEZONE, DEVICE_KINDS, ROOM_KINDS, AuditLog, Device, District, Room, School
from .tabular import Table
from .validation import (
    ImportResult,
    Progress,
    RowError,
    check_choice,
    check_columns,
    check_id,
    check_timezone,
    load_table,
    parse_date,
    transaction,
    validate_row,
)

RECORDS = ("district", "school", "room", "device")
COLUMNS = ("record", "district", "school", "room", "uid", "name", "kind", "timezone", "vendor", "model",
           "serial", "asset_tag", "purchase_date", "warranty_end", "watched_by", "mgmt_address")
# How an imported device is watched: nothing (manual) or a smart plug's MQTT dialect (controller.adapters).
IMPORT_WATCHERS = ("manual", *PLUG_WATCHERS)
REQUIRED_COLUMNS = ("record", "district", "school", "room", "uid", "name", "kind")

Id = Annotated[str, AfterValidator(check_id)]
Name = Annotated[str, Field(max_length=200)]
Text120 = Annotated[str, Field(max_length=120)]
RoomCode = Annotated[str, Field(max_length=64)]
Day = Annotated[dt.date, BeforeValidator(parse_date)]
RoomKind = Annotated[str, AfterValidator(lambda v: check_choice(v, ROOM_KINDS))]
DeviceKind = Annotated[str, AfterValidator(lambda v: check_choice(v, DEVICE_KINDS))]
Timezone = Annotated[str, AfterValidator(check_timezone)]


class DistrictRow(BaseModel):
    """A district office: id and name."""

    district: Id
    name: Name


class SchoolRow(BaseModel):
    """A school: id, name, optionally its district and time zone."""

    school: Id
    name: Name
    district: Id | None = None
    timezone: Timezone | None = None


class RoomRow(BaseModel):
    """A room of a school, keyed by its code within the school."""

    school: Id
    room: RoomCode
    kind: RoomKind
    name: Name | None = None


class DeviceRow(BaseModel):
    """A device the fleet cannot discover itself (air conditioner, projector, passive board, …)."""

    school: Id
    uid: Id
    kind: DeviceKind
    room: RoomCode | None = None
    name: Name | None = None
    vendor: Text120 | None = None
    model: Text120 | None = None
    serial: Text120 | None = None
    asset_tag: Text120 | None = None
    purchase_date: Day | None = None
    warranty_end: Day | None = None
    watched_by: Annotated[str, AfterValidator(lambda v: check_choice(v, IMPORT_WATCHERS))] | None = None
    mgmt_address: Annotated[str | None, Field(default=None, max_length=255, validate_default=True)]

    @field_validator("mgmt_address")
    @classmethod
    def _plug_address(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A plug needs its MQTT topic (Tasmota) or topic prefix (Shelly): one topic level, no wildcards."""
        if info.data.get("watched_by") in PLUG_WATCHERS and (value is None or not valid_address(value)):
            raise PydanticCustomError("plug_address", "plug_address",
                                      {"value": value or "", "watched_by": info.data["watched_by"]})
        return value

    @model_validator(mode="after")
    def _warranty_after_purchase(self) -> DeviceRow:
        """A warranty cannot end before the purchase (a swapped-columns typo)."""
        if self.purchase_date and self.warranty_end and self.warranty_end < self.purchase_date:
            raise PydanticCustomError("warranty_before_purchase", "warranty_before_purchase",
                                      {"value": self.warranty_end.isoformat()})
        return self


MODELS: dict[str, type[BaseModel]] = {"district": DistrictRow, "school": SchoolRow, "room": RoomRow,
                                      "device": DeviceRow}
KEY_COLUMN = {"district": "district", "school": "school", "room": "room", "device": "uid"}


class Parsed:
    """Validated rows by record kind with their spreadsheet row numbers, and every row's raw cells."""

    def __init__(self) -> None:
        self.districts: list[tuple[int, DistrictRow]] = []
        self.schools: list[tuple[int, SchoolRow]] = []
        self.rooms: list[tuple[int, RoomRow]] = []
        self.devices: list[tuple[int, DeviceRow]] = []
        self.raw: list[tuple[int, str, dict[str, Any]]] = []  # references are checked on these, valid or not


def _raw_key(record: str, cells: dict[str, Any]) -> tuple[Any, ...] | None:
    """The natural key a row upserts on, from its raw cells (None when a key cell is blank)."""
    columns = {"district": ("district",), "school": ("school",), "room": ("school", "room"),
               "device": ("school", "uid")}[record]
    key = tuple(cells.get(c) for c in columns)
    return None if any(v is None for v in key) else key


def parse(table: Table, progress: Progress | None = None) -> tuple[Parsed, list[RowError]]:
    """Validate every row (types, kinds, ids, dates, duplicates in the file); no store access."""
    errors = check_columns(table, REQUIRED_COLUMNS, COLUMNS)
    parsed = Parsed()
    if errors:
        return parsed, errors
    seen: dict[tuple[str, tuple[Any, ...]], int] = {}
    total = len(table.rows)
    for i, (row, cells) in enumerate(table.rows, start=1):
        record = str(cells.get("record") or "").lower()
        if record not in RECORDS:
            code = "missing" if not record else "choice"
            errors.append(RowError(row, "record", code, {"value": cells.get("record"), "choices": ", ".join(RECORDS)}))
            continue
        parsed.raw.append((row, record, cells))
        obj, row_errors = validate_row(MODELS[record], row, cells, record, fallback_column="warranty_end")
        errors += row_errors
        key = _raw_key(record, cells)
        duplicate = False
        if key is not None:
            duplicate = (record, key) in seen
            if duplicate:
                errors.append(RowError(row, KEY_COLUMN[record], "duplicate", {"other": seen[(record, key)]}))
            else:
                seen[(record, key)] = row
        if obj is not None and not duplicate:
            getattr(parsed, record + "s").append((row, obj))
        if progress and (i % 500 == 0 or i == total):
            progress(i, total)
    return parsed, errors


def check_references(session: Session, parsed: Parsed) -> list[RowError]:
    """Every district, school and room a row names must be in the file or already registered."""
    errors: list[RowError] = []
    districts = {c["district"] for _, r, c in parsed.raw if r == "district" and c.get("district")}
    schools = {c["school"] for _, r, c in parsed.raw if r == "school" and c.get("school")}
    rooms = {(c["school"], c["room"]) for _, r, c in parsed.raw if r == "room" and c.get("school") and c.get("room")}
    named = {c["district"] for _, r, c in parsed.raw if r == "school" and c.get("district")} - districts
    if named:
        districts |= set(session.scalars(select(District.id).where(District.id.in_(named))))
    named = {c["school"] for _, r, c in parsed.raw if r in ("room", "device") and c.get("school")} - schools
    if named:
        schools |= set(session.scalars(select(School.id).where(School.id.in_(named))))
    wanted = {(c["school"], c["room"]) for _, r, c in parsed.raw
              if r == "device" and c.get("school") and c.get("room")} - rooms
    if wanted:
        rooms |= set(session.execute(select(Room.school_id, Room.code).where(
            Room.school_id.in_({s for s, _ in wanted}))).tuples())
    for row, record, c in parsed.raw:
        if record == "school" and c.get("district") and c["district"] not in districts:
            errors.append(RowError(row, "district", "unknown_district", {"value": c["district"]}))
        elif record in ("room", "device") and c.get("school") and c["school"] not in schools:
            errors.append(RowError(row, "school", "unknown_school", {"value": c["school"]}))
        elif record == "device" and c.get("school") and c.get("room") and (c["school"], c["room"]) not in rooms:
            errors.append(RowError(row, "room", "unknown_room", {"value": c["room"], "school": c["school"]}))
    return errors + plug_address_errors(session, parsed)


def plug_address_errors(session: Session, parsed: Parsed) -> list[RowError]:
    """One plug per (dialect, address): its messages must name one device, in the file and in the store."""
    errors: list[RowError] = []
    first: dict[tuple[str, str], tuple[int, tuple[str, str]]] = {}
    for row, d in parsed.devices:
        if d.watched_by not in PLUG_WATCHERS or not d.mgmt_address:
            continue
        key = (d.watched_by, d.mgmt_address)
        if key in first:
            errors.append(RowError(row, "mgmt_address", "duplicate", {"other": first[key][0]}))
        else:
            first[key] = (row, (d.school, d.uid))
    if first:
        taken = session.execute(select(Device.watched_by, Device.mgmt_address, Device.school_id, Device.uid).where(
            Device.watched_by.in_(PLUG_WATCHERS), Device.mgmt_address.in_({a for _, a in first}))).all()
        for watched_by, address, school, uid in taken:
            row_device = first.get((watched_by, address))
            if row_device is not None and row_device[1] != (school, uid):
                errors.append(RowError(row_device[0], "mgmt_address", "plug_taken",
                                       {"value": address, "school": school, "uid": uid}))
    return errors


def scope_errors(parsed: Parsed, writable: frozenset[str]) -> list[RowError]:
    """Rows the user may not import: districts (department-wide users only) and other schools' rows."""
    errors = []
    for row, record, c in parsed.raw:
        if record == "district":
            errors.append(RowError(row, "district", "scope_district", {"value": c.get("district")}))
        elif c.get("school") and c["school"] not in writable:
            errors.append(RowError(row, "school", "scope_school", {"value": c["school"]}))
    return errors


def _merge(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The changed fields: blank (None) wanted values never erase stored ones."""
    return {k: v for k, v in wanted.items() if v is not None and current.get(k) != v}


def upsert(session: Session, model: Any, label: str, existing: dict[Any, dict[str, Any]],
            rows: Iterable[tuple[Any, dict[str, Any], dict[str, Any]]], result: ImportResult) -> None:
    """Insert new keys, update changed ones by primary key, count the rest unchanged (bulk statements)."""
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for key, values, defaults in rows:
        current = existing.get(key)
        if current is None:
            inserts.append({**defaults, **{k: v for k, v in values.items() if v is not None}})
            result.note_change(label, "create", key if isinstance(key, tuple) else (key,), {})
            continue
        changed = _merge(current, values)
        if changed:
            updates.append({**current, **changed})
            result.note_change(label, "update", key if isinstance(key, tuple) else (key,), changed)
        else:
            result.unchanged += 1
    if inserts:
        session.execute(insert(model), inserts)
    if updates:
        session.execute(update(model), updates)
    result.created[label] = len(inserts)
    result.updated[label] = len(updates)


def write(session: Session, parsed: Parsed, result: ImportResult) -> None:
    """Upsert validated rows in dependency order within the caller's transaction."""
    ids = [d.district for _, d in parsed.districts]
    existing = {r.id: {"id": r.id, "name": r.name}
                for r in session.execute(select(District.id, District.name).where(District.id.in_(ids)))}
    upsert(session, District, "districts", existing,
            ((d.district, {"name": d.name}, {"id": d.district}) for _, d in parsed.districts), result)

    ids = [s.school for _, s in parsed.schools]
    existing = {r.id: r._asdict() for r in session.execute(
        select(School.id, School.name, School.district_id, School.timezone).where(School.id.in_(ids)))}
    upsert(session, School, "schools", existing, (
        (s.school, {"name": s.name, "district_id": s.district, "timezone": s.timezone},
         {"id": s.school, "timezone": DEFAULT_TIMEZONE, "hours_start": "07:00", "hours_end": "17:00"})
        for _, s in parsed.schools), result)

    school_ids = {r.school for _, r in parsed.rooms} | {d.school for _, d in parsed.devices}
    room_query = select(Room.id, Room.school_id, Room.code, Room.name, Room.kind).where(Room.school_id.in_(school_ids))
    existing = {(r.school_id, r.code): {"id": r.id, "name": r.name, "kind": r.kind}
                for r in session.execute(room_query)}
    upsert(session, Room, "rooms", existing, (
        ((r.school, r.room), {"kind": r.kind, "name": r.name}, {"school_id": r.school, "code": r.room,
                                                                 "name": r.room})
        for _, r in parsed.rooms), result)

    room_ids = {(r.school_id, r.code): r.id for r in session.execute(room_query)}
    fields = ("room_id", "kind", "name", "vendor", "model", "serial", "asset_tag", "purchase_date", "warranty_end",
              "watched_by", "mgmt_address")
    existing = {(r.school_id, r.uid): {"id": r.id, **{f: getattr(r, f) for f in fields}}
                for r in session.execute(select(Device.id, Device.school_id, Device.uid,
                                                *(getattr(Device, f) for f in fields))
                                         .where(Device.school_id.in_(school_ids)))}
    upsert(session, Device, "devices", existing, (
        ((d.school, d.uid),
         {"room_id": room_ids[(d.school, d.room)] if d.room else None, "kind": d.kind, "name": d.name,
          "vendor": d.vendor, "model": d.model, "serial": d.serial, "asset_tag": d.asset_tag,
          "purchase_date": d.purchase_date, "warranty_end": d.warranty_end, "watched_by": d.watched_by,
          "mgmt_address": d.mgmt_address},
         {"school_id": d.school, "uid": d.uid, "watched_by": "manual", "lifecycle": "active",
          "is_school_uplink": False, "created_at": dt.datetime.now(dt.UTC)})
        for _, d in parsed.devices), result)


def import_inventory(session: Session, path: Path | str, data: bytes | None = None, *, actor: str = "import",
                     progress: Progress | None = None, writable: frozenset[str] | None = None,
                     dry_run: bool = False) -> ImportResult:
    """Validate the whole file, then upsert it in one transaction; with any error nothing is written.
    ``writable``: the schools the importing user may change (None: all); ``dry_run``: roll back at the end."""
    result = ImportResult(dry_run=dry_run)
    if (table := load_table(path, data, result)) is None:
        return result
    parsed, errors = parse(table, progress)
    if writable is not None and (refused := scope_errors(parsed, writable)):
        result.errors = sorted(errors + refused, key=lambda e: (e.row or 0, e.column or ""))
        return result
    with transaction(session, dry_run):
        errors += check_references(session, parsed)
        if errors:
            result.errors = sorted(errors, key=lambda e: (e.row or 0, e.column or ""))
            return result
        write(session, parsed, result)
        if result.changed:
            session.add(AuditLog(actor=actor, action="inventory.import", target=f"file:{Path(path).name}",
                                 detail={"rows": result.rows, "created": result.created, "updated": result.updated}))
    return result
