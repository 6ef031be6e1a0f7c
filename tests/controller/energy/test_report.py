"""The after-hours energy report over a simulated week: hours and kWh come out exactly (see week.py)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from controller.energy.report import Poll, build_energy, polled_usage
from controller.store import db
from tests.controller.energy.week import (
    EXPECTED,
    EXPECTED_ROOMS,
    EXPECTED_SCHOOL,
    MONDAY,
    NOMINAL_W,
    OFFLINE_AFTER_S,
    POLL_GAP_S,
    WEEK_END,
    seed_week,
)


def test_a_week_with_known_intervals_across_boundaries_and_a_holiday(db_url):
    engine = db.make_engine(db_url)
    seed_week(engine)
    with Session(engine) as session:
        report = build_energy(session, MONDAY, WEEK_END, nominal_w=NOMINAL_W, offline_after_s=OFFLINE_AFTER_S,
                              poll_gap_s=POLL_GAP_S)
    got = {r.device: (r.room, r.hours, r.kwh, r.method) for r in report.rows}
    assert got == EXPECTED
    (school,) = report.schools
    assert (school.school, school.name) == ("s1", "THCS Lê Lợi")
    assert (school.devices, school.hours, school.kwh) == EXPECTED_SCHOOL
    assert {r.room: (r.devices, r.hours, r.kwh) for r in report.rooms} == EXPECTED_ROOMS
    # Rows come per school and room, unassigned last.
    assert [r.device for r in report.rows] == ["pc-1", "ac-1", "proj-1", "ac-2", "ac-3"]
    engine.dispose()


def test_the_period_clips_the_intervals(db_url):
    engine = db.make_engine(db_url)
    seed_week(engine)
    # Monday 17:30 to Tuesday 07:00 only: pc-1 17:30-18:00 (0.5 h), ac-1 17:30-19:03 (1.55 h × 1.2 kW = 1.86 kWh),
    # Tuesday's 06:30-07:00 of pc-1 (0.5 h): 1 h in all for pc-1 (0.12 kWh).
    start, end = MONDAY + dt.timedelta(hours=17, minutes=30), MONDAY + dt.timedelta(days=1, hours=7)
    with Session(engine) as session:
        report = build_energy(session, start, end, nominal_w=NOMINAL_W, offline_after_s=OFFLINE_AFTER_S,
                              poll_gap_s=POLL_GAP_S)
    assert {r.device: (r.hours, r.kwh, r.method) for r in report.rows} == {
        "pc-1": (1.0, 0.12, "nominal"), "ac-1": (1.55, 1.86, "meter")}
    engine.dispose()


def test_polled_usage_falls_back_when_the_counter_cannot_be_used():
    after = [(0.0, 10_000.0)]
    # Counter reset between the first two polls: measured power instead; a gap longer than the hold: the state
    # holds only gap_s; the last poll has no reading after it: measured.
    polls = [Poll(0, True, 2000.0, 50.0), Poll(600, True, 2000.0, 0.2), Poll(1200, True, 2000.0, 0.5),
             Poll(5000, False, None, None)]
    usage = polled_usage(polls, after, nominal_w=1000.0, gap_s=900.0)
    # 0-600 measured (2 kW × 600 s), 600-1200 meter (0.3 kWh), 1200-2100 measured (held 900 s).
    assert round(usage.seconds) == 2100
    assert round(usage.kwh, 6) == round(2.0 * 600 / 3600 + 0.3 + 2.0 * 900 / 3600, 6)
    assert usage.worst == 1  # measured
    # No power, no counter: nominal.
    usage = polled_usage([Poll(0, True, None, None), Poll(600, False, None, None)], after, 1000.0, 900.0)
    assert (usage.seconds, round(usage.kwh, 6), usage.worst) == (600, round(1000 * 600 / 3.6e6, 6), 2)
