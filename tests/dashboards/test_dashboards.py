"""Dashboards query only metrics the controller really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from controller.metrics import build_registry, render_metrics
from controller.store import db

DASHBOARDS = sorted((Path(__file__).resolve().parents[2] / "dashboards").glob("*.json"))
SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


def _exported_names(sqlite_url: str) -> set[str]:
    registry, _ = build_registry(db.make_engine(sqlite_url), 180)
    text = render_metrics(registry).decode()
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


def test_dashboards_have_stable_uids_unique_panels_and_their_variables():
    uids = set()
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        names = {v["name"] for v in dashboard["templating"]["list"]}
        assert "datasource" in names
        assert path.name == "controller.json" or "school" in names  # fleet dashboards filter by school
        assert dashboard["uid"].startswith("classfleet-") and dashboard["uid"] not in uids
        uids.add(dashboard["uid"])
    assert len(DASHBOARDS) >= 6


def test_the_dashboard_files_are_what_build_py_writes(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("build", DASHBOARDS[0].parent / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    for name, content in build.DASHBOARDS.items():
        assert json.loads((DASHBOARDS[0].parent / name).read_text()) == content, f"run dashboards/build.py: {name}"
