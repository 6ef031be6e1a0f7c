"""REST API v1: districts, schools, rooms and devices (read side of the inventory)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from classfleet_wire import lookup

from ..store import queries
from ..store.models import DEVICE_KINDS, HEALTH_STATES, ROOM_KINDS, Device, DeviceInventory
from .deps import IdPath, IdQuery, NowDep, Offset, PrincipalDep, SessionDep, SettingsDep, check_read
from .schemas import (
    DeviceDetail,
    DevicePublic,
    DeviceStatePublic,
    DistrictPublic,
    IncidentPublic,
    InventoryPublic,
    ListPublic,
    PollReading,
    RoomPublic,
    SchoolPublic,
)

router = APIRouter(prefix="/api/v1")

Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]


def _check_choice(name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise HTTPException(422, detail=f"{name} must be one of: {', '.join(allowed)}")


@router.get("/districts", response_model=ListPublic[DistrictPublic], tags=["inventory"])
def read_districts(session: SessionDep, principal: PrincipalDep, limit: Limit = 100,
                   offset: Offset = 0) -> dict[str, Any]:
    """List districts (those with a school the caller may see)."""
    page = queries.list_districts(session, principal.schools, limit, offset)
    return {"items": [r[0] for r in page.items], "total": page.total, "limit": limit, "offset": offset}


@router.get("/schools", response_model=ListPublic[SchoolPublic], tags=["inventory"])
def read_schools(session: SessionDep, principal: PrincipalDep, district: str | None = None, limit: Limit = 100,
                 offset: Offset = 0) -> dict[str, Any]:
    """List schools, optionally of one district."""
    page = queries.list_schools(session, principal.schools, district, limit, offset)
    return {"items": [r[0] for r in page.items], "total": page.total, "limit": limit, "offset": offset}


@router.get("/rooms", response_model=ListPublic[RoomPublic], tags=["inventory"])
def read_rooms(session: SessionDep, principal: PrincipalDep, school: str | None = None, kind: str | None = None,
               limit: Limit = 100, offset: Offset = 0) -> dict[str, Any]:
    """List rooms, optionally of one school and room kind."""
    _check_choice("kind", kind, ROOM_KINDS)
    page = queries.list_rooms(session, principal.schools, school, kind, limit, offset)
    return {"items": [r[0] for r in page.items], "total": page.total, "limit": limit, "offset": offset}


def _device_public(row: Any) -> dict[str, Any]:
    device, state, health = row
    return {
        "id": device.id, "school_id": device.school_id, "uid": device.uid, "room_id": device.room_id,
        "kind": device.kind, "name": device.name, "vendor": device.vendor, "model": device.model,
        "serial": device.serial, "asset_tag": device.asset_tag, "watched_by": device.watched_by,
        "lifecycle": device.lifecycle, "health": health, "last_seen": state.last_seen if state else None,
    }


@router.get("/devices", response_model=ListPublic[DevicePublic], tags=["devices"])
def read_devices(
    session: SessionDep,
    settings: SettingsDep,
    now: NowDep,
    principal: PrincipalDep,
    school: str | None = None,
    district: str | None = None,
    room: IdQuery = None,
    kind: str | None = None,
    health: str | None = None,
    unassigned: bool | None = None,
    q: Annotated[str | None, Query(max_length=100, description="text search in id, name, vendor, model, "
                                                                "serial, asset tag")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """List devices with derived health; filter by school, district, room, kind, health, text."""
    _check_choice("kind", kind, DEVICE_KINDS)
    _check_choice("health", health, HEALTH_STATES)
    flt = queries.DeviceFilter(school=school, district=district, room=room, kind=kind, health=health,
                               unassigned=unassigned, q=q, scope=principal.schools)
    page = queries.list_devices(session, now, settings.offline_after_s, flt, limit, offset)
    return {"items": [_device_public(r) for r in page.items], "total": page.total, "limit": limit,
            "offset": offset}


@router.get("/devices/{device_id}", response_model=DeviceDetail, tags=["devices"],
            responses={404: {"description": "no such device"}})
def read_device(device_id: IdPath, session: SessionDep, settings: SettingsDep, now: NowDep, principal: PrincipalDep,
                lang: Annotated[str, Query(pattern="^(vi|en)$")] = "vi") -> dict[str, Any]:
    """One device with its latest state, its latest poll reading (a plug's on/off, power and energy; a
    projector's power, input and lamp hours) and open incidents (texts in ``lang``)."""
    row = queries.get_device(session, now, settings.offline_after_s, device_id)
    check_read(principal, row[0].school_id if row else None, f"device {device_id}")
    state = row[1]
    incidents = [
        IncidentPublic.model_validate({**{k: getattr(i, k) for k in IncidentPublic.model_fields if k != "text"},
                                       "text": lookup(i.code).text(lang)})
        for i in queries.open_incidents(session, device_id)
    ]
    poll = queries.latest_poll(session, row[0])
    return {**_device_public(row), "state": DeviceStatePublic.model_validate(state) if state else None,
            "latest_poll": PollReading.of(poll.ts, poll.data or {}) if poll is not None else None,
            "incidents": incidents}


@router.get("/devices/{device_id}/inventory", response_model=InventoryPublic, tags=["devices"],
            responses={404: {"description": "no such device, or no inventory reported yet"}})
def read_device_inventory(device_id: IdPath, session: SessionDep, principal: PrincipalDep) -> Any:
    """The latest hardware and software inventory the device reported."""
    device = session.get(Device, device_id)
    check_read(principal, device.school_id if device else None, f"device {device_id}")
    inventory = session.get(DeviceInventory, device_id)
    if inventory is None:
        raise HTTPException(404, detail=f"no inventory for device {device_id}")
    return inventory
