"""A small two-school store for the console tests: school A's and school B's rooms, devices, incidents."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from controller.store.models import (
    AuditLog,
    Command,
    Device,
    DeviceInventory,
    DeviceState,
    District,
    Incident,
    Observation,
    Room,
    School,
)
from tests.helpers import make_user

PASSWORD = "correct horse battery"  # tests.helpers.make_user's


def seed(engine: Engine, now: dt.datetime | None = None) -> dict[str, Any]:
    """Schools a and b, a lab each, agent PCs with state, history, inventory and open incidents; returns ids.

    The history is of agent session 0, so a real agent's messages (session 1 on) are never taken for repeats."""
    now = now or dt.datetime.now(dt.UTC)
    ids: dict[str, Any] = {}
    with Session(engine) as session, session.begin():
        session.add_all([District(id="da", name="Quận A"), District(id="db", name="Quận B")])
        session.add_all([School(id="a", name="THCS A", district_id="da"),
                         School(id="b", name="THCS B", district_id="db")])
        session.flush()
        for school in ("a", "b"):
            room = Room(school_id=school, code="lab-1", name=f"Phòng máy {school.upper()}", kind="computer_lab")
            session.add(room)
            session.flush()
            pcs = [Device(school_id=school, uid=f"pc-{school}{n}", kind="pc", room_id=room.id, vendor="Dell",
                          model="OptiPlex 3080", serial=f"SN{school}{n}") for n in (1, 2)]
            board = Device(school_id=school, uid=f"board-{school}", kind="smart_board")
            session.add_all([*pcs, board])
            session.flush()
            for n, pc in enumerate(pcs):
                session.add(DeviceState(device_id=pc.id, session=0, seq=20, last_seen=now, online=True,
                                        hb_session=0, hb_seq=20, hb_ts=now, uptime_s=7200.0, cpu_pct=12.5 + n,
                                        mem_pct=40.0, disk_max_pct=93.0 if n else 50.0, agent_version="1.0"))
                session.add_all([Observation(device_id=pc.id, session=0, seq=s, kind="heartbeat",
                                             ts=now - dt.timedelta(seconds=30 * (20 - s)),
                                             received_at=now - dt.timedelta(seconds=30 * (20 - s)),
                                             data={"cpu_pct": float(10 + (s * 7) % 60)}) for s in range(1, 20)])
            session.add(DeviceInventory(device_id=pcs[0].id, hash="h" * 12, session=1, seq=1, updated_at=now,
                                        hardware={"hostname": f"pc-{school}1", "cpu_model": "Intel Core i3-10100",
                                                  "ram_bytes": 8 * 2**30},
                                        software=[{"name": "LibreOffice"}, {"name": "Firefox"}, {"name": "Zoom"}]))
            incident = Incident(device_id=pcs[1].id, school_id=school, code="disk.low" if school == "a"
                                else "cpu.overheat", severity="warning" if school == "a" else "critical",
                                state="open", count=2, opened_at=now - dt.timedelta(hours=1), last_seen=now, detail={})
            session.add(incident)
            session.add(Command(id=f"cmd-{school}-0001", device_id=pcs[0].id, action="collect_inventory", args={},
                                state="done", expires=now + dt.timedelta(hours=1), created_at=now - dt.timedelta(
                                    minutes=5), created_by="seed", updated_at=now))
            session.flush()
            ids[school] = {"room": room.id, "pc1": pcs[0].id, "pc2": pcs[1].id, "board": board.id,
                           "incident": incident.id}
        session.add_all([
            AuditLog(at=now, actor="seed", action="test.school_a", target="school:a", detail={}),
            AuditLog(at=now, actor="seed", action="test.device_b", target=f"device:{ids['b']['pc1']}", detail={}),
            AuditLog(at=now, actor="seed", action="test.user", target="user:someone", detail={}),
        ])
    return ids


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def log_in(client: Any, username: str) -> None:
    """Log a TestClient in through the console's form."""
    token = csrf_of(client.get("/console/login").text)
    response = client.post("/console/login", data={"username": username, "password": PASSWORD, "csrf": token},
                           follow_redirects=False)
    assert response.status_code == 303 and "error" not in response.headers["location"], response.headers


def add_role_users(engine: Engine) -> None:
    """One user per role the console tests log in as: admin, auditor, school a's technician, district da's auditor."""
    make_user(engine, "admin", "admin", all_schools=True)
    make_user(engine, "auditor", "auditor", all_schools=True)
    make_user(engine, "tech-a", "technician", schools=("a",))
    make_user(engine, "audit-da", "auditor", district="da")


def client_as(app: FastAPI, username: str) -> TestClient:
    """A TestClient logged in as ``username`` through the console's form."""
    client = TestClient(app)
    log_in(client, username)
    return client
