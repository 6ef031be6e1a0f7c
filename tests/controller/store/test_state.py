"""The state merge is order-independent: any arrival order of the same messages ends in one state."""

from __future__ import annotations

import datetime as dt
import itertools
import random

from classfleet_wire import Heartbeat, Message, MessageKind, Status
from controller.store.state import StateRow, merge

T0 = dt.datetime(2026, 11, 2, 7, 0, tzinfo=dt.UTC)


def _hb(session: int, seq: int, replayed: bool = False, cpu: float = 10.0) -> Message:
    payload = Heartbeat(session=session, seq=seq, ts=T0.timestamp() + seq, replayed=replayed, uptime_s=1,
                        cpu_pct=cpu, mem_pct=20, disk=[])
    return Message(school="s", device="d", kind=MessageKind.HEARTBEAT, payload=payload)


def _status(state: str, session: int) -> Message:
    extra = {"ts": T0.timestamp(), "agent": "1.0", "profile": "pc"} if state == "online" else {}
    return Message(school="s", device="d", kind=MessageKind.STATUS,
                   payload=Status(state=state, session=session, **extra))  # type: ignore[arg-type]


def test_heartbeats_in_any_order_end_in_the_same_state():
    msgs = [(_hb(1, s, cpu=float(s)), T0 + dt.timedelta(seconds=s)) for s in range(1, 7)]
    results = set()
    for perm in itertools.permutations(msgs):
        row = merge(StateRow(device_id=1), list(perm))
        results.add((row.session, row.seq, row.cpu_pct, row.last_seen, row.hb_seq))
    assert results == {(1, 6, 6.0, T0 + dt.timedelta(seconds=6), 6)}


def test_new_session_wins_over_a_late_will_in_any_order():
    online2 = (_status("online", 2), T0 + dt.timedelta(seconds=10))
    will1 = (_status("offline", 1), T0 + dt.timedelta(seconds=12))
    hb2 = (_hb(2, 1), T0 + dt.timedelta(seconds=11))
    for perm in itertools.permutations([online2, will1, hb2]):
        row = merge(StateRow(device_id=1), list(perm))
        assert row.online is True and row.status_session == 2 and row.session == 2


def test_will_of_the_current_session_marks_offline():
    row = merge(StateRow(device_id=1), [(_status("online", 3), T0), (_hb(3, 1), T0),
                                        (_status("offline", 3), T0 + dt.timedelta(seconds=5))])
    assert row.online is False
    assert row.last_seen == T0  # the Will is not a sign of life


def test_replayed_messages_never_move_last_seen_or_key():
    rng = random.Random(4)
    live = [(_hb(1, 50), T0)]
    replayed = [(_hb(1, s, replayed=True), T0 + dt.timedelta(seconds=60 + s)) for s in range(1, 50)]
    items = live + replayed
    rng.shuffle(items)
    row = merge(StateRow(device_id=1), items)
    assert (row.session, row.seq, row.last_seen) == (1, 50, T0)


def test_replayed_heartbeat_from_newer_key_updates_figures_only():
    row = merge(StateRow(device_id=1), [(_hb(1, 5, cpu=1.0), T0),
                                        (_hb(1, 9, replayed=True, cpu=9.0), T0 + dt.timedelta(seconds=30))])
    assert row.cpu_pct == 9.0 and row.hb_seq == 9
    assert row.seq == 5 and row.last_seen == T0
