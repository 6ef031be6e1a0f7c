"""Fixtures for the PJLink poller tests: a running projector simulator (real TCP on loopback)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controller.pollers.pjlink.simulator import ProjectorSimulator


@pytest.fixture
def simulator() -> Iterator[ProjectorSimulator]:
    """A started simulator with no projectors yet; ``simulator.add(SimProjector(...))`` returns a port."""
    sim = ProjectorSimulator().start()
    try:
        yield sim
    finally:
        sim.stop()
