"""Simulated projectors for ``classfleet demo``: started on loopback and registered in the store.

The demo shows each projector fault once, over a fleet of healthy class 2 projectors behind a
PJLink password: one lamp past its model's end-of-life hours (``projector.lamp_end_of_life``), one
with a fan error and a clogged-filter warning (``projector.error.fan``, ``projector.error.filter``),
one whose password was changed on the projector (``projector.auth_failed``) and one older class 1
projector without a password. The password lives in a generated environment mapping handed to the
poller, never in the store (``credential_ref`` names the variable).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from controller.store.models import Device

from .simulator import ProjectorSimulator, SimProjector

CREDENTIAL_VARIABLE = "CLASSFLEET_DEMO_PJLINK"


@dataclass
class DemoProjectors:
    """The running simulator, the devices it backs and the environment the poller needs."""

    simulator: ProjectorSimulator
    device_ids: list[int]
    environ: Mapping[str, str] = field(repr=False)

    def stop(self) -> None:
        """Stop every simulated projector."""
        self.simulator.stop()


def demo_fleet(n: int, password: str) -> list[SimProjector]:
    """``n`` projectors; the first four (as many as there are) each show one kind of trouble."""
    fleet = [SimProjector(password=password, pjlink_class=2, serial=f"DEMO-PJ-{i:02d}", name=f"Projector {i}",
                          lamp_hours=[400 + 137 * i]) for i in range(1, n + 1)]
    if n >= 1:
        fleet[0].lamp_hours = [3150]  # past SimProjector-1's 3000 h
    if n >= 2:
        fleet[1].set_error("fan", "error")
        fleet[1].set_error("filter", "warning")
    if n >= 3:
        fleet[2].password = secrets.token_urlsafe(8)  # someone changed it on the projector
    if n >= 4:
        fleet[3].password, fleet[3].pjlink_class, fleet[3].model = None, 1, "SimProjector-2 Eco"
    return fleet


def start_demo_projectors(engine: Engine, school_id: str, n: int = 4, room_id: int | None = None) -> DemoProjectors:
    """Start ``n`` projectors on free loopback ports and register them (idempotent by uid)."""
    password = secrets.token_urlsafe(12)
    fleet = demo_fleet(n, password)
    sim = ProjectorSimulator().start()
    ids: list[int] = []
    try:
        with Session(engine) as session, session.begin():
            for i, projector in enumerate(fleet, start=1):
                port = sim.add(projector)
                uid = f"projector-{i:02d}"
                device = session.scalar(select(Device).where(Device.school_id == school_id, Device.uid == uid))
                if device is None:
                    device = Device(school_id=school_id, uid=uid, kind="projector", room_id=room_id)
                    session.add(device)
                device.name = f"Demo projector {i}"
                device.watched_by = "pjlink"
                device.mgmt_address = f"127.0.0.1:{port}"
                device.credential_ref = CREDENTIAL_VARIABLE if i != 4 else None
                session.flush()
                ids.append(device.id)
    except Exception:
        sim.stop()
        raise
    return DemoProjectors(sim, ids, {CREDENTIAL_VARIABLE: password})
