"""Enrolment: per-school tokens that agents exchange for a device id and MQTT credentials.

One token may be baked into a school's disk image: it is reusable up to its quota and expires.
Tokens are stored as SHA-256 (they are random and long, so a fast hash is enough); device
passwords as Mosquitto-compatible PBKDF2-SHA512 (``$7$``), so the broker's password file can be
written from the store without anyone knowing a password.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from classfleet_wire import is_valid_id

from .store.models import PROFILE_TO_KIND, AuditLog, Device, DeviceCredential, EnrolmentToken, School

PBKDF2_ITERATIONS = 20_000
TOKEN_PREFIX = "cfe_"


class EnrolmentRefused(Exception):
    """The token cannot be used; ``reason`` is safe to show to the enrolling machine."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token as shown once to the administrator who created it."""

    token: str
    school: str
    max_uses: int
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What an enrolled agent needs to connect; the password is shown this once."""

    school: str
    device: str
    username: str
    password: str


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    """Mosquitto 2's ``$7$`` format: PBKDF2-SHA512 with the iteration count and salt inside."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Check a password against a ``$7$`` hash."""
    try:
        _, kind, iterations, salt, digest = stored.split("$")
    except ValueError:
        return False
    if kind != "7":
        return False
    computed = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations))
    return hmac.compare_digest(base64.b64encode(computed).decode(), digest)


def create_token(session: Session, school: str, *, uses: int = 1, valid_for: dt.timedelta = dt.timedelta(days=7),
                 actor: str = "cli", note: str | None = None, now: dt.datetime | None = None) -> IssuedToken:
    """Issue a token for ``school``, usable ``uses`` times until ``valid_for`` has passed."""
    if session.get(School, school) is None:
        raise ValueError(f"school {school!r} is not registered")
    if not 1 <= uses <= 100_000:
        raise ValueError("uses must be between 1 and 100000")
    now = now or dt.datetime.now(dt.UTC)
    token = TOKEN_PREFIX + secrets.token_urlsafe(24)
    row = EnrolmentToken(school_id=school, token_hash=hash_token(token), max_uses=uses, uses=0,
                         expires_at=now + valid_for, created_at=now, created_by=actor, note=note, revoked=False)
    session.add(row)
    session.flush()
    session.add(AuditLog(at=now, actor=actor, action="enrolment_token.create", target=f"school:{school}",
                         detail={"token_id": row.id, "max_uses": uses, "expires_at": row.expires_at.isoformat()}))
    return IssuedToken(token, school, uses, row.expires_at)


def redeem(session: Session, token: str, *, device: str | None = None, hostname: str | None = None,
           profile: str | None = None, now: dt.datetime | None = None) -> Enrolment:
    """Exchange a token for a device id and fresh MQTT credentials (re-enrolment rotates them)."""
    now = now or dt.datetime.now(dt.UTC)
    row = session.scalar(select(EnrolmentToken).where(EnrolmentToken.token_hash == hash_token(token)))
    if row is None or row.revoked:
        raise EnrolmentRefused("unknown or revoked token")
    if row.expires_at <= now:
        raise EnrolmentRefused("token expired")
    # Count the use atomically, so two machines racing for the last use cannot both win.
    taken = session.execute(
        update(EnrolmentToken).where(EnrolmentToken.id == row.id, EnrolmentToken.uses < EnrolmentToken.max_uses)
        .values(uses=EnrolmentToken.uses + 1)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise EnrolmentRefused("token quota used up")
    uid = device or _device_id_from(hostname)
    if not is_valid_id(uid):
        raise EnrolmentRefused(f"invalid device id {uid!r}: expected [a-z0-9_-]{{1,64}}")
    existing = session.scalar(select(Device).where(Device.school_id == row.school_id, Device.uid == uid))
    if existing is None:
        existing = Device(school_id=row.school_id, uid=uid, kind=PROFILE_TO_KIND.get(profile or "", "other"),
                          name=hostname, watched_by="mqtt", lifecycle="active", created_at=now)
        session.add(existing)
        session.flush()
    password = secrets.token_urlsafe(24)
    username = f"{row.school_id}.{uid}"
    credential = session.get(DeviceCredential, existing.id)
    if credential is not None and credential.revoked_at is None:
        # A school token must not let one machine take over another's identity: revoke first.
        raise EnrolmentRefused(f"device {uid!r} is already enrolled; revoke it before enrolling it again")
    if credential is None:
        session.add(DeviceCredential(device_id=existing.id, username=username, password_hash=hash_password(password),
                                     created_at=now, token_id=row.id))
    else:
        credential.password_hash = hash_password(password)
        credential.revoked_at = None
        credential.created_at = now
        credential.token_id = row.id
    session.add(AuditLog(at=now, actor=f"token:{row.id}", action="device.enrol",
                         target=f"device:{row.school_id}/{uid}", detail={"hostname": hostname, "profile": profile}))
    return Enrolment(row.school_id, uid, username, password)


def revoke_device(session: Session, school: str, device: str, actor: str = "cli",
                  now: dt.datetime | None = None) -> bool:
    """Revoke a device's credentials; False if it has none."""
    now = now or dt.datetime.now(dt.UTC)
    dev = session.scalar(select(Device).where(Device.school_id == school, Device.uid == device))
    credential = session.get(DeviceCredential, dev.id) if dev is not None else None
    if credential is None or credential.revoked_at is not None:
        return False
    credential.revoked_at = now
    session.add(AuditLog(at=now, actor=actor, action="device.revoke", target=f"device:{school}/{device}", detail={}))
    return True


def _device_id_from(hostname: str | None) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", (hostname or "").lower()).strip("-")[:48]
    return f"{slug or 'device'}-{secrets.token_hex(3)}"


def parse_duration(text: str) -> dt.timedelta:
    """'30d', '12h', '90m' → timedelta (for the CLI's --expires)."""
    match = re.fullmatch(r"(\d+)\s*([dhm])", text.strip().lower())
    if not match:
        raise ValueError("expected a duration such as 30d, 12h or 90m")
    value, unit = int(match.group(1)), match.group(2)
    return {"d": dt.timedelta(days=value), "h": dt.timedelta(hours=value), "m": dt.timedelta(minutes=value)}[unit]
