"""Fixtures for the ONVIF poller tests: a running camera simulator (real HTTP on loopback)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controller.pollers.onvif.simulator import CameraSimulator


@pytest.fixture
def simulator() -> Iterator[CameraSimulator]:
    """A started simulator with no cameras yet; ``simulator.add(SimCamera(...))`` returns a port."""
    sim = CameraSimulator().start()
    try:
        yield sim
    finally:
        sim.stop()
