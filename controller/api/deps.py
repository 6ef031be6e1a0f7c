"""FastAPI dependencies: the store session, settings, clock, all taken from app state."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from ..config import Settings


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


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
NowDep = Annotated[dt.datetime, Depends(get_now)]
