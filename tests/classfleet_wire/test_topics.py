"""Topic names of contract v1: building, parsing, ids and subscriptions (DESIGN §4)."""

from __future__ import annotations

import pytest

from classfleet_wire import (
    MessageKind,
    Topic,
    TopicError,
    WireError,
    build_topic,
    decode,
    is_valid_id,
    parse_topic,
    subscription,
)
from classfleet_wire.models import MODEL_BY_KIND

ID64 = "a" * 64
ID65 = "a" * 65


def test_kinds_are_exactly_the_design_suffixes() -> None:
    assert {k.value for k in MessageKind} == {"status", "heartbeat", "inventory", "event", "cmd", "cmd/ack"}
    assert set(MODEL_BY_KIND) == set(MessageKind)
    assert all(model.kind is kind for kind, model in MODEL_BY_KIND.items())


@pytest.mark.parametrize("kind", list(MessageKind))
@pytest.mark.parametrize(
    ("school", "device"), [("school-a", "pc-01"), ("s", "d"), (ID64, "x_9-z"), ("0", ID64)]
)
def test_build_and_parse_round_trip(kind: MessageKind, school: str, device: str) -> None:
    topic = build_topic(school, device, kind)
    assert topic == f"classfleet/v1/{school}/{device}/{kind.value}"
    parsed = parse_topic(topic)
    assert parsed == Topic(school=school, device=device, kind=kind)
    assert parsed.kind is kind
    assert str(parsed) == topic


def test_cmd_and_cmd_ack_suffixes() -> None:
    assert build_topic("s1", "d1", MessageKind.CMD_ACK) == "classfleet/v1/s1/d1/cmd/ack"
    assert build_topic("s1", "d1", "cmd/ack") == "classfleet/v1/s1/d1/cmd/ack"  # a plain string works too
    assert parse_topic("classfleet/v1/s1/d1/cmd/ack").kind is MessageKind.CMD_ACK
    assert parse_topic("classfleet/v1/s1/d1/cmd").kind is MessageKind.CMD


def test_topic_is_frozen() -> None:
    topic = parse_topic("classfleet/v1/s1/d1/status")
    with pytest.raises(AttributeError):
        topic.school = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("school", "device"),
    [("School", "d1"), ("s1", "PC-01"), ("", "d1"), ("s1", ""), (ID65, "d1"), ("s1", ID65),
     ("s.1", "d1"), ("s1", "d 1"), ("s1", "d/1"), ("s1", "+"), ("#", "d1"), ("trường", "d1"), ("s1", "d1\n")],
)
def test_build_topic_rejects_invalid_ids(school: str, device: str) -> None:
    with pytest.raises(TopicError, match="invalid (school|device) id"):
        build_topic(school, device, MessageKind.STATUS)


def test_build_topic_rejects_unknown_kind() -> None:
    # MessageKind() raises a plain ValueError (TopicError is a ValueError too).
    with pytest.raises(ValueError, match="bogus"):
        build_topic("s1", "d1", "bogus")


BAD_TOPICS = [
    # wrong root
    "classfleet/v2/s1/d1/status",
    "Classfleet/v1/s1/d1/status",
    "other/v1/s1/d1/status",
    "/classfleet/v1/s1/d1/status",
    "classfleet/s1/d1/status",
    "v1/classfleet/s1/d1/status",
    # upper-case or otherwise invalid ids
    "classfleet/v1/School-A/d1/status",
    "classfleet/v1/s1/PC-01/status",
    "classfleet/v1/s.1/d1/status",
    "classfleet/v1/s1/d 1/status",
    "classfleet/v1/+/d1/status",
    "classfleet/v1/s1/#/status",
    "classfleet/v1//d1/status",
    "classfleet/v1/s1//status",
    # ids longer than 64
    f"classfleet/v1/{ID65}/d1/status",
    f"classfleet/v1/s1/{ID65}/heartbeat",
    # unknown suffix
    "classfleet/v1/s1/d1/statuses",
    "classfleet/v1/s1/d1/STATUS",
    "classfleet/v1/s1/d1/cmd/nack",
    "classfleet/v1/s1/d1/cmd/ack/extra",
    "classfleet/v1/s1/d1/status/",
    "classfleet/v1/s1/d1/ack",
    "classfleet/v1/s1/d1/",
    "classfleet/v1/s1/d1/#",
    # too few levels
    "classfleet/v1/s1/status",
    "classfleet/v1/s1",
    "classfleet/v1/",
    "classfleet/v1",
    "",
]


@pytest.mark.parametrize("topic", BAD_TOPICS)
def test_parse_topic_rejects_bad_topics(topic: str) -> None:
    with pytest.raises(TopicError):
        parse_topic(topic)


@pytest.mark.parametrize("topic", BAD_TOPICS)
def test_decode_reports_bad_topic(topic: str) -> None:
    raw = b'{"v":1,"state":"offline","session":1}'  # a valid status payload: only the topic is wrong
    with pytest.raises(WireError) as info:
        decode(topic, raw)
    assert info.value.reason == "bad_topic"
    assert info.value.detail


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("other/v1/s1/d1/status", "not under classfleet/v1/"),
        ("classfleet/v1/s1/status", "lacks school/device/kind"),
        ("classfleet/v1/S1/d1/status", "invalid school id"),
        ("classfleet/v1/s1/D1/status", "invalid device id"),
        ("classfleet/v1/s1/d1/nope", "unknown message kind 'nope'"),
    ],
)
def test_parse_topic_says_why(topic: str, message: str) -> None:
    with pytest.raises(TopicError, match=message):
        parse_topic(topic)


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("a", True), ("school-a", True), ("pc_01", True), ("0-9_a-z", True), ("-", True), (ID64, True),
        ("", False), (ID65, False), ("A", False), ("pc-01 ", False), (" pc", False), ("pc.01", False),
        ("pc/01", False), ("pc+", False), ("pc#", False), ("pc\n", False), ("đ", False), ("pc-01\x00", False),
    ],
)
def test_is_valid_id(value: str, valid: bool) -> None:
    assert is_valid_id(value) is valid


def test_subscription() -> None:
    assert subscription() == "classfleet/v1/#"
    assert subscription(shared=False) == "classfleet/v1/#"
    assert subscription(shared=True) == "$share/classfleet/classfleet/v1/#"
