"""The console in a real browser (Playwright driving Debian's Chromium) against a real controller, broker and
agent: log in, switch to Vietnamese, acknowledge an incident, send a message and watch it go pending → done."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.config import AgentConfig
from agents.core import Agent
from agents.facts import SimulatedFacts
from controller.api.app import create_app
from controller.commands import CommandDispatcher
from controller.config import Settings
from controller.metrics import build_registry
from controller.store.models import Command, DeviceState, Incident
from tests.controller.console.seed import PASSWORD, seed
from tests.helpers import make_user, running_ingest, serve_app, wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                       reason=f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium; "
                              ".ci/install-test-deps should install it)"),
]


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium from Debian, driven by Playwright (no browser download)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class _AgentThread:
    """A real agent (dry run) running its own loop on a thread, as its service would; it is built on that
    thread because its in-memory spool may only be used there."""

    def __init__(self, school: str, device: str, port: int) -> None:
        self.config = AgentConfig(school=school, device=device, port=port, dry_run=True, heartbeat_interval_s=0.5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"agent-{device}", daemon=True)

    def _run(self) -> None:
        Agent(self.config, SimulatedFacts(seed=1)).run(self._stop)

    def __enter__(self) -> _AgentThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_a_technician_works_the_console_in_a_browser(browser, sqlite_url, broker, tmp_path):
    with running_ingest(sqlite_url, broker.port, client_id="console-browser") as (ingest, engine, _m):
        ids = seed(engine)
        make_user(engine, "tech-a", "technician", schools=("a",))
        registry, _ = build_registry(engine, 180)
        app = create_app(Settings(data_dir=tmp_path), engine, registry)
        with Session(engine, expire_on_commit=False) as session, session.begin():
            session.get(DeviceState, ids["a"]["pc1"]).online = False  # away until its agent starts below
        with serve_app(app) as base:
            page = browser.new_page(locale="en-US")
            page.set_default_timeout(15_000)

            # Log in through the form (in English), then switch to Vietnamese.
            page.goto(f"{base}/console")
            assert "/console/login" in page.url
            page.goto(f"{base}/console/login?lang=en")
            page.fill("#u", "tech-a")
            page.fill("#p", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/console?lang=en")
            assert page.inner_text("h1") == "Fleet overview"
            page.click("text=Tiếng Việt")
            page.wait_for_url("**lang=vi")
            assert page.inner_text("h1") == "Tổng quan thiết bị"
            assert "Thiết bị cần xử lý" in page.content() and "THCS B" not in page.content()

            # Acknowledge school A's incident from the incidents page.
            page.click("header >> text=Sự cố")
            row = page.locator(f"#incident-{ids['a']['incident']}")
            assert row.locator("td.state").inner_text() == "Mới"
            row.locator("button[name=ack]").click()
            page.wait_for_selector(".flash")
            assert page.inner_text(".flash") == f"Đã tiếp nhận sự cố #{ids['a']['incident']}."
            assert page.locator(f"#incident-{ids['a']['incident']} td.state").inner_text() == "Đã tiếp nhận"
            with Session(engine) as session:
                assert session.get(Incident, ids["a"]["incident"]).acknowledged_by == "tech-a"

            # Send a message to pc-a1 through the confirmation step: it waits, pending, while the PC is away.
            page.goto(f"{base}/console/devices/{ids['a']['pc1']}")
            page.select_option("#action", "message")
            page.fill("#text", "Giờ học kết thúc, hãy lưu bài")
            page.click("#send-command button[type=submit]")
            assert page.inner_text("h1") == "Xác nhận gửi lệnh"
            page.click("#confirm")
            page.wait_for_selector(".flash")
            assert page.inner_text(".flash") == "Đã xếp 1 lệnh vào hàng chờ."
            first = page.locator("#commands tbody tr").first
            assert first.locator("td[data-state]").get_attribute("data-state") == "pending"
            assert first.locator("td[data-state]").inner_text() == "Đang chờ"

            # The agent (dry run) comes online; the dispatcher sends the command; the page shows it done.
            dispatcher = CommandDispatcher(engine, ingest.publish, interval_s=0.2)
            with _AgentThread("a", "pc-a1", broker.port):
                wait_for(lambda: _online(engine, ids["a"]["pc1"]), timeout=20, what="the agent online")
                dispatcher.start()
                try:
                    def done() -> bool:
                        page.reload()
                        return page.locator("#commands tbody tr").first.locator(
                            "td[data-state]").get_attribute("data-state") == "done"

                    wait_for(done, timeout=30, interval=0.5, what="the command done on the page")
                finally:
                    dispatcher.stop()
            assert page.locator("#commands tbody tr").first.locator("td[data-state]").inner_text() == "Hoàn thành"
            with Session(engine) as session:
                command = session.scalar(select(Command).where(Command.created_by == "tech-a"))
                assert command.state == "done" and command.args == {"text": "Giờ học kết thúc, hãy lưu bài"}
            page.close()


def _online(engine: Any, device_id: int) -> bool:
    with Session(engine) as session:
        state = session.get(DeviceState, device_id)
        return bool(state and state.online)
