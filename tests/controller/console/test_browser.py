"""The console in a real browser (Playwright driving Debian's Chromium) against a real controller, broker and
agents: log in, switch to Vietnamese, acknowledge an incident, send a message and watch it go pending → done,
then schedule a message to a whole room a few seconds ahead (school time) and watch it wait, then go done."""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.config import AgentConfig
from agents.core import Agent
from agents.facts import SimulatedFacts
from controller.commands import CommandDispatcher
from controller.store.models import Command, DeviceState, Incident
from tests.controller.console.seed import PASSWORD, seed
from tests.helpers import make_app, make_user, running_ingest, serve_app, wait_for

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
        app = make_app(engine, tmp_path)
        with Session(engine, expire_on_commit=False) as session, session.begin():
            for pc in ("pc1", "pc2"):
                session.get(DeviceState, ids["a"][pc]).online = False  # away until their agents start below
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

            # The agents (dry run) come online; the dispatcher sends the command; the page shows it done.
            dispatcher = CommandDispatcher(engine, ingest.publish, interval_s=0.2)
            with _AgentThread("a", "pc-a1", broker.port), _AgentThread("a", "pc-a2", broker.port):
                for pc in ("pc1", "pc2"):
                    wait_for(lambda pc=pc: _online(engine, ids["a"][pc]), timeout=20, what=f"agent {pc} online")
                dispatcher.start()
                try:
                    def done() -> bool:
                        page.reload()
                        return page.locator("#commands tbody tr").first.locator(
                            "td[data-state]").get_attribute("data-state") == "done"

                    wait_for(done, timeout=30, interval=0.5, what="the command done on the page")
                    assert page.locator("#commands tbody tr").first.locator(
                        "td[data-state]").inner_text() == "Hoàn thành"
                    with Session(engine) as session:
                        command = session.scalar(select(Command).where(Command.created_by == "tech-a"))
                        assert command.state == "done" and command.args == {"text": "Giờ học kết thúc, hãy lưu bài"}
                    _schedule_for_the_room(page, base, engine, ids["a"]["room"])
                finally:
                    dispatcher.stop()
            page.close()


SCHEDULE_AHEAD_S = 8


def _schedule_for_the_room(page: Any, base: str, engine: Any, room_id: int) -> None:
    """From the room page: a message to every device of the room, a few seconds ahead in the school's time;
    it waits pending while the agents are online, then goes out and comes back done."""
    page.goto(f"{base}/console/rooms/{room_id}")
    assert page.is_checked(f"input[name=scope][value='room:{room_id}']")  # the room is the first choice here
    page.select_option("#action", "message")
    page.fill("#text", "Giờ ra chơi sắp hết")
    not_before = dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).replace(microsecond=0) + dt.timedelta(
        seconds=SCHEDULE_AHEAD_S)
    page.fill("#not_before", not_before.strftime("%Y-%m-%dT%H:%M:%S"))
    page.click("#send-command button[type=submit]")
    assert page.inner_text("h1") == "Xác nhận gửi lệnh"
    assert "tới 2 thiết bị của phòng Phòng máy A" in page.inner_text("#question")
    assert page.inner_text("#schedule").startswith(f"Gửi lúc {not_before:%H:%M}")
    page.click("#confirm")
    page.wait_for_selector(".flash")
    assert page.inner_text(".flash").startswith("Đã hẹn 2 lệnh, gửi lúc")
    with Session(engine) as session:
        scheduled = session.scalars(select(Command).where(Command.args["text"].as_string() == "Giờ ra chơi sắp hết")
                                    ).all()
    assert len(scheduled) == 2 and all(c.not_before == not_before for c in scheduled)
    cells = [page.locator(f"#command-{c.id} td[data-state]") for c in scheduled]
    assert [cell.get_attribute("data-state") for cell in cells] == ["pending", "pending"]
    # The agents are online and the dispatcher runs, yet nothing goes out before its time.
    if dt.datetime.now(dt.UTC) < not_before - dt.timedelta(seconds=2):
        page.wait_for_timeout(1000)
        with Session(engine) as session:
            assert {session.get(Command, c.id).state for c in scheduled} == {"pending"}

    def all_done() -> bool:
        page.reload()
        return [cell.get_attribute("data-state") for cell in cells] == ["done", "done"]

    wait_for(all_done, timeout=SCHEDULE_AHEAD_S + 30, interval=0.5, what="the room's scheduled commands done")
    assert page.locator(f"#command-{scheduled[0].id} td.steps span.now").inner_text() == "Hoàn thành"
    with Session(engine) as session:
        for c in scheduled:
            assert session.get(Command, c.id).updated_at >= not_before  # sent (and answered) only when due


def _online(engine: Any, device_id: int) -> bool:
    with Session(engine) as session:
        state = session.get(DeviceState, device_id)
        return bool(state and state.online)


def test_every_console_page_fits_a_phone_and_loads_nothing_from_elsewhere(browser, sqlite_url, tmp_path):
    """A technician on a 360-pixel phone: no page is wider than the screen (wide tables scroll inside their own
    box), and nothing is fetched from anywhere but the controller (no CDN: the console works offline)."""
    from controller.store import db

    engine = db.make_engine(sqlite_url)
    ids = seed(engine)
    make_user(engine, "tech-a", "technician", schools=("a",))
    with serve_app(make_app(engine, tmp_path)) as base:
        page = browser.new_page(locale="vi-VN", viewport={"width": 360, "height": 740}, is_mobile=True)
        page.set_default_timeout(15_000)
        elsewhere: list[str] = []
        page.on("request", lambda request: None if request.url.startswith(base) or request.url.startswith("data:")
                else elsewhere.append(request.url))
        page.goto(f"{base}/console/login")
        page.fill("#u", "tech-a")
        page.fill("#p", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/console**")
        paths = ["/console", "/console/schools/a", f"/console/rooms/{ids['a']['room']}",
                 f"/console/devices/{ids['a']['pc1']}", f"/console/devices/{ids['a']['board']}", "/console/incidents",
                 f"/console/incidents/{ids['a']['incident']}", "/console/audit", "/console/availability",
                 "/console/energy", "/console/import", "/console/schools/a/timetable", "/console/schools/a/maintenance"]
        too_wide = {}
        for path in paths:
            response = page.goto(f"{base}{path}")
            assert response is not None and response.status == 200, path
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > 361:
                too_wide[path] = width
        assert too_wide == {}, f"wider than a 360 px phone: {too_wide}"
        assert elsewhere == []
    engine.dispose()
