"""Dashboards query only metrics the controller really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import generate_latest

from controller.metrics import build_registry
from controller.store import db

DASHBOARDS = sorted((Path(__file__).resolve().parents[2] / "dashboards").glob("*.json"))
SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


def _exported_names(sqlite_url: str) -> set[str]:
    registry, _ = build_registry(db.make_engine(sqlite_url), 180)
    text = generate_latest(registry).decode()
    names = set()
    for line in text.splitlines():
        if line.startswith(("# HELP", "# TYPE")):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_every_dashboard_metric_is_exported(sqlite_url):
    assert DASHBOARDS, "no dashboards found"
    exported = _exported_names(sqlite_url)
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        assert exprs, f"{path.name} has no queries"
        for expr in exprs:
            for name in re.findall(r"\bclassfleet_[a-z0-9_]+", expr):
                base = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)
                assert name in exported or base in exported, f"{path.name}: {name} is not exported"


def test_dashboards_have_unique_panel_ids_and_a_school_variable():
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        assert "school" in {v["name"] for v in dashboard["templating"]["list"]}
