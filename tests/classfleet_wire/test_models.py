"""Payload models of contract v1 and the shared decoder (DESIGN §4): every model, every rejection reason."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest
from pydantic import ValidationError

from classfleet_wire import (
    MAX_PAYLOAD_BYTES,
    SCHEMA_VERSION,
    Command,
    CommandAck,
    DiskUsage,
    Event,
    Heartbeat,
    Inventory,
    Message,
    MessageKind,
    Status,
    WireError,
    build_topic,
    decode,
    encode,
)
from classfleet_wire.models import MAX_INT, MAX_TIMESTAMP, MODEL_BY_KIND

SCHOOL, DEVICE = "school-a", "pc-01"
T0 = 1_700_000_000.0
CMD_ID = "3f2b8c1e-9d4a-4e1b-8a57-0c6d2e9f1a42"
DROP = object()  # marks a field to delete from a valid payload

VALID: dict[MessageKind, dict[str, Any]] = {
    MessageKind.STATUS: {
        "v": 1, "state": "online", "session": 3, "ts": T0, "agent": "1.2.3", "profile": "pc",
    },
    MessageKind.HEARTBEAT: {
        "v": 1, "session": 3, "seq": 7, "ts": T0, "replayed": False, "uptime_s": 3600.5, "cpu_pct": 12.5,
        "mem_pct": 48.0, "disk": [{"mount": "C:\\", "total_bytes": 256_000_000_000, "used_pct": 71.2}],
        "temp_c": 55.0,
    },
    MessageKind.INVENTORY: {
        "v": 1, "session": 3, "seq": 8, "ts": T0, "replayed": False, "hash": "sha256-0123456789abcdef",
        "hardware": {"hostname": "lab1-pc01", "cpu_count": 8, "ram_bytes": 17179869184},
        "software": [{"name": "LibreOffice", "version": "7.6"}, {"name": "Firefox", "version": "128.0"}],
    },
    MessageKind.EVENT: {
        "v": 1, "session": 3, "seq": 9, "ts": T0, "replayed": True, "code": "disk.low", "severity": "warning",
        "state": "raised", "detail": {"mount": "C:\\", "used_pct": 93.1},
    },
    MessageKind.CMD: {
        "v": 1, "id": CMD_ID, "action": "shutdown", "args": {"delay_s": 60},
        "not_before": T0, "expires": T0 + 600,
    },
    MessageKind.CMD_ACK: {
        "v": 1, "id": CMD_ID, "state": "done", "ts": T0, "detail": "ok", "session": 3, "seq": 10,
    },
}

# The Last Will the broker publishes for a vanished agent.
LAST_WILL = {"v": 1, "state": "offline", "session": 3}

MINIMAL: dict[MessageKind, dict[str, Any]] = {
    MessageKind.STATUS: LAST_WILL,
    MessageKind.HEARTBEAT: {
        "v": 1, "session": 0, "seq": 0, "ts": 0, "uptime_s": 0, "cpu_pct": 0, "mem_pct": 0,
    },
    MessageKind.INVENTORY: {"v": 1, "session": 0, "seq": 0, "ts": 0, "hash": "abcdefgh"},
    MessageKind.EVENT: {
        "v": 1, "session": 0, "seq": 0, "ts": 0, "code": "a.b", "severity": "info", "state": "cleared",
    },
    MessageKind.CMD: {"v": 1, "id": "abcdefgh", "action": "reboot", "expires": 1},
    MessageKind.CMD_ACK: {"v": 1, "id": "abcdefgh", "state": "accepted", "ts": 0},
}

KINDS = list(MessageKind)


def topic(kind: MessageKind, school: str = SCHOOL, device: str = DEVICE) -> str:
    return build_topic(school, device, kind)


def dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def valid(kind: MessageKind, **changes: Any) -> dict[str, Any]:
    """A copy of the kind's valid payload with fields changed (``DROP`` deletes one)."""
    data = copy.deepcopy(VALID[kind])
    for key, value in changes.items():
        if value is DROP:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def padded(data: dict[str, Any], size: int) -> bytes:
    """``data`` plus an ignored ``pad`` field, serialised to exactly ``size`` bytes."""
    base = len(dumps({**data, "pad": ""}))
    raw = dumps({**data, "pad": "x" * (size - base)})
    assert len(raw) == size
    return raw


def rejected(kind: MessageKind, raw: bytes, **where: str) -> WireError:
    with pytest.raises(WireError) as info:
        decode(topic(kind, **where), raw)
    return info.value


def reason(kind: MessageKind, raw: bytes) -> str:
    return rejected(kind, raw).reason


# ---------------------------------------------------------------------------------------------- valid


@pytest.mark.parametrize("kind", KINDS)
def test_valid_payload_decodes_into_its_model(kind: MessageKind) -> None:
    msg = decode(topic(kind), dumps(VALID[kind]))
    assert isinstance(msg, Message)
    assert (msg.school, msg.device, msg.kind) == (SCHOOL, DEVICE, kind)
    assert type(msg.payload) is MODEL_BY_KIND[kind]
    assert msg.payload.v == SCHEMA_VERSION
    # Every field survives, and nothing is invented (ints compare equal to the floats they became).
    assert msg.payload.model_dump(mode="json", exclude_none=True) == VALID[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_minimal_payload_decodes_with_defaults(kind: MessageKind) -> None:
    payload = decode(topic(kind), dumps(MINIMAL[kind])).payload
    assert payload.school is None and payload.device is None
    if isinstance(payload, Heartbeat | Inventory | Event):
        assert payload.replayed is False
    if isinstance(payload, Heartbeat):
        assert payload.disk == [] and payload.temp_c is None
    if isinstance(payload, Inventory):
        assert payload.hardware == {} and payload.software == []
    if isinstance(payload, Event):
        assert payload.detail == {}
    if isinstance(payload, Command):
        assert payload.args == {} and payload.not_before is None
    if isinstance(payload, CommandAck):
        assert payload.detail is None and payload.session is None and payload.seq is None


def test_field_values_of_each_model() -> None:
    status = decode(topic(MessageKind.STATUS), dumps(VALID[MessageKind.STATUS])).payload
    assert isinstance(status, Status)
    assert (status.state, status.session, status.ts, status.agent, status.profile) == (
        "online", 3, T0, "1.2.3", "pc")

    hb = decode(topic(MessageKind.HEARTBEAT), dumps(VALID[MessageKind.HEARTBEAT])).payload
    assert isinstance(hb, Heartbeat)
    assert (hb.session, hb.seq, hb.cpu_pct, hb.mem_pct, hb.temp_c) == (3, 7, 12.5, 48.0, 55.0)
    assert hb.disk == [DiskUsage(mount="C:\\", total_bytes=256_000_000_000, used_pct=71.2)]

    inv = decode(topic(MessageKind.INVENTORY), dumps(VALID[MessageKind.INVENTORY])).payload
    assert isinstance(inv, Inventory)
    assert inv.hash == "sha256-0123456789abcdef" and inv.hardware["cpu_count"] == 8 and len(inv.software) == 2

    ev = decode(topic(MessageKind.EVENT), dumps(VALID[MessageKind.EVENT])).payload
    assert isinstance(ev, Event)
    assert (ev.code, ev.severity, ev.state, ev.replayed) == ("disk.low", "warning", "raised", True)

    cmd = decode(topic(MessageKind.CMD), dumps(VALID[MessageKind.CMD])).payload
    assert isinstance(cmd, Command)
    assert (cmd.id, cmd.action, cmd.args, cmd.not_before, cmd.expires) == (
        CMD_ID, "shutdown", {"delay_s": 60}, T0, T0 + 600)

    ack = decode(topic(MessageKind.CMD_ACK), dumps(VALID[MessageKind.CMD_ACK])).payload
    assert isinstance(ack, CommandAck)
    assert (ack.id, ack.state, ack.detail, ack.session, ack.seq) == (CMD_ID, "done", "ok", 3, 10)


def test_offline_last_will_is_a_valid_status() -> None:
    msg = decode(topic(MessageKind.STATUS), dumps(LAST_WILL))
    assert isinstance(msg.payload, Status)
    assert msg.payload.state == "offline" and msg.payload.session == 3
    assert msg.payload.ts is None and msg.payload.agent is None and msg.payload.profile is None
    # What the agent sets as its Will serialises to exactly the compact form of DESIGN §4.
    assert json.loads(Status(state="offline", session=3).to_json()) == LAST_WILL


@pytest.mark.parametrize("missing", ["ts", "agent", "profile"])
def test_online_status_needs_ts_agent_and_profile(missing: str) -> None:
    raw = dumps(valid(MessageKind.STATUS, **{missing: DROP}))
    error = rejected(MessageKind.STATUS, raw)
    assert error.reason == "schema"
    assert "online status needs" in error.detail


@pytest.mark.parametrize("profile", ["pc", "laptop", "smart_board", "other"])
def test_every_profile_is_accepted(profile: str) -> None:
    payload = decode(topic(MessageKind.STATUS), dumps(valid(MessageKind.STATUS, profile=profile))).payload
    assert isinstance(payload, Status) and payload.profile == profile


@pytest.mark.parametrize("action", ["reboot", "shutdown", "message", "collect_inventory", "run_check",
                                    "restart_agent"])
def test_every_allow_listed_action_is_accepted(action: str) -> None:
    payload = decode(topic(MessageKind.CMD), dumps(valid(MessageKind.CMD, action=action))).payload
    assert isinstance(payload, Command) and payload.action == action


@pytest.mark.parametrize("state", ["accepted", "done", "failed", "rejected"])
def test_every_ack_state_is_accepted(state: str) -> None:
    payload = decode(topic(MessageKind.CMD_ACK), dumps(valid(MessageKind.CMD_ACK, state=state))).payload
    assert isinstance(payload, CommandAck) and payload.state == state


BOUNDARY_ACCEPTED = [
    (MessageKind.STATUS, {"agent": "x" * 32}),
    (MessageKind.STATUS, {"session": MAX_INT, "ts": MAX_TIMESTAMP}),
    (MessageKind.HEARTBEAT, {"cpu_pct": 0, "mem_pct": 100, "temp_c": 150, "uptime_s": 0}),
    (MessageKind.HEARTBEAT, {"temp_c": -50, "seq": MAX_INT, "session": 0}),
    (MessageKind.HEARTBEAT, {"disk": [{"mount": "/" * 256, "total_bytes": 0, "used_pct": 100}] * 64}),
    (MessageKind.HEARTBEAT, {"temp_c": None}),
    (MessageKind.INVENTORY, {"hash": "h" * 8}),
    (MessageKind.INVENTORY, {"hash": "h" * 128, "software": [{}] * 5000}),
    (MessageKind.EVENT, {"code": "a." + "b" * 62}),
    (MessageKind.EVENT, {"code": "school.upstream_down.v2", "severity": "critical", "state": "cleared"}),
    (MessageKind.CMD, {"id": "A" * 8, "not_before": DROP}),
    (MessageKind.CMD, {"id": "0-" * 32, "not_before": T0, "expires": T0 + 0.001}),
    (MessageKind.CMD_ACK, {"detail": "x" * 4096}),
    (MessageKind.CMD_ACK, {"detail": {"exit_code": 0, "output": ["a", "b"]}}),
    (MessageKind.CMD_ACK, {"detail": None, "session": DROP, "seq": DROP}),
]


@pytest.mark.parametrize(("kind", "changes"), BOUNDARY_ACCEPTED)
def test_values_at_the_limits_are_accepted(kind: MessageKind, changes: dict[str, Any]) -> None:
    data = valid(kind, **changes)
    payload = decode(topic(kind), dumps(data)).payload
    for key, value in changes.items():
        if value is not DROP and key != "disk":
            assert getattr(payload, key) == value


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_fields_are_ignored_for_forward_compatibility(kind: MessageKind) -> None:
    data = valid(kind, added_in_v1_1={"x": 1}, note="newer agent")
    payload = decode(topic(kind), dumps(data)).payload
    dumped = payload.model_dump()
    assert "added_in_v1_1" not in dumped and "note" not in dumped
    assert payload.model_dump(mode="json", exclude_none=True) == VALID[kind]


# --------------------------------------------------------------------------------------------- schema

INVALID: list[tuple[MessageKind, dict[str, Any]]] = [
    # status
    (MessageKind.STATUS, {"state": DROP}),
    (MessageKind.STATUS, {"session": DROP}),
    (MessageKind.STATUS, {"state": "sleeping"}),
    (MessageKind.STATUS, {"state": "ONLINE"}),
    (MessageKind.STATUS, {"session": -1}),
    (MessageKind.STATUS, {"session": 1.5}),
    (MessageKind.STATUS, {"session": "three"}),
    (MessageKind.STATUS, {"session": MAX_INT + 1}),
    (MessageKind.STATUS, {"ts": -1}),
    (MessageKind.STATUS, {"ts": MAX_TIMESTAMP + 1}),
    (MessageKind.STATUS, {"agent": "x" * 33}),
    (MessageKind.STATUS, {"agent": 123}),
    (MessageKind.STATUS, {"profile": "tablet"}),
    # heartbeat
    *[(MessageKind.HEARTBEAT, {f: DROP}) for f in ("session", "seq", "ts", "uptime_s", "cpu_pct", "mem_pct")],
    (MessageKind.HEARTBEAT, {"seq": -1}),
    (MessageKind.HEARTBEAT, {"seq": MAX_INT + 1}),
    (MessageKind.HEARTBEAT, {"ts": 1e300}),
    (MessageKind.HEARTBEAT, {"uptime_s": -0.1}),
    (MessageKind.HEARTBEAT, {"cpu_pct": 100.1}),
    (MessageKind.HEARTBEAT, {"cpu_pct": -0.1}),
    (MessageKind.HEARTBEAT, {"cpu_pct": "high"}),
    (MessageKind.HEARTBEAT, {"cpu_pct": None}),
    (MessageKind.HEARTBEAT, {"mem_pct": 101}),
    (MessageKind.HEARTBEAT, {"temp_c": 150.5}),
    (MessageKind.HEARTBEAT, {"temp_c": -51}),
    (MessageKind.HEARTBEAT, {"replayed": "maybe"}),
    (MessageKind.HEARTBEAT, {"replayed": []}),
    (MessageKind.HEARTBEAT, {"disk": "C:"}),
    (MessageKind.HEARTBEAT, {"disk": {"mount": "/"}}),
    (MessageKind.HEARTBEAT, {"disk": ["C:"]}),  # a nested non-object is a schema error, not invalid JSON
    (MessageKind.HEARTBEAT, {"disk": [{"mount": "/", "total_bytes": 1}]}),
    (MessageKind.HEARTBEAT, {"disk": [{"mount": "/", "total_bytes": -1, "used_pct": 1}]}),
    (MessageKind.HEARTBEAT, {"disk": [{"mount": "/", "total_bytes": 1, "used_pct": 100.5}]}),
    (MessageKind.HEARTBEAT, {"disk": [{"mount": "/" * 257, "total_bytes": 1, "used_pct": 1}]}),
    (MessageKind.HEARTBEAT, {"disk": [{"mount": "/", "total_bytes": 1, "used_pct": 1}] * 65}),
    # inventory
    (MessageKind.INVENTORY, {"hash": DROP}),
    (MessageKind.INVENTORY, {"seq": DROP}),
    (MessageKind.INVENTORY, {"hash": "h" * 7}),
    (MessageKind.INVENTORY, {"hash": "h" * 129}),
    (MessageKind.INVENTORY, {"hash": 12345678}),
    (MessageKind.INVENTORY, {"hardware": ["cpu"]}),
    (MessageKind.INVENTORY, {"software": {"name": "x"}}),
    (MessageKind.INVENTORY, {"software": ["LibreOffice"]}),
    (MessageKind.INVENTORY, {"software": [{}] * 5001}),
    # event
    *[(MessageKind.EVENT, {f: DROP}) for f in ("session", "seq", "ts", "code", "severity", "state")],
    (MessageKind.EVENT, {"code": "disklow"}),
    (MessageKind.EVENT, {"code": "Disk.Low"}),
    (MessageKind.EVENT, {"code": "disk-low.x"}),
    (MessageKind.EVENT, {"code": "disk."}),
    (MessageKind.EVENT, {"code": ".low"}),
    (MessageKind.EVENT, {"code": "a." + "b" * 63}),
    (MessageKind.EVENT, {"severity": "fatal"}),
    (MessageKind.EVENT, {"state": "open"}),
    (MessageKind.EVENT, {"detail": "disk almost full"}),
    (MessageKind.EVENT, {"detail": [1, 2]}),
    # cmd
    *[(MessageKind.CMD, {f: DROP}) for f in ("id", "action", "expires")],
    (MessageKind.CMD, {"id": "short"}),
    (MessageKind.CMD, {"id": "x" * 65}),
    (MessageKind.CMD, {"id": "not a valid id!"}),
    (MessageKind.CMD, {"id": 12345678}),
    (MessageKind.CMD, {"action": "format_disk"}),
    (MessageKind.CMD, {"action": "Reboot"}),
    (MessageKind.CMD, {"args": ["now"]}),
    (MessageKind.CMD, {"not_before": -1}),
    (MessageKind.CMD, {"expires": "soon"}),
    (MessageKind.CMD, {"expires": -5}),
    (MessageKind.CMD, {"expires": None}),
    (MessageKind.CMD, {"not_before": T0 + 600, "expires": T0 + 600}),  # not_before == expires
    (MessageKind.CMD, {"not_before": T0 + 601, "expires": T0 + 600}),  # not_before > expires
    # cmd/ack
    *[(MessageKind.CMD_ACK, {f: DROP}) for f in ("id", "state", "ts")],
    (MessageKind.CMD_ACK, {"id": "short"}),
    (MessageKind.CMD_ACK, {"state": "pending"}),
    (MessageKind.CMD_ACK, {"state": "expired"}),
    (MessageKind.CMD_ACK, {"ts": -1}),
    (MessageKind.CMD_ACK, {"detail": "x" * 4097}),
    (MessageKind.CMD_ACK, {"detail": 123}),
    (MessageKind.CMD_ACK, {"detail": ["a"]}),
    (MessageKind.CMD_ACK, {"seq": -1}),
    (MessageKind.CMD_ACK, {"session": "x"}),
]


def _case_id(case: Any) -> str:
    if isinstance(case, MessageKind):
        return case.value
    return ",".join(f"{k}={'DROP' if v is DROP else repr(v)[:20]}" for k, v in case.items())


@pytest.mark.parametrize(("kind", "changes"), INVALID, ids=_case_id)
def test_invalid_payload_is_a_schema_error(kind: MessageKind, changes: dict[str, Any]) -> None:
    error = rejected(kind, dumps(valid(kind, **changes)))
    assert error.reason == "schema"
    assert str(error).startswith("schema: ")
    field = next(iter(changes))
    if field not in ("not_before", "expires") and not (kind is MessageKind.STATUS and field == "session"):
        # The detail names the offending field (for the dead-letter table).
        assert field in error.detail or "payload" in error.detail


@pytest.mark.parametrize("kind", KINDS)
def test_empty_object_is_a_schema_error(kind: MessageKind) -> None:
    error = rejected(kind, b"{}")
    assert error.reason == "schema"
    assert "more)" in error.detail or "Field required" in error.detail


@pytest.mark.parametrize("kind", KINDS)
def test_payload_of_another_kind_is_a_schema_error(kind: MessageKind) -> None:
    other = KINDS[(KINDS.index(kind) + 1) % len(KINDS)]
    assert reason(kind, dumps(VALID[other])) == "schema"


# Numbers the receiver could not store: pydantic's JSON parser accepts NaN/Infinity (not JSON), and
# 1e999 overflows to infinity; an out-of-range timestamp or a seq beyond 64 bits would make the
# controller's writer fail over and over instead of dead-lettering the message.
NON_FINITE = [b"NaN", b"Infinity", b"-Infinity", b"1e999"]


@pytest.mark.parametrize("token", NON_FINITE)
@pytest.mark.parametrize(
    ("kind", "field"),
    [(MessageKind.STATUS, "ts"), (MessageKind.HEARTBEAT, "ts"), (MessageKind.HEARTBEAT, "uptime_s"),
     (MessageKind.HEARTBEAT, "cpu_pct"), (MessageKind.CMD, "expires"), (MessageKind.CMD_ACK, "ts")],
)
def test_non_finite_numbers_are_rejected(token: bytes, kind: MessageKind, field: str) -> None:
    raw = dumps(valid(kind, **{field: 0})).replace(f'"{field}":0'.encode(), f'"{field}":'.encode() + token)
    assert token in raw
    assert reason(kind, raw) == "schema"


@pytest.mark.parametrize("token", NON_FINITE)
@pytest.mark.parametrize(
    ("kind", "field"),
    [(MessageKind.EVENT, "detail"), (MessageKind.INVENTORY, "hardware"), (MessageKind.CMD, "args"),
     (MessageKind.CMD_ACK, "detail")],
)
def test_non_finite_numbers_inside_free_form_objects_are_rejected(token: bytes, kind: MessageKind,
                                                                  field: str) -> None:
    raw = dumps(valid(kind, **{field: {"x": [1, {"y": 0}]}})).replace(b'"y":0', b'"y":' + token)
    error = rejected(kind, raw)
    assert error.reason == "schema"
    assert error.detail == f"{field}.x.1.y: number is not finite"


def test_non_finite_number_in_nested_model_names_its_path() -> None:
    raw = dumps(VALID[MessageKind.HEARTBEAT]).replace(b'"used_pct":71.2', b'"used_pct":NaN')
    error = rejected(MessageKind.HEARTBEAT, raw)
    assert error.reason == "schema" and "disk.0.used_pct" in error.detail


# -------------------------------------------------------------------------------------------- version


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("version", [2, 0, -1, 1.5, "1", "v1", None, [1], {"major": 1}])
def test_other_versions_are_unsupported(kind: MessageKind, version: Any) -> None:
    error = rejected(kind, dumps(valid(kind, v=version)))
    assert error.reason == "unsupported_version"
    assert error.detail == "expected v=1"


@pytest.mark.parametrize("kind", KINDS)
def test_version_wins_over_schema_errors(kind: MessageKind) -> None:
    # A v2 payload may look nothing like v1: it is unsupported, not malformed.
    assert reason(kind, b'{"v":2}') == "unsupported_version"
    assert reason(kind, b'{"v":2,"whatever":[1,2,3]}') == "unsupported_version"


@pytest.mark.parametrize("kind", KINDS)
def test_version_as_json_number_one_point_zero_is_v1(kind: MessageKind) -> None:
    raw = dumps(VALID[kind]).replace(b'"v":1,', b'"v":1.0,')
    assert decode(topic(kind), raw).payload.v == 1


@pytest.mark.parametrize("kind", KINDS)
def test_missing_version_defaults_to_v1(kind: MessageKind) -> None:
    # Current behaviour: ``v`` has a default, so a payload without it is read as v1.
    payload = decode(topic(kind), dumps(valid(kind, v=DROP))).payload
    assert payload.v == SCHEMA_VERSION
    assert json.loads(payload.to_json())["v"] == 1  # and it is always written out


# ------------------------------------------------------------------------------------------- oversized


@pytest.mark.parametrize("kind", KINDS)
def test_payload_of_exactly_64_kib_is_accepted(kind: MessageKind) -> None:
    raw = padded(VALID[kind], MAX_PAYLOAD_BYTES)
    assert MAX_PAYLOAD_BYTES == 65536
    assert type(decode(topic(kind), raw).payload) is MODEL_BY_KIND[kind]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [MAX_PAYLOAD_BYTES + 1, 1024 * 1024])
def test_oversized_payload_is_rejected(kind: MessageKind, size: int) -> None:
    error = rejected(kind, padded(VALID[kind], size))
    assert error.reason == "oversized"
    assert error.detail == f"{size} bytes > {MAX_PAYLOAD_BYTES}"


@pytest.mark.parametrize("kind", KINDS)
def test_size_is_checked_before_content(kind: MessageKind) -> None:
    # 1 MiB that is neither UTF-8 nor JSON: rejected for its size, without being parsed.
    assert reason(kind, b"\xff" * (1024 * 1024)) == "oversized"
    assert reason(kind, b"[" * (MAX_PAYLOAD_BYTES + 1)) == "oversized"


def test_size_counts_bytes_not_characters() -> None:
    data = VALID[MessageKind.EVENT]
    base = len(dumps({**data, "pad": ""}))
    chars = (MAX_PAYLOAD_BYTES - base) // 3 + 1  # "ệ" is 3 bytes in UTF-8
    raw = dumps({**data, "pad": "ệ" * chars})
    assert len(raw.decode()) <= MAX_PAYLOAD_BYTES < len(raw)
    assert reason(MessageKind.EVENT, raw) == "oversized"


# --------------------------------------------------------------------------------------------- identity


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "claim",
    [{"device": "pc-02"}, {"school": "school-b"}, {"school": "school-b", "device": "pc-02"},
     {"school": SCHOOL, "device": "pc-02"}, {"school": "school-b", "device": DEVICE}],
)
def test_payload_identity_different_from_topic_is_rejected(kind: MessageKind, claim: dict[str, str]) -> None:
    error = rejected(kind, dumps(valid(kind, **claim)))
    assert error.reason == "identity_mismatch"
    field = "school" if claim.get("school", SCHOOL) != SCHOOL else "device"
    expected = SCHOOL if field == "school" else DEVICE
    assert error.detail == f"payload {field} {claim[field]!r} != topic {expected!r}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("claim", [{"device": DEVICE}, {"school": SCHOOL},
                                   {"school": SCHOOL, "device": DEVICE}, {"school": None, "device": None}])
def test_payload_identity_matching_the_topic_is_accepted(kind: MessageKind, claim: dict[str, Any]) -> None:
    msg = decode(topic(kind), dumps(valid(kind, **claim)))
    assert (msg.school, msg.device) == (SCHOOL, DEVICE)
    for field, value in claim.items():
        assert getattr(msg.payload, field) == value


@pytest.mark.parametrize("kind", KINDS)
def test_identity_always_comes_from_the_topic(kind: MessageKind) -> None:
    msg = decode(topic(kind, school="other-school", device="board-7"), dumps(VALID[kind]))
    assert (msg.school, msg.device) == ("other-school", "board-7")


@pytest.mark.parametrize("claim", [{"device": "PC-01"}, {"school": "School-A"}, {"device": "x" * 65},
                                   {"device": ""}, {"school": 42}])
def test_malformed_payload_identity_is_a_schema_error(claim: dict[str, Any]) -> None:
    assert reason(MessageKind.HEARTBEAT, dumps(valid(MessageKind.HEARTBEAT, **claim))) == "schema"


def test_duplicate_key_last_one_counts() -> None:
    body = dumps(VALID[MessageKind.HEARTBEAT])[:-1]
    assert reason(MessageKind.HEARTBEAT, body + f',"device":"{DEVICE}","device":"pc-02"}}'.encode()) \
        == "identity_mismatch"
    assert decode(topic(MessageKind.HEARTBEAT), body + f',"device":"pc-02","device":"{DEVICE}"}}'.encode())


# ---------------------------------------------------------------------------------------- utf-8 / json

BAD_UTF8 = [
    b'{"v":1,"note":"\xff\xfe"}',
    b'{"v":1,"note":"\xc3"}',  # truncated two-byte sequence
    b'{"v":1,"note":"\xc0\xaf"}',  # overlong encoding of "/"
    b'{"v":1,"note":"\xed\xa0\x80"}',  # an encoded surrogate
    b"\x80",
    b'{"v":1,"state":"online\xe2\x82"}',
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("raw", BAD_UTF8)
def test_invalid_utf8_is_rejected(kind: MessageKind, raw: bytes) -> None:
    error = rejected(kind, raw)
    assert error.reason == "invalid_utf8"
    assert error.detail.startswith("byte ")


@pytest.mark.parametrize("kind", KINDS)
def test_invalid_utf8_inside_an_otherwise_valid_payload(kind: MessageKind) -> None:
    raw = dumps(valid(kind, note="__"))
    assert reason(kind, raw.replace(b"__", b"\xff\xff")) == "invalid_utf8"


def test_valid_multibyte_utf8_is_accepted() -> None:
    data = valid(MessageKind.EVENT, detail={"message": "Ổ đĩa sắp đầy — 93 %"})
    payload = decode(topic(MessageKind.EVENT), dumps(data)).payload
    assert isinstance(payload, Event) and payload.detail["message"] == "Ổ đĩa sắp đầy — 93 %"


NOT_JSON = [
    b"",
    b" ",
    b"hello",
    b"ON",  # what a Tasmota plug says
    b"{not json",
    b"{'v': 1}",
    b'{"v":1,}',
    b"\xef\xbb\xbf{}",  # a UTF-8 byte-order mark
    b"[" * 300 + b"]" * 300,  # nested deeper than the parser allows
]
NOT_AN_OBJECT = [b"[]", b"[1,2]", b"[{\"v\":1}]", b'"status"', b"42", b"1.5", b"true", b"null"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("raw", NOT_JSON + NOT_AN_OBJECT)
def test_not_a_json_object_is_invalid_json(kind: MessageKind, raw: bytes) -> None:
    error = rejected(kind, raw)
    assert error.reason == "invalid_json"
    assert error.detail


@pytest.mark.parametrize("kind", KINDS)
def test_a_json_array_says_it_is_not_an_object(kind: MessageKind) -> None:
    assert rejected(kind, dumps([VALID[kind]])).detail == "payload is not a JSON object"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cut", [1, 2, 10])
def test_truncated_json_is_invalid_json(kind: MessageKind, cut: int) -> None:
    raw = dumps(VALID[kind])[:-cut]
    assert reason(kind, raw) == "invalid_json"


# ---------------------------------------------------------------------------------------------- encode


@pytest.mark.parametrize("kind", KINDS)
def test_encode_round_trips_through_decode(kind: MessageKind) -> None:
    model = MODEL_BY_KIND[kind].model_validate(VALID[kind])
    raw = encode(model)
    assert raw == model.to_json()
    assert isinstance(raw, bytes)
    assert decode(topic(kind), raw).payload == model


@pytest.mark.parametrize("kind", KINDS)
def test_to_json_omits_unset_identity_fields(kind: MessageKind) -> None:
    model = MODEL_BY_KIND[kind].model_validate(VALID[kind])
    data = json.loads(model.to_json())
    assert "school" not in data and "device" not in data
    assert data["v"] == 1
    with_identity = model.model_copy(update={"school": SCHOOL, "device": DEVICE})
    data = json.loads(with_identity.to_json())
    assert (data["school"], data["device"]) == (SCHOOL, DEVICE)
    assert decode(topic(kind), with_identity.to_json()).payload == with_identity


def test_to_json_omits_every_none_field() -> None:
    data = json.loads(CommandAck(id=CMD_ID, state="accepted", ts=T0).to_json())
    assert data == {"v": 1, "id": CMD_ID, "state": "accepted", "ts": T0}
    hb = Heartbeat(session=1, seq=1, ts=T0, uptime_s=1, cpu_pct=1, mem_pct=1)
    assert "null" not in hb.to_json().decode() and "temp_c" not in json.loads(hb.to_json())


def test_encode_refuses_an_oversized_payload() -> None:
    inv = Inventory(session=1, seq=1, ts=T0, hash="abcdefgh", software=[{"name": "x" * 100}] * 1000)
    assert len(inv.to_json()) > MAX_PAYLOAD_BYTES  # the model itself is valid
    with pytest.raises(WireError) as info:
        encode(inv)
    assert info.value.reason == "oversized"
    assert info.value.detail.endswith(f"> {MAX_PAYLOAD_BYTES}")


def test_encode_accepts_a_payload_of_exactly_64_kib() -> None:
    base = len(CommandAck(id=CMD_ID, state="done", ts=T0, detail={"out": ""}).to_json())
    ack = CommandAck(id=CMD_ID, state="done", ts=T0, detail={"out": "x" * (MAX_PAYLOAD_BYTES - base)})
    assert len(encode(ack)) == MAX_PAYLOAD_BYTES
    big = CommandAck(id=CMD_ID, state="done", ts=T0, detail={"out": "x" * (MAX_PAYLOAD_BYTES - base + 1)})
    with pytest.raises(WireError, match="oversized"):
        encode(big)


def test_models_are_frozen() -> None:
    status = Status(state="offline", session=1)
    with pytest.raises(ValidationError):
        status.session = 2  # type: ignore[misc]


def test_wire_error_carries_reason_and_detail() -> None:
    error = WireError("schema", "seq: too small")
    assert isinstance(error, ValueError)
    assert (error.reason, error.detail, str(error)) == ("schema", "seq: too small", "schema: seq: too small")


# --------------------------------------------------------------------------------------------- command


def test_command_is_expired() -> None:
    cmd = Command(id=CMD_ID, action="reboot", expires=T0)
    assert cmd.is_expired(now=T0 - 1) is False
    assert cmd.is_expired(now=T0) is True  # expiry is inclusive
    assert cmd.is_expired(now=T0 + 1) is True


def test_command_is_expired_defaults_to_the_clock() -> None:
    assert Command(id=CMD_ID, action="reboot", expires=time.time() + 3600).is_expired() is False
    assert Command(id=CMD_ID, action="reboot", expires=time.time() - 1).is_expired() is True


@pytest.mark.parametrize("not_before", [T0 + 600, T0 + 601, T0 + 10_000])
def test_command_window_must_open_before_it_closes(not_before: float) -> None:
    with pytest.raises(ValidationError, match="not_before must be earlier than expires"):
        Command(id=CMD_ID, action="shutdown", not_before=not_before, expires=T0 + 600)
    error = rejected(MessageKind.CMD, dumps(valid(MessageKind.CMD, not_before=not_before, expires=T0 + 600)))
    assert error.reason == "schema" and "not_before must be earlier than expires" in error.detail


def test_scheduled_command_keeps_its_window() -> None:
    cmd = Command(id=CMD_ID, action="shutdown", not_before=T0, expires=T0 + 600, args={"delay_s": 60})
    decoded = decode(topic(MessageKind.CMD), encode(cmd)).payload
    assert isinstance(decoded, Command)
    assert (decoded.not_before, decoded.expires) == (T0, T0 + 600)
    assert decoded.is_expired(now=T0) is False and decoded.is_expired(now=T0 + 600) is True


def test_command_requires_an_expiry() -> None:
    with pytest.raises(ValidationError, match="expires"):
        Command(id=CMD_ID, action="reboot")  # type: ignore[call-arg]
