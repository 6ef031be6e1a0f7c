"""Versioned payload models of wire contract v1 (DESIGN §4) and the one decoder both sides use.

Every payload is JSON of at most 64 KiB carrying ``"v": 1``. Agent-to-controller messages
carry ``session`` (a counter the agent bumps at every start) and ``seq`` (one counter per
device and session, across all topics) so that (device, session, seq) identifies a message:
redelivery is idempotent and the latest state is the one with the highest (session, seq).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .topics import ID_PATTERN, MessageKind, Topic, TopicError, parse_topic

SCHEMA_VERSION = 1
MAX_PAYLOAD_BYTES = 64 * 1024
FAULT_CODE_PATTERN = r"^[a-z0-9_]+(\.[a-z0-9_]+)+$"
# Bounds of what the receiving side can store: a signed 64-bit column, and the last second a
# ``datetime`` holds (9999-12-31T23:59:59Z). Beyond them a message would fail in the writer, not here.
MAX_INT = 2**63 - 1
MAX_TIMESTAMP = 253402300799.0

NonNegInt = Annotated[int, Field(ge=0, le=MAX_INT)]
Timestamp = Annotated[float, Field(ge=0, le=MAX_TIMESTAMP, description="seconds since the Unix epoch, UTC")]
Percent = Annotated[float, Field(ge=0, le=100)]
Profile = Literal["pc", "laptop", "smart_board", "other"]


class WireError(ValueError):
    """A message rejected at the edge; ``reason`` is a short, bounded label for metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _Payload(BaseModel):
    """Common base: strict about the version, tolerant of fields added by newer minor versions."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)
    kind: ClassVar[MessageKind]

    v: Literal[1] = SCHEMA_VERSION
    # Optional self-description: if present it must match the topic (the topic is the identity).
    school: str | None = Field(default=None, pattern=f"^{ID_PATTERN}$")
    device: str | None = Field(default=None, pattern=f"^{ID_PATTERN}$")

    def to_json(self) -> bytes:
        """Serialise for publishing (without unset optional identity fields)."""
        return self.model_dump_json(exclude_none=True).encode()


class _Sequenced(_Payload):
    """Agent messages that carry the (session, seq) identity and the spool's ``replayed`` flag."""

    session: NonNegInt
    seq: NonNegInt
    ts: Timestamp
    replayed: bool = False


class Status(_Payload):
    """Retained availability; the ``offline`` form is the Last Will set at connect."""

    kind: ClassVar[MessageKind] = MessageKind.STATUS
    state: Literal["online", "offline"]
    session: NonNegInt
    ts: Timestamp | None = None
    agent: str | None = Field(default=None, max_length=32)
    profile: Profile | None = None

    @model_validator(mode="after")
    def _online_needs_details(self) -> Status:
        if self.state == "online" and (self.ts is None or self.agent is None or self.profile is None):
            raise ValueError("an online status needs ts, agent and profile")
        return self


class DiskUsage(BaseModel):
    """One mounted file system."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)
    mount: str = Field(max_length=256)
    total_bytes: NonNegInt
    used_pct: Percent


class Heartbeat(_Sequenced):
    """Periodic liveness and load figures."""

    kind: ClassVar[MessageKind] = MessageKind.HEARTBEAT
    uptime_s: Annotated[float, Field(ge=0)]
    cpu_pct: Percent
    mem_pct: Percent
    disk: list[DiskUsage] = Field(default_factory=list, max_length=64)
    temp_c: float | None = Field(default=None, ge=-50, le=150)


class Inventory(_Sequenced):
    """Hardware and software inventory, sent at start and whenever ``hash`` changes."""

    kind: ClassVar[MessageKind] = MessageKind.INVENTORY
    hash: str = Field(min_length=8, max_length=128)
    hardware: dict[str, Any] = Field(default_factory=dict)
    software: list[dict[str, Any]] = Field(default_factory=list, max_length=5000)


class Event(_Sequenced):
    """A fault raised or cleared by the agent's local detectors."""

    kind: ClassVar[MessageKind] = MessageKind.EVENT
    code: str = Field(pattern=FAULT_CODE_PATTERN, max_length=64)
    severity: Literal["info", "warning", "critical"]
    state: Literal["raised", "cleared"]
    detail: dict[str, Any] = Field(default_factory=dict)


CommandAction = Literal[
    "reboot", "shutdown", "message", "collect_inventory", "run_check", "restart_agent"
]


class Command(_Payload):
    """A remote command: never retained, always expiring; the agent rejects unknown or expired ones."""

    kind: ClassVar[MessageKind] = MessageKind.CMD
    id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    action: CommandAction
    args: dict[str, Any] = Field(default_factory=dict)
    not_before: Timestamp | None = None
    expires: Timestamp

    @model_validator(mode="after")
    def _window(self) -> Command:
        if self.not_before is not None and self.not_before >= self.expires:
            raise ValueError("not_before must be earlier than expires")
        return self

    def is_expired(self, now: float | None = None) -> bool:
        """True once the command's expiry has passed."""
        return (time.time() if now is None else now) >= self.expires


class CommandAck(_Payload):
    """The agent's answer to a command, one per lifecycle step it reaches."""

    kind: ClassVar[MessageKind] = MessageKind.CMD_ACK
    id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    state: Literal["accepted", "done", "failed", "rejected"]
    ts: Timestamp
    detail: str | dict[str, Any] | None = None
    session: NonNegInt | None = None
    seq: NonNegInt | None = None

    @field_validator("detail")
    @classmethod
    def _short_detail(cls, value: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        if isinstance(value, str) and len(value) > 4096:
            raise ValueError("detail longer than 4096 characters")
        return value


Payload = Status | Heartbeat | Inventory | Event | Command | CommandAck

MODEL_BY_KIND: dict[MessageKind, type[_Payload]] = {
    m.kind: m for m in (Status, Heartbeat, Inventory, Event, Command, CommandAck)
}


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded message: the topic's identity and its validated payload (a plain dataclass: it is
    built once per message on the ingest hot path, after validation)."""

    school: str
    device: str
    kind: MessageKind
    payload: Payload


FREE_FORM_FIELDS: dict[MessageKind, tuple[str, ...]] = {
    MessageKind.INVENTORY: ("hardware", "software"),
    MessageKind.EVENT: ("detail",),
    MessageKind.CMD: ("args",),
    MessageKind.CMD_ACK: ("detail",),
}


def decode(topic: str, raw: bytes) -> Message:
    """Validate one MQTT message against the contract, or raise ``WireError`` with a reason.

    Reasons: ``bad_topic``, ``oversized``, ``invalid_utf8``, ``invalid_json``,
    ``unsupported_version``, ``schema``, ``identity_mismatch``.
    """
    try:
        parsed: Topic = parse_topic(topic)
    except TopicError as exc:
        raise WireError("bad_topic", str(exc)) from None
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise WireError("oversized", f"{len(raw)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError("invalid_utf8", f"byte {exc.start}: {exc.reason}") from None
    if b"\\u0000" in raw:
        # NUL is valid JSON but no database text column stores it: refuse it at the edge.
        raise WireError("schema", "NUL character (\\u0000) in a string")
    model = MODEL_BY_KIND[parsed.kind]
    try:
        payload = model.model_validate_json(raw)
    except ValidationError as exc:
        raise _classify(exc) from None
    # Typed floats refuse NaN/Infinity (allow_inf_nan=False); free-form objects are walked here,
    # since pydantic's JSON parser accepts those non-JSON tokens and PostgreSQL's jsonb does not.
    for name in FREE_FORM_FIELDS.get(parsed.kind, ()):
        where = _non_finite(getattr(payload, name), name)
        if where is not None:
            raise WireError("schema", f"{where}: number is not finite")
    for field, expected in (("school", parsed.school), ("device", parsed.device)):
        claimed = getattr(payload, field)
        if claimed is not None and claimed != expected:
            raise WireError("identity_mismatch", f"payload {field} {claimed!r} != topic {expected!r}")
    return Message(school=parsed.school, device=parsed.device, kind=parsed.kind, payload=payload)


def _classify(exc: ValidationError) -> WireError:
    """Turn pydantic's errors into one bounded reason plus a readable detail."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    if first["type"] in ("json_invalid", "json_type"):
        return WireError("invalid_json", first["msg"])
    if first["type"] == "model_type" and not first["loc"]:  # nested model_type is a schema error
        return WireError("invalid_json", "payload is not a JSON object")
    if any(e["loc"][:1] == ("v",) for e in errors):
        return WireError("unsupported_version", f"expected v={SCHEMA_VERSION}")
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return WireError("schema", f"{where}: {first['msg']}{more}")


def _non_finite(value: Any, path: str = "") -> str | None:
    """The path of the first NaN or infinite float in ``value`` (dicts and lists included), or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path or "payload")
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def encode(payload: _Payload) -> bytes:
    """Serialise a payload, refusing what the receiver would reject as oversized."""
    data = payload.to_json()
    if len(data) > MAX_PAYLOAD_BYTES:
        raise WireError("oversized", f"{len(data)} bytes > {MAX_PAYLOAD_BYTES}")
    return data
