"""Shared fixtures: real Mosquitto and PostgreSQL (see tests/fixtures/services.py), fresh databases."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.store import db
from tests.fixtures.services import PostgresServer, RunningBroker, mosquitto, postgres


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RunningBroker]:
    """A real Mosquitto on a free loopback port, with persistence in the test's temp dir."""
    with mosquitto(tmp_path / "broker") as running:
        yield running


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole run; fails (or skips with CLASSFLEET_ALLOW_PG_SKIP=1) if none."""
    try:
        with postgres() as server:
            yield server
    except RuntimeError as exc:
        if os.environ.get("CLASSFLEET_ALLOW_PG_SKIP") == "1":
            pytest.skip(f"PostgreSQL unavailable: {exc}")
        pytest.fail(f"PostgreSQL unavailable: {exc}")


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test."""
    url = pg_server.create_database()
    db.upgrade(url)
    try:
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh, migrated SQLite database for one test."""
    url = f"sqlite:///{tmp_path / 'classfleet.db'}"
    db.upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each store test runs on both backends."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))
