"""The shared poller loop reports its own health into the controller's registry: round and check
durations, rounds, and checks that got no answer, labelled by poller kind only."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from controller.metrics import build_registry, poll_metrics, render_metrics
from controller.pollers.pjlink.check import CheckSettings
from controller.pollers.pjlink.service import PJLinkPoller
from controller.pollers.pjlink.simulator import ProjectorSimulator, SimProjector
from controller.store import db
from controller.store.models import Device
from tests.helpers import add_school

pytestmark = pytest.mark.integration
SETTINGS = CheckSettings(connect_timeout_s=1.0, read_timeout_s=0.5, check_timeout_s=3.0)


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = render_metrics(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_rounds_checks_and_failures_are_measured_per_poller_kind(sqlite_url):
    engine = db.make_engine(sqlite_url)
    add_school(engine, "s1")
    sim = ProjectorSimulator().start()
    try:
        ok_port = sim.add(SimProjector())
        dead_port = sim.add(SimProjector(), listening=False)
        with Session(engine) as session, session.begin():
            session.add_all([Device(school_id="s1", uid=f"pj-{n}", kind="projector", watched_by="pjlink",
                                    mgmt_address=f"127.0.0.1:{port}") for n, port in (("ok", ok_port),
                                                                                     ("dead", dead_port))])
        registry, _ = build_registry(engine, 180)
        poller = PJLinkPoller(engine, interval_s=0.3, settings=SETTINGS, environ={}, max_backoff_s=0)
        poller.bind_metrics(poll_metrics(registry))
        before = _samples(registry)
        assert before[("classfleet_poll_rounds_total", (("poller", "pjlink"),))] == 0  # declared at bind
        poller.start()
        try:
            assert poller.wait_rounds(3, 30)
        finally:
            poller.stop()
        after = _samples(registry)
    finally:
        sim.stop()
        engine.dispose()
    label = (("poller", "pjlink"),)
    rounds = after[("classfleet_poll_rounds_total", label)]
    assert rounds >= 3
    assert after[("classfleet_poll_duration_seconds_count", label)] == rounds
    assert after[("classfleet_poll_duration_seconds_sum", label)] > 0
    # two projectors a round: one answers, one refuses the connection (checked, timed, and counted as failed)
    assert after[("classfleet_poll_check_duration_seconds_count", label)] == 2 * rounds
    assert after[("classfleet_poll_check_failures_total", label)] == rounds
    assert after[("classfleet_poll_round_errors_total", label)] == 0
    assert {dict(k[1]).get("poller") for k in after if k[0].startswith("classfleet_poll_")} == {"pjlink"}
