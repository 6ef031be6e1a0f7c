"""Device health, derived in SQL from stored state at read time (so it is never a stale copy).

Order: never seen → ``unknown``; offline or silent for ``offline_after_s`` → ``offline``;
an open critical incident → ``faulty``; an open warning → ``degraded``; else ``ok``.
Upstream suppression (``unreachable_upstream``) is added by the faults engine of the incidents issue.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import case, func, or_, select

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


def health_expr(now: dt.datetime, offline_after_s: float) -> Any:
    """SQL expression for a device's health; the query must outer-join ``DeviceState`` to ``Device``."""
    silent_since = now - dt.timedelta(seconds=offline_after_s)
    worst = worst_open_severity()
    return case(
        (or_(DeviceState.device_id.is_(None), DeviceState.last_seen.is_(None)), "unknown"),
        (or_(DeviceState.online.is_(False), DeviceState.last_seen < silent_since), "offline"),
        (worst >= 2, "faulty"),
        (worst == 1, "degraded"),
        else_="ok",
    )
