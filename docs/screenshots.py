"""Render the console's overview, a room and a device page in Vietnamese to docs/screenshots/*.png.

Not a test: run it by hand after changing the console (``.venv/bin/python docs/screenshots.py``). It seeds
a throwaway demo store, serves a real controller app on a free loopback port, logs in through the form and
photographs the pages with Playwright driving Debian's Chromium (``apt-get install chromium``; no download).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller.api.app import create_app  # noqa: E402
from controller.auth import create_user  # noqa: E402
from controller.broker import free_port, wait_for_port  # noqa: E402
from controller.config import Settings  # noqa: E402
from controller.demo import seed_fleet  # noqa: E402
from controller.store import db  # noqa: E402
from controller.store.models import (  # noqa: E402
    Command,
    Device,
    DeviceInventory,
    DeviceState,
    Incident,
    Observation,
    Room,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
USER, PASSWORD = "ky-thuat", "mat-khau-demo-123"
FAULTS = (("disk.low", "warning"), ("cpu.overheat", "critical"), ("display.missing", "critical"),
          ("mem.high", "warning"), ("time.skew", "warning"))


def seed(engine: Engine, now: dt.datetime) -> int:
    """A demo fleet with believable state: mostly healthy, a few offline, some faults; returns a device id to show."""
    rng = random.Random(7)
    seed_fleet(engine, schools=2, rooms_per_school=6, agents=90)
    with Session(engine) as session, session.begin():
        devices = session.scalars(select(Device).order_by(Device.school_id, Device.uid)).all()
        shown = next(d for d in devices if d.kind == "pc" and d.room_id is not None)
        for n, device in enumerate(devices):
            offline = n % 17 == 5
            seen = now - dt.timedelta(hours=3) if offline else now - dt.timedelta(seconds=rng.randint(5, 50))
            session.add(DeviceState(device_id=device.id, session=0, seq=100, last_seen=seen, online=not offline,
                                    hb_session=0, hb_seq=100, hb_ts=seen, uptime_s=rng.uniform(600, 30000),
                                    cpu_pct=rng.uniform(3, 60), mem_pct=rng.uniform(25, 80),
                                    disk_max_pct=rng.uniform(30, 85), temp_c=rng.uniform(38, 62),
                                    agent_version="1.0.0", profile=device.kind))
            if device is shown or (not offline and n % 9 == 2):
                code, severity = FAULTS[n % len(FAULTS)] if device is not shown else FAULTS[0]
                session.add(Incident(device_id=device.id, school_id=device.school_id, code=code, severity=severity,
                                     state="open", count=rng.randint(1, 4), opened_at=now - dt.timedelta(hours=2),
                                     last_seen=now - dt.timedelta(minutes=3), detail={}))
        cpu = 20.0
        for s in range(60):
            cpu = min(95.0, max(2.0, cpu + rng.uniform(-9, 9)))
            at = now - dt.timedelta(seconds=60 * (60 - s))
            session.add(Observation(device_id=shown.id, session=0, seq=s, kind="heartbeat", ts=at, received_at=at,
                                    data={"cpu_pct": round(cpu, 1)}))
        session.add(DeviceInventory(
            device_id=shown.id, hash="demo-inventory", session=0, seq=60, updated_at=now - dt.timedelta(hours=1),
            hardware={"hostname": shown.uid, "os": "Windows 10 Education 22H2", "cpu_model": "Intel Core i3-10100",
                      "ram_bytes": 8 * 2**30, "board_vendor": "Dell Inc.", "board_serial": "CN0ABC123"},
            software=[{"name": n} for n in ("LibreOffice", "Firefox", "Zoom", "Scratch", "GeoGebra", "Unikey")]))
        for i, (action, args, state, detail) in enumerate((
                ("message", {"text": "Giờ học kết thúc, hãy lưu bài"}, "done", "dry run: message shown"),
                ("collect_inventory", {}, "done", "inventory sent"),
                ("shutdown", {"delay_s": 300}, "pending", None))):
            at = now - dt.timedelta(minutes=30 - 10 * i)
            session.add(Command(id=f"demo-cmd-{i:04d}", device_id=shown.id, action=action, args=args, state=state,
                                expires=now + dt.timedelta(hours=1), created_at=at, created_by=USER,
                                updated_at=at, detail=detail))
        create_user(session, USER, PASSWORD, "technician", all_schools=True, actor="screenshots")
        return shown.id


def serve(app: Any) -> tuple[str, Any, threading.Thread]:
    """Serve the app with uvicorn on a free loopback port, in a thread."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    if not wait_for_port(port, timeout=10):
        raise SystemExit("the controller did not start")
    return f"http://127.0.0.1:{port}", server, thread


def main() -> int:
    """Seed, serve, log in, photograph; the PNGs go to docs/screenshots/ (or --out)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--width", type=int, default=1280)
    options = parser.parse_args()
    from playwright.sync_api import sync_playwright

    options.out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="classfleet-shots-") as tmp:
        url = f"sqlite:///{tmp}/classfleet.db"
        db.upgrade(url)
        engine = db.make_engine(url)
        device_id = seed(engine, now)
        with Session(engine) as session:
            room_id = session.scalar(select(Device.room_id).where(Device.id == device_id))
            assert session.get(Room, room_id) is not None
        app = create_app(Settings(data_dir=Path(tmp)), engine, CollectorRegistry())
        base, server, thread = serve(app)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": options.width, "height": 800}, locale="vi-VN")
                page.goto(f"{base}/console/login?lang=vi")
                page.fill("#u", USER)
                page.fill("#p", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url("**/console?lang=vi")
                for name, path in (("overview", "/console?lang=vi"), ("room", f"/console/rooms/{room_id}?lang=vi"),
                                   ("device", f"/console/devices/{device_id}?lang=vi")):
                    page.goto(base + path)
                    target = options.out / f"{name}.png"
                    page.screenshot(path=str(target), full_page=True)
                    print(target)
                browser.close()
        finally:
            server.should_exit = True
            thread.join(10)
            engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
