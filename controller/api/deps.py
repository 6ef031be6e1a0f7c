"""FastAPI dependencies: the store session, settings, clock, all taken from app state."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request
from sqlalchemy.orm import Session, sessionmaker

from ..auth import ANONYMOUS_ADMIN, Principal, principal_for, principal_from_token
from ..config import Settings
from ..store.models import User


def get_session(request: Request) -> Iterator[Session]:
    """One store session per request."""
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session:
        yield session


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


def get_now(request: Request) -> dt.datetime:
    """The app's clock (injectable in tests)."""
    now: dt.datetime = request.app.state.clock()
    return now


MAX_ID = 2**31 - 1  # integer primary keys; a bigger number is a client error, not a database error
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
NowDep = Annotated[dt.datetime, Depends(get_now)]


def get_principal(request: Request, session: SessionDep, settings: SettingsDep) -> Principal:
    """Who is asking: an API token (``Authorization: Bearer cft_…``) or the console's login session."""
    if not settings.auth:
        return ANONYMOUS_ADMIN
    header = request.headers.get("authorization", "")
    if header.startswith("Bearer "):
        principal = principal_from_token(session, header.removeprefix("Bearer ").strip())
        if principal is not None:
            session.commit()  # last_used_at
            return principal
    user_id = request.session.get("user_id") if "session" in request.scope else None
    if user_id is not None:
        user = session.get(User, user_id)
        if user is not None and not user.disabled:
            return principal_for(session, user)
    raise HTTPException(401, detail="authentication required", headers={"WWW-Authenticate": "Bearer"})


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def check_read(principal: Principal, school_id: str | None, what: str) -> None:
    """404 for what does not exist (``school_id`` None) or lies outside the principal's schools: its
    existence is not revealed either."""
    if school_id is None or not principal.can_read(school_id):
        raise HTTPException(404, detail=f"{what} not found")


def check_write(principal: Principal, school_id: str | None, what: str) -> None:
    """404 outside the scope, 403 inside it for a read-only role."""
    check_read(principal, school_id, what)
    if not principal.can_write(school_id):
        raise HTTPException(403, detail=f"the {principal.role} role cannot change this")
