"""The real agent process against a real Mosquitto and the real controller code: enrolment, inventory
checked against this machine, thresholds reloaded on SIGHUP, and commands with their acknowledgements."""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

import psutil
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.config import write_config
from controller.api.app import create_app
from controller.config import Settings
from controller.enrolment import create_token
from controller.metrics import build_registry
from controller.store.models import Command, Incident, Observation
from tests.helpers import add_school, publish_all, publisher, running_ingest, serve_app, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _agent_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "agents.cli", *args]


def _physical_macs() -> set[str]:
    macs = set()
    for name, addrs in psutil.net_if_addrs().items():
        for a in addrs:
            if a.family == psutil.AF_LINK and name != "lo" and a.address and a.address != "00:00:00:00:00:00":
                macs.add(a.address.lower())
    return macs


def test_enrolled_agent_reports_inventory_faults_and_commands(tmp_path, sqlite_url, broker):
    with running_ingest(sqlite_url, broker.port, client_id="e2e-controller") as (_, engine, _m):
        add_school(engine, "s1")
        with Session(engine) as session, session.begin():
            token = create_token(session, "s1", uses=1).token
        settings = Settings(data_dir=tmp_path, public_mqtt_url=f"mqtt://127.0.0.1:{broker.port}", auth=False)
        registry, _ = build_registry(engine, 180)
        config = tmp_path / "agent.toml"
        with serve_app(create_app(settings, engine, registry)) as api:
            enrolled = subprocess.run(_agent_cli("enroll", "--controller", api, "--token", token, "--config",
                                                 str(config), "--state-dir", str(tmp_path / "state")),
                                      capture_output=True, text=True, timeout=60)
            assert enrolled.returncode == 0, enrolled.stderr
            again = subprocess.run(_agent_cli("enroll", "--controller", api, "--token", token, "--config",
                                              str(tmp_path / "second.toml"), "--device", "another"),
                                   capture_output=True, text=True, timeout=60)
            assert again.returncode == 1 and "quota" in again.stderr  # a reused token past its quota

            data = tomllib.loads(config.read_text())
            device = data["device"]
            used = max(d["used_pct"] for d in _disk_usage())
            data["agent"].update(heartbeat_interval_s=0.5, dry_run=True)
            data["thresholds"] = {"disk_low_pct": max(1.0, used - 5)}  # below current use: disk.low
            write_config(config, data)
            proc = subprocess.Popen(_agent_cli("run", "--config", str(config)), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
            try:
                import httpx

                def device_id() -> int | None:
                    items = httpx.get(f"{api}/api/v1/devices", params={"q": device}).json()["items"]
                    return items[0]["id"] if items else None

                pk = wait_for(device_id, what="enrolled device in the API")
                inventory = wait_for(lambda: httpx.get(f"{api}/api/v1/devices/{pk}/inventory").json()
                                     if httpx.get(f"{api}/api/v1/devices/{pk}/inventory").status_code == 200
                                     else None, what="inventory in the API")
                hw = inventory["hardware"]
                assert hw["hostname"] == socket.gethostname()
                assert {n["mac"].lower() for n in hw["network"]} == _physical_macs()
                for disk in hw["disks"]:
                    sectors = int(Path(f"/sys/block/{disk['device']}/size").read_text())
                    assert disk["size_bytes"] == sectors * 512

                raised = wait_for(lambda: _incident(engine, "disk.low"), what="disk.low raised")
                assert raised.state == "open"
                data["thresholds"] = {"disk_low_pct": 99.0}
                write_config(config, data)
                proc.send_signal(signal.SIGHUP)  # reload: the fault clears
                wait_for(lambda: (i := _incident(engine, "disk.low")) is not None and i.state == "resolved",
                         what="disk.low cleared after reload")

                ids = _commands(engine, pk)
                now = time.time()
                topic = f"classfleet/v1/s1/{device}/cmd"
                message = json.dumps({"v": 1, "id": ids["message"], "action": "message",
                                      "args": {"text": "Phòng máy đóng cửa lúc 17:30"}, "expires": now + 60})
                client = publisher(broker.port, "e2e-commands")
                publish_all(client, [
                    (topic, message), (topic, message),  # the same command id twice: it runs once
                    (topic, json.dumps({"v": 1, "id": ids["expired"], "action": "collect_inventory",
                                        "expires": now - 5})),
                    (topic, json.dumps({"v": 1, "id": ids["unknown"], "action": "format_disk",
                                        "expires": now + 60})),
                ])
                want = {ids["message"]: "done", ids["expired"]: "rejected", ids["unknown"]: "rejected"}

                def acknowledged() -> dict[str, str] | None:
                    states = _states(engine)
                    return states if all(states.get(k) == v for k, v in want.items()) else None

                states = wait_for(acknowledged, what="command acknowledgements")
                assert states[ids["message"]] == "done"
                details = _ack_details(engine, pk)
                assert "expired" in details[ids["expired"]][-1]
                assert "schema" in details[ids["unknown"]][-1] and "action" in details[ids["unknown"]][-1]
                time.sleep(1.0)
                assert [d for d in _ack_states(engine, pk)[ids["message"]]] == ["accepted", "done"]
                assert "dry run" in details[ids["message"]][-1]
                client.disconnect()
            finally:
                proc.send_signal(signal.SIGTERM)
                out, _ = proc.communicate(timeout=30)
            assert proc.returncode == 0, out.decode()[-2000:]


def _disk_usage() -> list[dict[str, float]]:
    from agents.platform import current_platform

    return current_platform().heartbeat()["disk"]


def _incident(engine, code: str):
    with engine.connect() as conn:
        return conn.execute(select(Incident).where(Incident.code == code).order_by(Incident.id.desc())).first()


def _commands(engine, device_pk: int) -> dict[str, str]:
    ids = {name: str(uuid.uuid4()) for name in ("message", "expired", "unknown")}
    with engine.begin() as conn:
        for cid in ids.values():
            conn.execute(Command.__table__.insert().values(
                id=cid, device_id=device_pk, action="message", args={}, state="sent",
                expires=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5), created_at=dt.datetime.now(dt.UTC)))
    return ids


def _states(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(Command.id, Command.state)).all())


def _acks(engine, device_pk: int) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(Observation.data).where(Observation.device_id == device_pk,
                                                            Observation.kind == "cmd/ack")
                            .order_by(Observation.seq)).scalars().all()
    return list(rows)


def _ack_states(engine, device_pk: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ack in _acks(engine, device_pk):
        out.setdefault(ack["id"], []).append(ack["state"])
    return out


def _ack_details(engine, device_pk: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ack in _acks(engine, device_pk):
        out.setdefault(ack["id"], []).append(str(ack.get("detail", "")))
    return out


