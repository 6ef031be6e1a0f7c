"""What pollers (SNMP, ONVIF, PJLink, plug adapters) hand to the store: one ``PollResult`` per
device and round. Pollers do network I/O only; this module turns their results into history,
device state, inventory facts, component status and incidents, in one transaction per call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select, update

from .. import faults
from .models import Device, DeviceComponent, DeviceState, Observation
from .writer import insert_for

IDENTITY_FIELDS = ("vendor", "model", "serial", "firmware")


@dataclass(frozen=True, slots=True)
class FaultCheck:
    """A fault condition the poller checked this round: ``active`` raises it, inactive clears it."""

    code: str
    active: bool
    severity: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """The status of one part of the device (a port, an NVR channel, a lamp)."""

    kind: str
    index: int
    status: str
    name: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PollResult:
    """One device's poll: reachability, figures for history, identity facts, faults, components."""

    device_id: int
    at: dt.datetime
    reachable: bool
    figures: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, str] = field(default_factory=dict)
    faults: tuple[FaultCheck, ...] = ()
    components: tuple[ComponentStatus, ...] = ()


def record_polls(engine: Engine, results: Iterable[PollResult]) -> int:
    """Store a round of poll results in one transaction; returns how many were recorded."""
    results = list(results)
    if not results:
        return 0
    with engine.begin() as conn:
        ids = [r.device_id for r in results]
        schools = dict(conn.execute(select(Device.id, Device.school_id).where(Device.id.in_(ids))).all())
        conn.execute(insert_for(conn, DeviceState).on_conflict_do_nothing(index_elements=["device_id"]),
                     [{"device_id": i, "session": 0, "seq": -1, "online": False, "status_session": -1,
                       "hb_session": -1, "hb_seq": -1} for i in ids])
        states = {row.device_id: row for row in conn.execute(
            select(DeviceState.device_id, DeviceState.online, DeviceState.last_seen)
            .where(DeviceState.device_id.in_(ids)))}
        history = []
        for r in results:
            if r.device_id not in schools:
                continue  # deleted while it was being polled
            history.append({"device_id": r.device_id, "session": 0, "seq": int(r.at.timestamp() * 1000),
                            "kind": "poll", "ts": r.at, "received_at": r.at, "replayed": False,
                            "data": {"reachable": r.reachable, **r.figures}})
            current = states[r.device_id]
            values: dict[str, Any] = {"online": r.reachable}
            if r.reachable != current.online:
                values["status_changed_at"] = r.at
            if r.reachable and (current.last_seen is None or r.at > current.last_seen):
                values["last_seen"] = r.at
            conn.execute(update(DeviceState).where(DeviceState.device_id == r.device_id).values(**values))
            identity = {k: str(v)[:120] for k, v in r.identity.items() if k in IDENTITY_FIELDS and v}
            if identity:
                conn.execute(update(Device).where(Device.id == r.device_id).values(**identity))
            faults.apply_checks(conn, r.device_id, schools[r.device_id], r.faults, r.at)
            _upsert_components(conn, r.device_id, r.components, r.at)
        if history:
            conn.execute(insert_for(conn, Observation).on_conflict_do_nothing(
                index_elements=["device_id", "session", "seq"]), history)
    return len(history)


def _upsert_components(conn: Any, device_id: int, components: tuple[ComponentStatus, ...], at: dt.datetime) -> None:
    if not components:
        return
    current = {(c.kind, c.index): c.status for c in conn.execute(
        select(DeviceComponent.kind, DeviceComponent.index, DeviceComponent.status)
        .where(DeviceComponent.device_id == device_id))}
    for comp in components:
        key = (comp.kind, comp.index)
        if key not in current:
            conn.execute(DeviceComponent.__table__.insert().values(
                device_id=device_id, kind=comp.kind, index=comp.index, name=comp.name, status=comp.status,
                data=comp.data, changed_at=at, updated_at=at))
            continue
        values: dict[str, Any] = {"name": comp.name, "status": comp.status, "data": comp.data, "updated_at": at}
        if current[key] != comp.status:
            values["changed_at"] = at
        conn.execute(update(DeviceComponent).where(
            DeviceComponent.device_id == device_id, DeviceComponent.kind == comp.kind,
            DeviceComponent.index == comp.index).values(**values))
