"""MQTT topic names of wire contract v1: ``classfleet/v1/{school}/{device}/{suffix}``.

The topic is the identity of a message: the school and device ids in it are the only ones
the controller trusts (a payload never overrides them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

TOPIC_ROOT = "classfleet/v1"
SHARED_GROUP = "classfleet"
ID_PATTERN = r"[a-z0-9_-]{1,64}"
_ID_RE = re.compile(rf"^{ID_PATTERN}$")


class MessageKind(StrEnum):
    """Topic suffixes of contract v1, each naming one payload model."""

    STATUS = "status"
    HEARTBEAT = "heartbeat"
    INVENTORY = "inventory"
    EVENT = "event"
    CMD = "cmd"
    CMD_ACK = "cmd/ack"


class TopicError(ValueError):
    """A topic that is not a valid contract-v1 topic."""


def is_valid_id(value: str) -> bool:
    """True for a school or device id the contract accepts (lower-case, 1..64 chars)."""
    return bool(_ID_RE.fullmatch(value))


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a valid id; raise ``TopicError`` naming ``what`` otherwise."""
    if not is_valid_id(value):
        raise TopicError(f"invalid {what} {value!r}: expected {ID_PATTERN}")
    return value


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed contract topic."""

    school: str
    device: str
    kind: MessageKind

    def __str__(self) -> str:
        return build_topic(self.school, self.device, self.kind)


def build_topic(school: str, device: str, kind: MessageKind | str) -> str:
    """Build the topic for one device's message kind, validating both ids."""
    check_id(school, "school id")
    check_id(device, "device id")
    return f"{TOPIC_ROOT}/{school}/{device}/{MessageKind(kind).value}"


@lru_cache(maxsize=65536)
def parse_topic(topic: str) -> Topic:
    """Parse a contract topic; raise ``TopicError`` with a reason when it is not one.

    Cached: a fleet repeats the same few topics per device (errors are not cached)."""
    prefix = TOPIC_ROOT + "/"
    if not topic.startswith(prefix):
        raise TopicError(f"topic {topic!r} is not under {TOPIC_ROOT}/")
    parts = topic[len(prefix) :].split("/")
    if len(parts) < 3:
        raise TopicError(f"topic {topic!r} lacks school/device/kind")
    school, device, suffix = parts[0], parts[1], "/".join(parts[2:])
    check_id(school, "school id")
    check_id(device, "device id")
    try:
        kind = MessageKind(suffix)
    except ValueError:
        raise TopicError(f"unknown message kind {suffix!r}") from None
    return Topic(school=school, device=device, kind=kind)


def subscription(shared: bool = False) -> str:
    """Wildcard the controller subscribes to; ``shared`` uses an MQTT 5 shared subscription."""
    base = f"{TOPIC_ROOT}/#"
    return f"$share/{SHARED_GROUP}/{base}" if shared else base
