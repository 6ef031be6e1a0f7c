"""Read queries for the API and console: filters, pagination with totals, device detail."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, or_, select, true
from sqlalchemy.orm import Session

from .health import health_expr
from .models import Device, DeviceState, District, Incident, Observation, Room, School


@dataclass(frozen=True, slots=True)
class Page:
    """One page of results and the total matching the filters."""

    items: Sequence[Any]
    total: int


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    """Device list filters; None means 'any'."""

    school: str | None = None
    district: str | None = None
    room: int | None = None
    kind: str | None = None
    health: str | None = None
    unassigned: bool | None = None
    q: str | None = None
    scope: frozenset[str] | None = None  # the caller's schools; None: every school


def _page(session: Session, query: Select[Any], limit: int, offset: int) -> Page:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    return Page(items=session.execute(query.limit(limit).offset(offset)).all(), total=total)


def in_scope(column: Any, scope: frozenset[str] | None) -> Any:
    """Restrict a school-id column to a caller's schools (None: every school)."""
    return true() if scope is None else column.in_(sorted(scope))


def list_districts(session: Session, scope: frozenset[str] | None, limit: int, offset: int) -> Page:
    """Districts by id (those with a school in scope)."""
    query = select(District).order_by(District.id)
    if scope is not None:
        query = query.where(District.id.in_(select(School.district_id).where(in_scope(School.id, scope))))
    return _page(session, query, limit, offset)


def list_schools(session: Session, scope: frozenset[str] | None, district: str | None, limit: int,
                 offset: int) -> Page:
    """Schools, optionally of one district."""
    query = select(School).where(in_scope(School.id, scope)).order_by(School.id)
    if district:
        query = query.where(School.district_id == district)
    return _page(session, query, limit, offset)


def list_rooms(session: Session, scope: frozenset[str] | None, school: str | None, kind: str | None, limit: int,
               offset: int) -> Page:
    """Rooms, optionally of one school and kind."""
    query = select(Room).where(in_scope(Room.school_id, scope)).order_by(Room.school_id, Room.code)
    if school:
        query = query.where(Room.school_id == school)
    if kind:
        query = query.where(Room.kind == kind)
    return _page(session, query, limit, offset)


def devices_query(now: dt.datetime, offline_after_s: float, flt: DeviceFilter) -> Select[Any]:
    """Devices with their derived health and latest state, filtered."""
    health = health_expr(now, offline_after_s).label("health")
    query = (
        select(Device, DeviceState, health)
        .outerjoin(DeviceState, DeviceState.device_id == Device.id)
        .order_by(Device.school_id, Device.uid)
    )
    if flt.scope is not None:
        query = query.where(in_scope(Device.school_id, flt.scope))
    if flt.school:
        query = query.where(Device.school_id == flt.school)
    if flt.district:
        query = query.join(School, School.id == Device.school_id).where(School.district_id == flt.district)
    if flt.room is not None:
        query = query.where(Device.room_id == flt.room)
    if flt.kind:
        query = query.where(Device.kind == flt.kind)
    if flt.unassigned is not None:
        query = query.where(Device.room_id.is_(None) if flt.unassigned else Device.room_id.is_not(None))
    if flt.health:
        query = query.where(health_expr(now, offline_after_s) == flt.health)
    if flt.q:
        like = f"%{flt.q.lower()}%"
        query = query.where(or_(*(func.lower(c).like(like) for c in (
            Device.uid, Device.name, Device.vendor, Device.model, Device.serial, Device.asset_tag))))
    return query


def list_devices(session: Session, now: dt.datetime, offline_after_s: float, flt: DeviceFilter,
                 limit: int, offset: int) -> Page:
    """A page of (Device, DeviceState | None, health) rows."""
    return _page(session, devices_query(now, offline_after_s, flt), limit, offset)


def get_device(session: Session, now: dt.datetime, offline_after_s: float, device_id: int) -> Any | None:
    """One (Device, DeviceState | None, health) row, or None."""
    return session.execute(
        devices_query(now, offline_after_s, DeviceFilter()).where(Device.id == device_id)
    ).first()


def latest_poll(session: Session, device: Device) -> Observation | None:
    """The device's newest poll history row (a projector's check, a plug's report), or None. Agents and manual
    devices have none, so their (long) heartbeat history is not searched for one."""
    if device.watched_by in ("mqtt", "manual"):
        return None
    return session.scalars(select(Observation).where(Observation.device_id == device.id, Observation.kind == "poll")
                           .order_by(Observation.ts.desc()).limit(1)).first()


def open_incidents(session: Session, device_id: int) -> Sequence[Incident]:
    """Open incidents of one device, newest first."""
    return session.scalars(
        select(Incident).where(Incident.device_id == device_id, Incident.state != "resolved")
        .order_by(Incident.last_seen.desc())
    ).all()


def purge_history(session: Session, older_than: dt.datetime) -> int:
    """Delete observations received before ``older_than`` (the retention job); returns rows deleted."""
    from sqlalchemy import delete

    from .models import Observation

    result = session.execute(delete(Observation).where(Observation.received_at < older_than))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
