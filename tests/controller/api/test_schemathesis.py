"""schemathesis over the whole OpenAPI of the running API, as an admin: no request gets a 5xx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controller.store import db
from tests.helpers import add_school, make_app, make_user, serve_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(600)
def test_no_server_errors_anywhere(sqlite_url, tmp_path):
    engine = db.make_engine(sqlite_url)
    add_school(engine, "s1")
    auth = make_user(engine, "admin", "admin", all_schools=True)
    st = Path(sys.executable).with_name("st")
    with serve_app(make_app(engine, tmp_path)) as base:
        result = subprocess.run(
            [str(st), "run", f"{base}/openapi.json", "-H", f"Authorization: {auth['Authorization']}",
             "--checks", "not_a_server_error", "--max-examples", "25", "--seed", "20261129", "--no-color"],
            capture_output=True, text=True, timeout=550, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    engine.dispose()
