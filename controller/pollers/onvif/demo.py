"""Simulated cameras and an NVR for ``classfleet demo``: started on loopback and registered in the store.

The demo shows each camera fault once: one camera runs 10 minutes fast and is strict about
WS-Security timestamps (``camera.time_drift``), one has had its password changed
(``camera.auth_failed``), and the NVR has a channel with no video (``camera.no_stream`` and a
``down`` channel). The credentials live in a generated environment mapping handed to the poller,
never in the store (``credential_ref`` names the variable).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from controller.store.models import Device

from .simulator import CameraSimulator, SimCamera

CREDENTIAL_VARIABLE = "CLASSFLEET_DEMO_ONVIF"


@dataclass
class DemoCameras:
    """The running simulator, the devices it backs and the environment the poller needs."""

    simulator: CameraSimulator
    device_ids: list[int]
    environ: Mapping[str, str] = field(repr=False)

    def stop(self) -> None:
        """Stop every simulated camera."""
        self.simulator.stop()


def start_demo_cameras(engine: Engine, school_id: str, cameras: int = 4, nvr_channels: int = 4,
                       room_id: int | None = None) -> DemoCameras:
    """Start ``cameras`` cameras and one NVR on free loopback ports and register them (idempotent by uid)."""
    password = secrets.token_urlsafe(12)
    fleet: list[tuple[str, str, SimCamera]] = []
    for i in range(1, cameras + 1):
        cam = SimCamera(password=password, serial=f"DEMO-CAM-{i:02d}", model="SimCam-2")
        if i == 2:
            cam.clock_offset_s, cam.strict = 600.0, True
        if i == 3:
            cam.password = secrets.token_urlsafe(12)  # someone changed it on the camera
        fleet.append((f"cam-{i:02d}", "camera", cam))
    if nvr_channels:
        dead = frozenset({min(3, nvr_channels)}) if nvr_channels > 1 else frozenset()
        fleet.append(("nvr-01", "nvr", SimCamera(password=password, serial="DEMO-NVR-01", model="SimNVR-16",
                                                 channels=nvr_channels, dead_channels=dead)))
    sim = CameraSimulator().start()
    ids: list[int] = []
    try:
        with Session(engine) as session, session.begin():
            nvr_id: int | None = None
            for uid, kind, cam in reversed(fleet):  # the NVR first, so cameras can hang off it
                port = sim.add(cam)
                device = session.scalar(select(Device).where(Device.school_id == school_id, Device.uid == uid))
                if device is None:
                    device = Device(school_id=school_id, uid=uid, kind=kind, room_id=room_id)
                    session.add(device)
                device.name = f"Demo {kind} {uid}"
                device.watched_by = "onvif"
                device.mgmt_address = f"127.0.0.1:{port}"
                device.credential_ref = CREDENTIAL_VARIABLE
                session.flush()
                if kind == "nvr":
                    nvr_id = device.id
                elif nvr_id is not None:
                    device.parent_id = nvr_id
                ids.append(device.id)
    except Exception:
        sim.stop()
        raise
    return DemoCameras(sim, ids, {CREDENTIAL_VARIABLE: f"admin:{password}"})
