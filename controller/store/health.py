"""Device health, derived in SQL from stored state at read time (so it is never a stale copy).

Order: never seen → ``unknown``; offline or silent for ``offline_after_s`` → ``offline``;
an open critical incident → ``faulty``; an open warning → ``degraded``; else ``ok``.
An offline device in a school whose flagged uplink switch is unreachable is
``unreachable_upstream``: its own silence is explained by the school's link, not by itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.orm import aliased

from .models import Device, DeviceState, Incident

SEVERITY_RANK = case((Incident.severity == "critical", 2), (Incident.severity == "warning", 1), else_=0)


def worst_open_severity() -> Any:
    """Correlated subquery: the worst open incident's rank for the outer query's device (0 if none)."""
    return (
        select(func.coalesce(func.max(SEVERITY_RANK), 0))
        .where(Incident.device_id == Device.id, Incident.state != "resolved")
        .correlate(Device)
        .scalar_subquery()
    )


UPSTREAM_CODES = ("switch.unreachable", "school.upstream_down")


def school_uplink_down() -> Any:
    """Correlated EXISTS: another device of the outer device's school, flagged as the school's uplink,
    has an open unreachable/upstream incident."""
    uplink = aliased(Device)
    return exists(
        select(Incident.id).join(uplink, uplink.id == Incident.device_id)
        .where(uplink.school_id == Device.school_id, uplink.id != Device.id, uplink.is_school_uplink.is_(True),
               Incident.state != "resolved", Incident.code.in_(UPSTREAM_CODES))
    ).correlate(Device)


def health_expr(now: dt.datetime, offline_after_s: float) -> Any:
    """SQL expression for a device's health; the query must outer-join ``DeviceState`` to ``Device``."""
    silent_since = now - dt.timedelta(seconds=offline_after_s)
    worst = worst_open_severity()
    offline = or_(DeviceState.online.is_(False), DeviceState.last_seen < silent_since)
    return case(
        (or_(DeviceState.device_id.is_(None), DeviceState.last_seen.is_(None)), "unknown"),
        (and_(offline, school_uplink_down()), "unreachable_upstream"),
        (offline, "offline"),
        (worst >= 2, "faulty"),
        (worst == 1, "degraded"),
        else_="ok",
    )
