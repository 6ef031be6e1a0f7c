"""Fixtures for the SNMP poller tests: one snmpsim for the whole run (the 14 real recordings plus our
synthetic ones), and net-snmp's snmpd for SNMPv3."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from controller.store import db
from tests.controller.pollers.snmp import synthetic
from tests.fixtures.snmp import Snmpd, Snmpsim, snmpd, snmpsim
from tests.helpers import add_school

SCHOOL = "thcs-snmp"


@pytest.fixture(scope="session")
def snmpsim_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpsim]:
    """snmpsim on a free loopback UDP port; community = recording name."""
    with snmpsim(tmp_path_factory.mktemp("snmpsim"), extra=synthetic.recordings()) as agent:
        yield agent


@pytest.fixture(scope="module")
def snmpd_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """net-snmp's snmpd with a SHA-256/AES authPriv user, on a free loopback UDP port."""
    with snmpd(tmp_path_factory.mktemp("snmpd")) as agent:
        yield agent


@pytest.fixture(scope="session")
def net_snmp() -> Path:
    """net-snmp's command-line tools (the differential peer); install with .ci/install-test-deps."""
    walk = shutil.which("snmpwalk")
    if walk is None:
        pytest.fail("snmpwalk is missing: apt-get install -y snmp snmpd (.ci/install-test-deps does this)")
    return Path(walk)


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    """A fresh migrated SQLite store with one school."""
    eng = db.make_engine(sqlite_url)
    add_school(eng, SCHOOL)
    yield eng
    eng.dispose()
