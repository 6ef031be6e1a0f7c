"""SQLAlchemy 2.0 models: the inventory (district → school → room → device), device state,
history, incidents, commands, audit log, dead letters and the equipment plan (DESIGN §3).

The same models run on SQLite and PostgreSQL; portable types only (JSON becomes JSONB on
PostgreSQL, timestamps are stored as UTC).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

ROOM_KINDS = ("smart_l1", "smart_l2", "computer_lab", "online_meeting", "office", "corridor", "other")
DEVICE_KINDS = (
    "pc", "laptop", "smart_board", "projector", "air_conditioner", "camera", "nvr", "switch",
    "access_point", "ups", "other",
)
# What an agent's profile says a device is (status messages and enrolment carry the profile).
PROFILE_TO_KIND = {"pc": "pc", "laptop": "laptop", "smart_board": "smart_board"}
# How a device is watched (``Device.watched_by``): the one vocabulary. A smart plug's is its MQTT dialect, one
# adapter each in ``controller.adapters`` (whose registry and the inventory import take them from here).
PLUG_WATCHERS = ("tasmota", "shelly")
WATCHED_BY = ("mqtt", "snmp", "onvif", "pjlink", *PLUG_WATCHERS, "manual")
LIFECYCLES = ("active", "in_repair", "retired")
HEALTH_STATES = ("ok", "degraded", "faulty", "offline", "unreachable_upstream", "unknown")
INCIDENT_STATES = ("open", "acknowledged", "resolved")
COMMAND_STATES = ("pending", "sent", "accepted", "done", "failed", "rejected", "expired")
DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"

# Stable constraint names so Alembic migrations are identical on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")
BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite has no time zone type)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base with stable constraint names."""

    metadata = MetaData(naming_convention=NAMING)


class District(Base):
    """A district office (Phòng GD&ĐT) overseeing schools."""

    __tablename__ = "districts"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    schools: Mapped[list[School]] = relationship(back_populates="district")


class School(Base):
    """A school; its id is the ``{school}`` of MQTT topics."""

    __tablename__ = "schools"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    district_id: Mapped[str | None] = mapped_column(ForeignKey("districts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default=DEFAULT_TIMEZONE)
    hours_start: Mapped[str] = mapped_column(String(5), default="07:00")
    hours_end: Mapped[str] = mapped_column(String(5), default="17:00")
    # The timetable (controller/timetable.py): ISO weekdays taught ("123456" adds Saturday) and per-weekday
    # hours that differ from hours_start/hours_end, e.g. {"6": ["07:00", "11:30"]} for Saturday mornings.
    school_days: Mapped[str] = mapped_column(String(7), default="12345", server_default="12345")
    day_hours: Mapped[dict[str, list[str]]] = mapped_column(JsonType, default=dict)
    district: Mapped[District | None] = relationship(back_populates="schools")
    rooms: Mapped[list[Room]] = relationship(back_populates="school")


class Room(Base):
    """A room of a school, identified within it by ``code``."""

    __tablename__ = "rooms"
    __table_args__ = (UniqueConstraint("school_id", "code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    school: Mapped[School] = relationship(back_populates="rooms")


class Device(Base):
    """A device, in exactly one school; ``room_id`` is null while it is unassigned."""

    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("school_id", "uid"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), index=True)
    uid: Mapped[str] = mapped_column(String(64))  # the ``{device}`` of MQTT topics
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32), default="other", index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    vendor: Mapped[str | None] = mapped_column(String(120))
    model: Mapped[str | None] = mapped_column(String(120))
    serial: Mapped[str | None] = mapped_column(String(120))
    asset_tag: Mapped[str | None] = mapped_column(String(120))
    mgmt_address: Mapped[str | None] = mapped_column(String(255))
    watched_by: Mapped[str] = mapped_column(String(16), default="mqtt")
    lifecycle: Mapped[str] = mapped_column(String(16), default="active")
    is_school_uplink: Mapped[bool] = mapped_column(Boolean, default=False)
    # How a poller reaches it: a poll profile (e.g. an SNMP module name) and where its
    # credentials come from (an environment variable name or a secret reference, never the secret).
    poll_profile: Mapped[str | None] = mapped_column(String(64))
    credential_ref: Mapped[str | None] = mapped_column(String(128))
    # A camera recorded by an NVR, a port's switch: the device this one hangs off.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"), index=True)
    firmware: Mapped[str | None] = mapped_column(String(120))
    purchase_date: Mapped[dt.date | None] = mapped_column(Date)
    warranty_end: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    school: Mapped[School] = relationship()
    room: Mapped[Room | None] = relationship()
    state: Mapped[DeviceState | None] = relationship(uselist=False, lazy="joined")


class DeviceState(Base):
    """The latest known state of a device, merged order-independently by (session, seq)."""

    __tablename__ = "device_state"
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    # Highest live (not replayed) message applied: the guard that makes updates order-independent.
    session: Mapped[int] = mapped_column(BigInteger, default=0)
    seq: Mapped[int] = mapped_column(BigInteger, default=-1)
    last_seen: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # Availability from the retained status / Last Will, guarded by its own session.
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    status_session: Mapped[int] = mapped_column(BigInteger, default=-1)
    status_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    agent_version: Mapped[str | None] = mapped_column(String(32))
    profile: Mapped[str | None] = mapped_column(String(32))
    # Latest heartbeat figures, guarded by the heartbeat's own (session, seq).
    hb_session: Mapped[int] = mapped_column(BigInteger, default=-1)
    hb_seq: Mapped[int] = mapped_column(BigInteger, default=-1)
    hb_ts: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    uptime_s: Mapped[float | None] = mapped_column(Float)
    cpu_pct: Mapped[float | None] = mapped_column(Float)
    mem_pct: Mapped[float | None] = mapped_column(Float)
    disk_max_pct: Mapped[float | None] = mapped_column(Float)
    temp_c: Mapped[float | None] = mapped_column(Float)
    clock_skew_s: Mapped[float | None] = mapped_column(Float)
    inventory_hash: Mapped[str | None] = mapped_column(String(128))


class DeviceComponent(Base):
    """A part of a device with its own status: a switch port, an NVR channel, a projector lamp."""

    __tablename__ = "device_components"
    __table_args__ = (UniqueConstraint("device_id", "kind", "index"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # port | channel | lamp | battery | ...
    index: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # up | down | ok | faulty | unknown ...
    data: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class DeviceInventory(Base):
    """The latest hardware and software inventory a device reported (history keeps only summaries)."""

    __tablename__ = "device_inventory"
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    hash: Mapped[str] = mapped_column(String(128))
    hardware: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    software: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    session: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Observation(Base):
    """History: every sequenced message once, keyed by (device, session, seq)."""

    __tablename__ = "observations"
    __table_args__ = (
        UniqueConstraint("device_id", "session", "seq"),
        Index("ix_observations_device_ts", "device_id", "ts"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    session: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    ts: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    replayed: Mapped[bool] = mapped_column(Boolean, default=False)
    data: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)


class Incident(Base):
    """One open incident per (device, code); repeats bump ``count`` and ``last_seen``."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index(
            "uq_incidents_open_device_code", "device_id", "code", unique=True,
            sqlite_where=text("state != 'resolved'"), postgresql_where=text("state != 'resolved'"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="open")
    count: Mapped[int] = mapped_column(Integer, default=1)
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    flapping: Mapped[bool] = mapped_column(Boolean, default=False)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    assignee: Mapped[str | None] = mapped_column(String(120))
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(120))
    resolved_by: Mapped[str | None] = mapped_column(String(120))
    notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), index=True)
    # a notifier is sending it until then; a crashed one's claim runs out and another sends it
    notify_claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class IncidentComment(Base):
    """A technician's note on an incident."""

    __tablename__ = "incident_comments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    author: Mapped[str] = mapped_column(String(120))
    text: Mapped[str] = mapped_column(Text)


class MaintenanceWindow(Base):
    """A school's planned quiet time (holidays, Tết, works): incidents are recorded, not notified."""

    __tablename__ = "maintenance_windows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(String(200))


class NotificationRoute(Base):
    """Where a school's (or, with no school, every school's) new incidents are sent."""

    __tablename__ = "notification_routes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[str | None] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # email | webhook
    target: Mapped[str] = mapped_column(String(500))  # an address, or a URL
    min_severity: Mapped[str] = mapped_column(String(16), default="warning")
    lang: Mapped[str] = mapped_column(String(5), default="vi")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class Command(Base):
    """A remote command and its lifecycle (DESIGN §6)."""

    __tablename__ = "commands"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    args: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    not_before: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    expires: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(120))
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    detail: Mapped[str | None] = mapped_column(Text)


class AuditLog(Base):
    """Who changed what, when."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)


class DeadLetter(Base):
    """A message rejected at the edge, kept with its reason (payload preview capped)."""

    __tablename__ = "dead_letters"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    topic: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_size: Mapped[int] = mapped_column(Integer)


class EnrolmentToken(Base):
    """A per-school token agents exchange for an identity: one-time, or reusable up to a quota."""

    __tablename__ = "enrolment_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of a high-entropy token
    max_uses: Mapped[int] = mapped_column(Integer, default=1)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(String(200))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class DeviceCredential(Base):
    """A device's MQTT login; only a Mosquitto-compatible PBKDF2 hash of the password is kept."""

    __tablename__ = "device_credentials"
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    username: Mapped[str] = mapped_column(String(140), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    token_id: Mapped[int | None] = mapped_column(ForeignKey("enrolment_tokens.id", ondelete="SET NULL"))


ROLES = ("admin", "technician", "auditor")


class User(Base):
    """A person using the console or the API; scoped to schools, a district, or everything."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(120), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    all_schools: Mapped[bool] = mapped_column(Boolean, default=False)
    district_id: Mapped[str | None] = mapped_column(ForeignKey("districts.id", ondelete="SET NULL"))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UserSchool(Base):
    """A school a user may see (and, unless an auditor, act on)."""

    __tablename__ = "user_schools"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), primary_key=True)


class ApiToken(Base):
    """A user's API token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class EquipmentPlan(Base):
    """What was bought: planned counts per school, room kind and device kind."""

    __tablename__ = "equipment_plan"
    __table_args__ = (UniqueConstraint("school_id", "room_kind", "device_kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id"), index=True)
    room_kind: Mapped[str] = mapped_column(String(32))
    device_kind: Mapped[str] = mapped_column(String(32))
    planned: Mapped[int] = mapped_column(Integer)


class Holiday(Base):
    """Days off (Tết Nguyên Đán, national holidays, a school's own): of one school, of a district's schools, or
    (neither set) of every school. ``ends_on`` is inclusive."""

    __tablename__ = "holidays"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[str | None] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    district_id: Mapped[str | None] = mapped_column(ForeignKey("districts.id", ondelete="CASCADE"), index=True)
    starts_on: Mapped[dt.date] = mapped_column(Date)
    ends_on: Mapped[dt.date] = mapped_column(Date)
    name: Mapped[str] = mapped_column(String(200))


class CommandSchedule(Base):
    """A recurring command: ``action`` for a school's or a room's devices (optionally one kind) at a local time of
    day, on school days or every day. ``last_occurrence`` is the last firing handled, so that a restart or a second
    replica never fires one twice."""

    __tablename__ = "command_schedules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    school_id: Mapped[str] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    args: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    at_time: Mapped[str] = mapped_column(String(5))  # HH:MM in the school's time zone
    school_days_only: Mapped[bool] = mapped_column(Boolean, default=True)
    expires_in_s: Mapped[int] = mapped_column(Integer, default=3600)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(120))
    last_occurrence: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    last_result: Mapped[str | None] = mapped_column(String(500))


class ControllerLease(Base):
    """A time-limited claim by one controller replica (``controller.cluster``): ``member:<client id>`` says the
    replica is alive, ``task:<name>`` that it runs that singleton task. Taken over only once expired."""

    __tablename__ = "controller_leases"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    acquired_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
