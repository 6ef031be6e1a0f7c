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


class PollReading(BaseModel):
    """A polled device's latest reading (its newest poll history row): when, whether it answered, and what a
    technician asks first; a figure the device did not report is null."""

    at: dt.datetime
    reachable: bool
    power_on: bool | None = None  # a smart plug's relay
    power_w: float | None = None  # a smart plug's measured power
    energy_kwh_total: float | None = None  # a smart plug's energy counter
    power: str | None = None  # a projector's power: on | off | cooling | warming
    input: str | None = None  # a projector's PJLink input code, e.g. "31"
    input_name: str | None = None  # the same for people, e.g. "digital 1"
    lamp_hours: int | None = None  # a projector's lamp hours (the most worn lamp)
    error: str | None = None  # why the last poll got no answer

    @classmethod
    def of(cls, at: dt.datetime, data: dict[str, Any]) -> PollReading:
        """From a poll history row's time and figures; figures of an unexpected type are left out, not refused
        (history is written by several pollers and kept for months)."""
        from ..pollers.pjlink.protocol import input_name

        def typed(key: str, *types: type) -> Any:
            value = data.get(key)
            return value if isinstance(value, types) and not (isinstance(value, bool) and bool not in types) else None

        code = typed("input", str)
        return cls(at=at, reachable=bool(data.get("reachable", True)), power_on=typed("power_on", bool),
                   power_w=typed("power_w", int, float), energy_kwh_total=typed("energy_kwh_total", int, float),
                   power=typed("power", str), input=code, input_name=input_name(code) if code else None,
                   lamp_hours=typed("lamp_hours", int), error=typed("error", str))


class DeviceDetail(DevicePublic):
    """A device with its latest state, its latest poll (plugs, projectors, switches, cameras) and open incidents."""

    state: DeviceStatePublic | None
    latest_poll: PollReading | None = None
    incidents: list[IncidentPublic]


class Health(BaseModel):
    """Liveness/readiness answer."""

    status: str
    checks: dict[str, str] = {}
