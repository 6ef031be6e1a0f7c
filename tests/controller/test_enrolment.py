"""Enrolment tokens: quotas, expiry, revocation, hashed secrets, and the agent's side of the exchange."""

from __future__ import annotations

import datetime as dt
import os
import stat
import tomllib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.enroll import EnrolmentError, enroll
from controller.api.app import create_app
from controller.config import Settings
from controller.enrolment import (
    EnrolmentRefused,
    create_token,
    hash_password,
    redeem,
    revoke_device,
    verify_password,
)
from controller.metrics import build_registry
from controller.store import db
from controller.store.models import AuditLog, Device, DeviceCredential, EnrolmentToken
from tests.helpers import add_school, make_app, serve_app

NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


def test_mosquitto_compatible_password_hashes():
    stored = hash_password("s3cret")
    assert stored.startswith("$7$") and verify_password("s3cret", stored) and not verify_password("nope", stored)


def test_token_quota_expiry_and_revocation(db_url):
    engine = db.make_engine(db_url)
    add_school(engine, "s1")
    with Session(engine) as session, session.begin():
        issued = create_token(session, "s1", uses=2, valid_for=dt.timedelta(days=1), now=NOW)
    with Session(engine) as session, session.begin():
        first = redeem(session, issued.token, hostname="LAB1-PC01", profile="pc", now=NOW)
        second = redeem(session, issued.token, device="lab1-pc02", profile="laptop", now=NOW)
    assert first.device.startswith("lab1-pc01-") and second.device == "lab1-pc02"
    with pytest.raises(EnrolmentRefused, match="quota"), Session(engine) as session, session.begin():
        redeem(session, issued.token, device="lab1-pc03", now=NOW)
    with Session(engine) as session:
        token = session.scalar(select(EnrolmentToken))
        assert token is not None and token.uses == 2 and token.token_hash != issued.token
        cred = session.get(DeviceCredential, session.scalar(select(Device.id).where(Device.uid == "lab1-pc02")))
        assert cred is not None and cred.username == "s1.lab1-pc02"
        assert second.password not in cred.password_hash and verify_password(second.password, cred.password_hash)
        assert session.scalar(select(Device.kind).where(Device.uid == "lab1-pc02")) == "laptop"
        assert {a.action for a in session.scalars(select(AuditLog))} >= {"enrolment_token.create", "device.enrol"}
    with Session(engine) as session, session.begin():
        late = create_token(session, "s1", uses=5, valid_for=dt.timedelta(hours=1), now=NOW)
    with pytest.raises(EnrolmentRefused, match="expired"), Session(engine) as session, session.begin():
        redeem(session, late.token, now=NOW + dt.timedelta(hours=2))
    with Session(engine) as session, session.begin():
        retry = create_token(session, "s1", uses=5, now=NOW)
    # An enrolled device cannot be taken over with a school token; after revocation it can enrol again.
    with pytest.raises(EnrolmentRefused, match="already enrolled"), Session(engine) as session, session.begin():
        redeem(session, retry.token, device="lab1-pc02", now=NOW)
    with Session(engine) as session, session.begin():
        assert revoke_device(session, "s1", "lab1-pc02", now=NOW)
    with Session(engine) as session, session.begin():
        again = redeem(session, retry.token, device="lab1-pc02", now=NOW)
    assert again.password != second.password
    engine.dispose()


def test_agent_enrols_over_http_and_keeps_its_secret_private(sqlite_url, tmp_path):
    engine = db.make_engine(sqlite_url)
    add_school(engine, "s1")
    with Session(engine) as session, session.begin():
        token = create_token(session, "s1", uses=1).token
    settings = Settings(data_dir=tmp_path, public_mqtt_url="mqtt://broker.school.local:1883")
    registry, _ = build_registry(engine, 180)
    app = create_app(settings, engine, registry)
    config_path = tmp_path / "etc" / "agent.toml"
    with serve_app(app) as url:
        enroll(url, token, config_path, profile="smart_board", device="board-01", state_dir=tmp_path / "state")
        with pytest.raises(EnrolmentError, match="403.*quota"):
            enroll(url, token, tmp_path / "other.toml", device="board-02")
    assert stat.S_IMODE(os.stat(config_path).st_mode) == 0o600
    written = tomllib.loads(config_path.read_text())
    assert written["school"] == "s1" and written["device"] == "board-01"
    assert written["broker"]["url"] == "mqtt://s1.board-01@broker.school.local:1883"
    with Session(engine) as session:
        cred = session.scalar(select(DeviceCredential))
        assert cred is not None and verify_password(written["broker"]["password"], cred.password_hash)
    from agents.config import load_config

    loaded = load_config(config_path)
    assert (loaded.host, loaded.port, loaded.username, loaded.profile) == ("broker.school.local", 1883,
                                                                          "s1.board-01", "smart_board")
    engine.dispose()


def test_enrolment_api_refuses_bad_tokens_with_reasons(sqlite_url, tmp_path):
    engine = db.make_engine(sqlite_url)
    client = TestClient(make_app(engine, tmp_path))
    answer = client.post("/api/v1/enrolments", json={"token": "cfe_not-a-real-token"})
    assert answer.status_code == 403 and answer.json()["detail"] == "unknown or revoked token"
    assert client.post("/api/v1/enrolments", json={"token": "x"}).status_code == 422
    assert client.post("/api/v1/enrolments", json={"token": "cfe_abcdefgh", "device": "Bad Id"}).status_code == 422
    engine.dispose()
