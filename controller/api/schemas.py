"""Public API schemas (response models); separate from the store's ORM classes."""

from __future__ import annotations

import datetime as dt
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class ListPublic(BaseModel, Generic[T]):
    """A page of items with the total that match the filters."""

    items: list[T]
    total: int
    limit: int
    offset: int


class DistrictPublic(BaseModel):
    """A district office."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str


class SchoolPublic(BaseModel):
    """A school."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    district_id: str | None
    timezone: str
    hours_start: str
    hours_end: str


class RoomPublic(BaseModel):
    """A room of a school."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    school_id: str
    code: str
    name: str
    kind: str


class DeviceStatePublic(BaseModel):
    """Latest known state of a device."""

    model_config = ConfigDict(from_attributes=True)
    online: bool
    session: int
    seq: int
    last_seen: dt.datetime | None
    status_changed_at: dt.datetime | None
    agent_version: str | None
    profile: str | None
    uptime_s: float | None
    cpu_pct: float | None
    mem_pct: float | None
    disk_max_pct: float | None
    temp_c: float | None
    clock_skew_s: float | None
    inventory_hash: str | None


class DevicePublic(BaseModel):
    """A device with its derived health."""

    id: int
    school_id: str
    uid: str
    room_id: int | None
    kind: str
    name: str | None
    vendor: str | None
    model: str | None
    serial: str | None
    asset_tag: str | None
    watched_by: str
    lifecycle: str
    health: str
    last_seen: dt.datetime | None


class IncidentPublic(BaseModel):
    """An open incident."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    code: str
    severity: str
    state: str
    count: int
    opened_at: dt.datetime
    last_seen: dt.datetime
    text: str


class InventoryPublic(BaseModel):
    """A device's latest inventory."""

    model_config = ConfigDict(from_attributes=True)
    device_id: int
    hash: str
    hardware: dict[str, Any]
    software: list[dict[str, Any]]
    updated_at: dt.datetime


class DeviceDetail(DevicePublic):
    """A device with its latest state and open incidents."""

    state: DeviceStatePublic | None
    incidents: list[IncidentPublic]


class Health(BaseModel):
    """Liveness/readiness answer."""

    status: str
    checks: dict[str, str] = {}
