"""``classfleet demo``: a simulated school fleet driven by the real agent code.

The agents are ``agents.core.Agent`` instances (session, spool, seq, commands, fault
detectors) fed with simulated facts; they talk MQTT to the controller's private broker like
real ones. Some fault and recover, a few go offline (their Last Will fires) and come back
later with a new session.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from agents.core import Agent, AgentConfig
from agents.facts import SimulatedFacts

from .store.models import Device, District, Room, School

log = logging.getLogger(__name__)

ROOM_PLAN = (  # (room kind, code prefix, name, device kind, devices per room)
    ("computer_lab", "lab", "Phòng máy", "pc", 30),
    ("smart_l2", "sm2", "Phòng học thông minh cấp 2", "laptop", 6),
    ("smart_l1", "sm1", "Phòng học thông minh cấp 1", "smart_board", 1),
    ("office", "off", "Văn phòng", "pc", 4),
)
PROFILE_OF = {"pc": "pc", "laptop": "laptop", "smart_board": "smart_board"}


@dataclass(frozen=True, slots=True)
class SimDevice:
    """One simulated device and where it sits."""

    school: str
    uid: str
    kind: str


def seed_fleet(engine: Engine, schools: int = 2, rooms_per_school: int = 10,
               agents: int = 200) -> list[SimDevice]:
    """Register a district, schools, rooms and devices (idempotent); returns the agent devices."""
    devices: list[SimDevice] = []
    with Session(engine) as session, session.begin():
        if session.get(District, "demo-district") is None:
            session.add(District(id="demo-district", name="Phòng GD&ĐT Demo"))
        for s in range(schools):
            school_id = f"demo-school-{s + 1}"
            per_school = agents // schools + (1 if s < agents % schools else 0)
            if session.get(School, school_id) is None:
                session.add(School(id=school_id, name=f"Trường THCS Demo {s + 1}", district_id="demo-district"))
                session.flush()
            room_specs = [ROOM_PLAN[i % len(ROOM_PLAN)] for i in range(rooms_per_school)]
            rooms: list[tuple[Room, str, int]] = []
            for i, (kind, prefix, name, device_kind, capacity) in enumerate(room_specs):
                code = f"{prefix}-{i + 1:02d}"
                room = session.scalar(select(Room).where(Room.school_id == school_id, Room.code == code))
                if room is None:
                    room = Room(school_id=school_id, code=code, name=f"{name} {i + 1}", kind=kind)
                    session.add(room)
                    session.flush()
                rooms.append((room, device_kind, capacity))
            # Seats interleaved room by room, so every room gets devices before any room fills up.
            seats = sorted(((n, r) for r, (_, _, cap) in enumerate(rooms) for n in range(cap)))
            for n, r in seats[:per_school]:
                room, device_kind, _ = rooms[r]
                uid = f"{room.code}-{device_kind.replace('_', '')}{n + 1:02d}"
                if session.scalar(select(Device.id).where(Device.school_id == school_id, Device.uid == uid)) is None:
                    session.add(Device(school_id=school_id, uid=uid, room_id=room.id, kind=device_kind,
                                       name=f"{room.name} #{n + 1}", watched_by="mqtt"))
                devices.append(SimDevice(school_id, uid, device_kind))
    return devices


class SimulatedFleet:
    """Drives many agents from one thread; paho runs each agent's network loop."""

    def __init__(self, devices: list[SimDevice], broker_host: str, broker_port: int,
                 heartbeat_interval_s: float = 10.0, seed: int = 7) -> None:
        self._rng = random.Random(seed)
        self.agents: list[Agent] = []
        for i, dev in enumerate(devices):
            config = AgentConfig(school=dev.school, device=dev.uid, host=broker_host, port=broker_port,
                                 profile=PROFILE_OF.get(dev.kind, "other"),
                                 heartbeat_interval_s=heartbeat_interval_s, inventory_check_interval_s=600)
            self.agents.append(Agent(config, SimulatedFacts(seed=i + 1, profile=config.profile)))
        self._offline: dict[int, float] = {}  # agent index -> when it comes back
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Connect every agent and start ticking them."""
        now = time.time()
        for agent in self.agents:
            agent.start()
            agent._next_heartbeat = now + self._rng.uniform(0.5, 3.0)  # stagger the first round
        self._thread = threading.Thread(target=self._run, name="sim-fleet", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_chaos = time.time() + 20
        while not self._stop.wait(0.25):
            now = time.time()
            for i, agent in enumerate(self.agents):
                if i not in self._offline:
                    agent.tick(now)
            if now >= next_chaos:
                next_chaos = now + 15
                self._chaos(now)

    def _chaos(self, now: float) -> None:
        """A few machines lose power (the Last Will fires); earlier ones come back as a new session."""
        for i, back_at in list(self._offline.items()):
            if now >= back_at:
                old = self.agents[i]
                agent = Agent(old.config, old.facts, initial_session=old.session + 1)
                agent.start()
                self.agents[i] = agent
                del self._offline[i]
        if len(self._offline) < max(2, len(self.agents) // 40):
            i = self._rng.randrange(len(self.agents))
            if i not in self._offline:
                agent = self.agents[i]
                # MQTT 5 reason 0x04 makes the broker publish the Last Will, as a power cut would.
                agent._client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message"))
                agent._client.loop_stop()
                self._offline[i] = now + self._rng.uniform(40, 120)
                log.info("demo: %s/%s went offline", agent.config.school, agent.config.device)

    def stop(self) -> None:
        """Stop ticking and disconnect every agent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for i, agent in enumerate(self.agents):
            if i not in self._offline:
                agent.stop(graceful=False)
