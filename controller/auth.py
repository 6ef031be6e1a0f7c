"""Users, roles and school scopes (OWASP API1: a user of school A never reads or changes school B).

Roles: ``admin`` and ``technician`` may act on the schools in their scope, ``auditor`` only reads.
A scope is every school (``all_schools``), the schools of a district, and/or listed schools.
Passwords are argon2 hashes; API tokens are random and stored as SHA-256. With authentication
turned off (the demo), every request is an administrator of everything.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from .store.models import ROLES, ApiToken, AuditLog, School, User, UserSchool
from .store.queries import in_scope

TOKEN_PREFIX = "cft_"
_hasher = PasswordHasher()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking, and what they may see and change."""

    name: str
    role: str
    schools: frozenset[str] | None  # None: every school
    user_id: int | None = None

    def can_read(self, school_id: str | None) -> bool:
        """May this principal see things of ``school_id``?"""
        return self.schools is None or (school_id is not None and school_id in self.schools)

    def can_write(self, school_id: str | None) -> bool:
        """May this principal change things of ``school_id``?"""
        return self.role in ("admin", "technician") and self.can_read(school_id)

    def scope(self, column: Any) -> ColumnElement[bool]:
        """A SQL condition restricting ``column`` (a school id) to this principal's schools."""
        return in_scope(column, self.schools)  # type: ignore[no-any-return]

    @property
    def everywhere(self) -> bool:
        """True for a department-wide principal."""
        return self.schools is None


ANONYMOUS_ADMIN = Principal("anonymous (authentication off)", "admin", None)


def hash_password(password: str) -> str:
    """An argon2id hash."""
    return _hasher.hash(password)


def verify_password(password: str, stored: str) -> bool:
    """Check a password against an argon2 hash."""
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def create_user(session: Session, username: str, password: str, role: str, *, schools: list[str] = (),  # type: ignore[assignment]
                district: str | None = None, all_schools: bool = False, actor: str = "cli") -> User:
    """Add a user; the scope must name real schools/districts."""
    if role not in ROLES:
        raise ValueError(f"role must be one of: {', '.join(ROLES)}")
    if len(password) < 10:
        raise ValueError("the password must have at least 10 characters")
    if not (all_schools or schools or district):
        raise ValueError("give --all-schools, --district or at least one --school")
    for school in schools:
        if session.get(School, school) is None:
            raise ValueError(f"school {school!r} is not registered")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ValueError(f"user {username!r} exists already")
    user = User(username=username, password_hash=hash_password(password), role=role, all_schools=all_schools,
                district_id=district, disabled=False, created_at=dt.datetime.now(dt.UTC))
    session.add(user)
    session.flush()
    session.add_all([UserSchool(user_id=user.id, school_id=s) for s in schools])
    session.add(AuditLog(at=dt.datetime.now(dt.UTC), actor=actor, action="user.create", target=f"user:{username}",
                         detail={"role": role, "schools": list(schools), "district": district,
                                 "all_schools": all_schools}))
    return user


def create_token(session: Session, user: User, name: str) -> str:
    """A new API token for ``user``, returned once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, name=name, token_hash=_sha(token), created_at=dt.datetime.now(dt.UTC)))
    session.add(AuditLog(at=dt.datetime.now(dt.UTC), actor=user.username, action="token.create",
                         target=f"user:{user.username}", detail={"name": name}))
    return token


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def principal_for(session: Session, user: User) -> Principal:
    """The user's role and resolved school scope."""
    if user.all_schools:
        return Principal(user.username, user.role, None, user.id)
    schools = set(session.scalars(select(UserSchool.school_id).where(UserSchool.user_id == user.id)))
    if user.district_id:
        schools |= set(session.scalars(select(School.id).where(School.district_id == user.district_id)))
    return Principal(user.username, user.role, frozenset(schools), user.id)


def principal_from_token(session: Session, token: str) -> Principal | None:
    """The principal an API token stands for, or None."""
    row = session.execute(
        select(ApiToken, User).join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == _sha(token), ApiToken.revoked.is_(False), User.disabled.is_(False))
    ).first()
    if row is None:
        return None
    api_token, user = row
    api_token.last_used_at = dt.datetime.now(dt.UTC)
    return principal_for(session, user)


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The user if the password is right (constant work whether or not the user exists)."""
    user = session.scalar(select(User).where(User.username == username, User.disabled.is_(False)))
    if user is None:
        verify_password(password, _DUMMY_HASH)
        return None
    return user if verify_password(password, user.password_hash) else None


_DUMMY_HASH = _hasher.hash("not-a-real-password")
