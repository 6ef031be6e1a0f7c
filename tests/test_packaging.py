"""The agent installs light: ``classfleet[agent]`` resolves without FastAPI or SQLAlchemy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTROLLER_ONLY = {"fastapi", "sqlalchemy", "alembic", "uvicorn", "psycopg", "pysnmp", "onvif-zeep-async",
                   "prometheus-client", "starlette", "typer", "zeep"}


def _resolve(extra: str, tmp_path: Path) -> set[str]:
    report = tmp_path / f"report-{extra}.json"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
         "--disable-pip-version-check", "--report", str(report), f"{ROOT}[{extra}]"],
        check=True, timeout=600, capture_output=True,
    )
    installs = json.loads(report.read_text())["install"]
    return {item["metadata"]["name"].lower().replace("_", "-") for item in installs}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_agent_extra_resolves_without_controller_dependencies(tmp_path):
    names = _resolve("agent", tmp_path)
    assert {"classfleet", "pydantic", "paho-mqtt", "psutil"} <= names
    assert not names & CONTROLLER_ONLY, f"agent install would pull {sorted(names & CONTROLLER_ONLY)}"


def test_agent_and_contract_import_without_controller_modules():
    code = ("import sys, agents.core, agents.cli, agents.facts, classfleet_wire; "
            "bad = [m for m in ('fastapi', 'sqlalchemy', 'controller', 'prometheus_client') if m in sys.modules]; "
            "sys.exit(f'imported {bad}') if bad else None")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_console_scripts_are_declared():
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"classfleet": "controller.cli:main", "classfleet-agent": "agents.cli:main"}
