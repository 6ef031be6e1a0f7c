"""Recurring commands (DESIGN §6): "shut down every PC of school X at 17:30 on school days".

A ``CommandSchedule`` names a school or a room (optionally one device kind), an action, a local time of day and
whether it runs only on the school's school days (its timetable: weekdays and holidays). At each occurrence the
``ScheduleRunner`` creates the commands with ``create_commands``, so they sit in the ordinary ledger with their
lifecycle and expiry, ``not_before`` being the occurrence itself.

Exactly once: the schedule's ``last_occurrence`` is moved forward by a conditional UPDATE in the same transaction
that creates the commands, so a restart, a slow round or a second replica never fires an occurrence twice. An
occurrence missed while the controller was down is still fired when it comes back, as long as the commands would
not have expired yet (``expires_in_s`` after the occurrence); later than that it is recorded as missed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session

from .commands import CommandError, Target, create_commands
from .periodic import PeriodicTask
from .store.db import session_factory
from .store.models import CommandSchedule, School
from .timetable import Timetable, load_timetables, parse_time

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Firing:
    """One occurrence handled: how many commands it created, or why none."""

    schedule_id: int
    occurrence: dt.datetime
    commands: int
    result: str


def due_occurrence(schedule: CommandSchedule, timetable: Timetable, now: dt.datetime) -> dt.datetime | None:
    """The latest occurrence at or before ``now`` that is not handled yet (today's, or yesterday's when it was
    missed), or None."""
    at = parse_time(schedule.at_time)
    today = now.astimezone(timetable.zone).date()
    for day in (today, today - dt.timedelta(days=1)):
        occurrence = dt.datetime.combine(day, at, timetable.zone)
        if occurrence > now:
            continue
        if schedule.school_days_only and not timetable.is_school_day(day):
            continue
        if schedule.last_occurrence is not None and occurrence <= schedule.last_occurrence:
            return None
        if schedule.created_at is not None and occurrence < schedule.created_at:
            return None  # a schedule made at 17:40 starts with tomorrow's 17:30
        return occurrence
    return None


def _fire(session: Session, schedule: CommandSchedule, occurrence: dt.datetime, now: dt.datetime) -> Firing | None:
    """Claim the occurrence and create its commands, in the caller's transaction; None if already claimed."""
    claimed = session.execute(
        update(CommandSchedule)
        .where(CommandSchedule.id == schedule.id,
               or_(CommandSchedule.last_occurrence.is_(None), CommandSchedule.last_occurrence < occurrence))
        .values(last_occurrence=occurrence, last_run_at=now)
        .execution_options(synchronize_session=False)).rowcount
    if not claimed:
        return None
    expires_in = dt.timedelta(seconds=schedule.expires_in_s)
    count = 0
    if now >= occurrence + expires_in:
        result = "missed: the controller was not running in time"
    else:
        target = (Target(room_id=schedule.room_id, kind=schedule.kind) if schedule.room_id is not None
                  else Target(school_id=schedule.school_id, kind=schedule.kind))
        try:  # create_commands validates everything before it adds anything, so a refusal leaves no trace
            count = len(create_commands(session, target, schedule.action, dict(schedule.args or {}),
                                        expires_in=expires_in, not_before=occurrence,
                                        actor=f"schedule:{schedule.id}", now=now))
            result = f"{count} commands"
        except (CommandError, ValueError) as exc:  # no device matches today, an action no longer allowed, …
            result = f"error: {exc}"[:500]
    session.execute(update(CommandSchedule).where(CommandSchedule.id == schedule.id)
                    .values(last_result=result).execution_options(synchronize_session=False))
    return Firing(schedule.id, occurrence, count, result)


def run_schedules(engine: Engine, now: dt.datetime) -> list[Firing]:
    """Fire every enabled schedule's due occurrence (one transaction per schedule)."""
    sessions = session_factory(engine)
    with sessions() as session:
        schedules = list(session.scalars(select(CommandSchedule).where(CommandSchedule.enabled.is_(True))))
        if not schedules:
            return []
        schools = list(session.scalars(select(School).where(School.id.in_({s.school_id for s in schedules}))))
        timetables = load_timetables(session, schools)
    fired = []
    for schedule in schedules:
        try:
            occurrence = due_occurrence(schedule, timetables[schedule.school_id], now)
        except ValueError as exc:  # a timetable or time stored badly by hand: skip this one, keep the others
            log.warning("schedule %d skipped: %s", schedule.id, exc)
            continue
        if occurrence is None:
            continue
        with sessions.begin() as session:
            firing = _fire(session, schedule, occurrence, now)
        if firing is not None:
            log.info("schedule %d (%s at %s, school %s): %s", schedule.id, schedule.action, schedule.at_time,
                     schedule.school_id, firing.result)
            fired.append(firing)
    return fired


class ScheduleRunner(PeriodicTask):
    """Every few seconds: fire the schedules whose local time has come."""

    name = "command schedules"

    def __init__(self, engine: Engine, *, interval_s: float = 15.0,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        super().__init__(interval_s)
        self._engine = engine
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def run_once(self) -> list[Firing]:
        """One round."""
        return run_schedules(self._engine, self._clock())
