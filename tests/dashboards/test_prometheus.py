"""The dashboards and alert rules against a real Prometheus (Debian's) scraping a real controller app:
promtool accepts the exposition and the rules, every query parses, and every panel returns data."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy.orm import Session

from controller.api.app import create_app
from controller.broker import free_port
from controller.config import Settings
from controller.metrics import build_registry, poll_metrics
from controller.store import db
from controller.store.models import Device, District, EquipmentPlan, Room, School
from controller.store.polls import ComponentStatus, FaultCheck, PollResult, record_polls
from tests.helpers import serve_app, stop_process, wait_for, write_online_pcs

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
pytestmark = pytest.mark.integration


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install -y prometheus (.ci/install-test-deps does this)")
    return path


@contextlib.contextmanager
def prometheus(target: str, workdir: Path, token_file: Path | None = None) -> Iterator[str]:
    """Debian's prometheus on a free loopback port scraping ``target`` (host:port) every second, with the
    bearer token in ``token_file`` if given and the alert rules loaded; yields its query URL."""
    port = free_port()
    scrape: dict = {"job_name": "classfleet", "metrics_path": "/metrics", "static_configs": [{"targets": [target]}]}
    if token_file is not None:
        scrape["authorization"] = {"credentials_file": str(token_file)}
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DASHBOARDS / "alerts.yml")],
        "scrape_configs": [scrape],
    }))
    proc = subprocess.Popen([_binary("prometheus"), f"--config.file={config}",
                             f"--storage.tsdb.path={workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}/api/v1/query"
    finally:
        stop_process(proc, signal.SIGTERM, 20)


def query(api: str, expr: str) -> dict:
    """Prometheus's answer to an instant query."""
    return httpx.get(api, params={"query": expr}, timeout=10).json()


def wait_scraped_twice(api: str, what: str) -> None:
    """Wait (60 s at most) until Prometheus has scraped the controller twice, so rate() has two points."""
    def scraped_twice() -> bool:
        try:
            result = query(api, 'count_over_time(up{job="classfleet"}[1m])')["data"]["result"]
        except (httpx.HTTPError, KeyError, ValueError):
            return False
        return bool(result) and float(result[0]["value"][1]) >= 2

    wait_for(scraped_twice, timeout=60, interval=0.5, what=what)


def _seed(engine) -> None:
    now = dt.datetime.now(dt.UTC)
    with Session(engine) as session, session.begin():
        session.add(District(id="d1", name="Quận 1"))
        session.add(School(id="demo-school-1", name="THCS Demo", district_id="d1"))
        session.flush()
        lab = Room(school_id="demo-school-1", code="lab-1", name="Phòng máy", kind="computer_lab")
        session.add_all([lab, Room(school_id="demo-school-1", code="sm2-1", name="Phòng TM", kind="smart_l2")])
        session.flush()
        session.add_all([EquipmentPlan(school_id="demo-school-1", room_kind="computer_lab", device_kind="pc",
                                       planned=3),
                         Device(school_id="demo-school-1", uid="sw-core", kind="switch", watched_by="snmp",
                                is_school_uplink=True),
                         Device(school_id="demo-school-1", uid="cam-1", kind="camera", watched_by="onvif")])
    write_online_pcs(engine, "demo-school-1", 3, now)
    with Session(engine) as session:
        ids = dict(session.query(Device.uid, Device.id).all())
    record_polls(engine, [
        PollResult(ids["sw-core"], now, True, faults=(FaultCheck("switch.rebooted", True),), components=(
            ComponentStatus("port", 1, "up", "Gi1/0/1", {"uplink": "configured"}),
            ComponentStatus("port", 2, "down", "Gi1/0/2"))),
        PollResult(ids["cam-1"], now, False, faults=(FaultCheck("camera.unreachable", True),)),
    ])


def _seed_polls(registry) -> None:
    """What a poller's rounds leave in the registry (the pollers themselves run in the demo's test)."""
    polls = poll_metrics(registry)
    polls.declare("onvif")
    polls.round_seconds.labels("onvif").observe(0.4)
    polls.rounds.labels("onvif").inc()
    polls.check_seconds.labels("onvif").observe(0.05)


def _expressions() -> list[tuple[str, str, bool]]:
    """(where, PromQL, must return data) for every dashboard target and alert rule."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                out.append((f"{path.name}: {panel['title']}", target["expr"], True))
    for group in yaml.safe_load((DASHBOARDS / "alerts.yml").read_text())["groups"]:
        for rule in group["rules"]:
            out.append((f"alerts.yml: {rule['alert']}", rule["expr"], False))
    return out


def _substitute(expr: str) -> str:
    """Grafana's variables as a user with one school selected would send them."""
    expr = expr.replace("$__rate_interval", "1m").replace("${datasource}", "")
    return re.sub(r"\$(school|room_kind)", lambda m: "demo-school-1" if m.group(1) == "school" else ".*", expr)


def test_promtool_accepts_the_exposition_and_the_rules(sqlite_url, tmp_path):
    engine = db.make_engine(sqlite_url)
    _seed(engine)
    registry, _ = build_registry(engine, 180)
    _seed_polls(registry)
    with serve_app(create_app(Settings(data_dir=tmp_path, metrics_token="s3cret"), engine, registry)) as url:
        text = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer s3cret"}).text
    checked = subprocess.run([_binary("promtool"), "check", "metrics"], input=text, capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = subprocess.run([_binary("promtool"), "check", "rules", str(DASHBOARDS / "alerts.yml")],
                           capture_output=True, text=True, timeout=60)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    engine.dispose()


def test_every_dashboard_query_returns_data_in_a_real_prometheus(sqlite_url, tmp_path):
    engine = db.make_engine(sqlite_url)
    _seed(engine)
    registry, _ = build_registry(engine, 180)
    _seed_polls(registry)
    with serve_app(create_app(Settings(data_dir=tmp_path, metrics_token="s3cret"), engine, registry)) as url:
        token_file = tmp_path / "token"
        token_file.write_text("s3cret")
        with prometheus(url.removeprefix("http://"), tmp_path, token_file) as api:
            wait_scraped_twice(api, "two scrapes")
            time.sleep(1.5)  # let rate() windows hold two points of the counters
            failures = []
            for where, expr, needs_data in _expressions():
                answer = query(api, _substitute(expr))
                if answer.get("status") != "success":
                    failures.append(f"{where}: {answer.get('error')} in {expr}")
                elif needs_data and not answer["data"]["result"]:
                    failures.append(f"{where}: no data for {_substitute(expr)}")
            assert not failures, "\n".join(failures)
    engine.dispose()


def test_the_deploy_prometheus_config_is_valid_and_uses_the_token(tmp_path):
    text = (DASHBOARDS.parent / "deploy/prometheus/prometheus.yml").read_text()
    config = yaml.safe_load(text)
    assert config["scrape_configs"][0]["authorization"]["credentials_file"]
    (tmp_path / "token").write_text("t")
    shutil.copy(DASHBOARDS / "alerts.yml", tmp_path / "alerts.yml")
    local = text.replace("/etc/prometheus/classfleet-alerts.yml", str(tmp_path / "alerts.yml")) \
                .replace("/etc/prometheus/classfleet.token", str(tmp_path / "token"))
    (tmp_path / "prometheus.yml").write_text(local)
    checked = subprocess.run([_binary("promtool"), "check", "config", str(tmp_path / "prometheus.yml")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
