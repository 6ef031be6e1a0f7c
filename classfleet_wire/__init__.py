"""classfleet wire contract v1: topics, payload models and the fault-code registry.

Imported by both the agent and the controller; it does no I/O and depends only on pydantic.
"""

from .faults import REGISTRY, FaultCode, lookup
from .models import (
    MAX_PAYLOAD_BYTES,
    SCHEMA_VERSION,
    Command,
    CommandAck,
    DiskUsage,
    Event,
    Heartbeat,
    Inventory,
    Message,
    Payload,
    Status,
    WireError,
    decode,
    encode,
)
from .topics import MessageKind, Topic, TopicError, build_topic, is_valid_id, parse_topic, subscription

__all__ = [
    "MAX_PAYLOAD_BYTES", "REGISTRY", "SCHEMA_VERSION", "Command", "CommandAck", "DiskUsage", "Event",
    "FaultCode", "Heartbeat", "Inventory", "Message", "MessageKind", "Payload", "Status", "Topic",
    "TopicError", "WireError", "build_topic", "decode", "encode", "is_valid_id", "lookup", "parse_topic",
    "subscription",
]
