"""Property-based tests of the payload validators: whatever arrives, decode answers with a model or a
WireError with a known reason, never anything else; valid heartbeats survive a round trip."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from classfleet_wire import Heartbeat, WireError, decode, encode

REASONS = {"bad_topic", "oversized", "invalid_utf8", "invalid_json", "unsupported_version", "schema",
           "identity_mismatch"}
KINDS = ["status", "heartbeat", "inventory", "event", "cmd", "cmd/ack"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(KINDS), raw=st.binary(max_size=300))
def test_any_bytes_give_a_model_or_a_known_reason(kind: str, raw: bytes) -> None:
    try:
        decode(f"classfleet/v1/s1/pc-1/{kind}", raw)
    except WireError as exc:
        assert exc.reason in REASONS


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(KINDS), body=st.dictionaries(
    st.sampled_from(["v", "session", "seq", "ts", "state", "code", "severity", "id", "action", "expires",
                     "uptime_s", "cpu_pct", "mem_pct", "disk", "detail", "hash", "device", "school"]),
    json_values, max_size=10))
def test_any_json_object_gives_a_model_or_a_known_reason(kind: str, body: dict) -> None:
    try:
        raw = json.dumps(body).encode()
    except ValueError:
        return
    try:
        decode(f"classfleet/v1/s1/pc-1/{kind}", raw)
    except WireError as exc:
        assert exc.reason in REASONS


@settings(max_examples=200, deadline=None)
@given(session=st.integers(0, 2**63 - 1), seq=st.integers(0, 2**63 - 1),
       cpu=st.floats(0, 100), mem=st.floats(0, 100), ts=st.floats(0, 4e9), uptime=st.floats(0, 1e9))
def test_valid_heartbeats_round_trip(session: int, seq: int, cpu: float, mem: float, ts: float, uptime: float) -> None:
    beat = Heartbeat(session=session, seq=seq, ts=ts, uptime_s=uptime, cpu_pct=cpu, mem_pct=mem)
    back = decode("classfleet/v1/s1/pc-1/heartbeat", encode(beat)).payload
    assert back == beat
