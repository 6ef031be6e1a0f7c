"""The console's device page shows the latest reading of a plug (on/off, W, kWh, when) and of a projector (power,
input, lamp hours), in Vietnamese and English; an agent's page has no such section."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller.store import db
from tests.controller.api.test_device_readings import seed_readings
from tests.controller.console.seed import log_in
from tests.helpers import make_app, make_user

pytestmark = pytest.mark.integration


def test_device_page_shows_the_latest_reading(db_url: str, tmp_path: Any) -> None:
    engine = db.make_engine(db_url)
    try:
        ids = seed_readings(engine)
        make_user(engine, "tech-a", "technician", schools=("a",))
        client = TestClient(make_app(engine, tmp_path))
        log_in(client, "tech-a")
        plug = client.get(f"/console/devices/{ids['tasmota']}")
        assert plug.status_code == 200
        assert "Số đo gần nhất" in plug.text and "Công tắc</dt><dd>Bật" in plug.text
        assert "Công suất (W)</dt><dd>845</dd>" in plug.text and "152,37" in plug.text  # vi decimal comma
        plug_en = client.get(f"/console/devices/{ids['tasmota']}", params={"lang": "en"})
        assert "Latest reading" in plug_en.text and "Switch</dt><dd>On" in plug_en.text
        assert "Energy meter (kWh)</dt><dd>152.37</dd>" in plug_en.text
        projector = client.get(f"/console/devices/{ids['projector']}", params={"lang": "en"})
        assert "Projector power</dt><dd>On</dd>" in projector.text
        assert "Input</dt><dd>digital 1 (31)</dd>" in projector.text
        assert "Lamp hours</dt><dd>1,850</dd>" in projector.text
        assert "Switch</dt>" not in projector.text  # no plug figures on a projector
        pc = client.get(f"/console/devices/{ids['pc']}")
        assert pc.status_code == 200 and "Số đo gần nhất" not in pc.text
        assert client.get(f"/console/devices/{ids['other']}").status_code in (403, 404)  # school b
    finally:
        engine.dispose()
