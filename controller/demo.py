"""``classfleet demo``: a simulated school fleet driven by the real agent code.

The agents are ``agents.core.Agent`` instances (session, spool, seq, commands, fault
detectors) fed with simulated facts; they talk MQTT to the controller's private broker like
real ones. Some fault and recover, a few go offline (their Last Will fires) and come back
later with a new session.

The school's network is simulated too (``DemoSwitches``): a core switch (the school's uplink) and a
24-port access switch, served over real SNMP by snmpsim on loopback from recordings this module
writes and keeps rewriting, so traffic counters grow, classroom ports go down and up as machines are
switched off and on, and one port with a bad cable keeps counting errors (``switch.port_errors``).

Air conditioners on smart plugs (``start_demo_plugs``): two Tasmota plugs and a Shelly Gen2 plug, simulated MQTT
clients of the same broker reporting relay state, power and energy, and one recurring schedule that switches the
first school's air conditioners off at 17:30 on school days, so the energy report and the schedules page have data.
"""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from agents.core import Agent, AgentConfig
from agents.facts import SimulatedFacts

from .store.models import Device, District, EquipmentPlan, Room, School

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
            _seed_plan(session, school_id, rooms, first=s == 0)
    return devices


def _seed_plan(session: Session, school_id: str, rooms: list[tuple[Room, str, int]], first: bool) -> None:
    """An equipment plan for the audit: every room full (fewer agents than seats show as missing), two
    more laptops, air conditioners for the computer labs (not registered: the audit lists them missing)
    and, in the first school, its switches, camera system and projectors. Existing lines are left alone."""
    planned: dict[tuple[str, str], int] = {}
    for room, device_kind, capacity in rooms:
        planned[(room.kind, device_kind)] = planned.get((room.kind, device_kind), 0) + capacity
        if room.kind == "computer_lab":
            planned[(room.kind, "air_conditioner")] = planned.get((room.kind, "air_conditioner"), 0) + 2
    if ("smart_l2", "laptop") in planned:
        planned[("smart_l2", "laptop")] += 2
    if first:
        planned.update({("office", "switch"): 2, ("corridor", "camera"): 4, ("corridor", "nvr"): 1,
                        ("smart_l1", "projector"): 4})
    known = set(session.execute(select(EquipmentPlan.room_kind, EquipmentPlan.device_kind)
                                .where(EquipmentPlan.school_id == school_id)).tuples())
    session.add_all([EquipmentPlan(school_id=school_id, room_kind=room_kind, device_kind=device_kind, planned=n)
                     for (room_kind, device_kind), n in sorted(planned.items())
                     if (room_kind, device_kind) not in known])


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


# --- the school's network: simulated SNMP switches ---------------------------------------------------

SNMP_CREDENTIAL_PREFIX = "CLASSFLEET_DEMO_SNMP_"  # one variable per switch: its community (= snmpsim's file)
SYS, IF, IFX = "1.3.6.1.2.1.1", "1.3.6.1.2.1.2.2.1", "1.3.6.1.2.1.31.1.1.1"
ENT, LLDP_LOC, LLDP_REM = "1.3.6.1.2.1.47.1.1.1.1", "1.0.8802.1.1.2.1.3.7.1", "1.0.8802.1.1.2.1.4.1.1"
BAD_CABLE_ERRORS_PER_S = 6.0  # above the poller's 1/s threshold: switch.port_errors stays open


@dataclass
class SimPort:
    """One simulated port: its names, speed, state and running counters."""

    index: int
    name: str
    speed_mbps: int
    alias: str = ""
    up: bool = True
    admin_up: bool = True
    rate_bps: float = 0.0  # received; sent is a share of it
    errors_per_s: float = 0.0
    in_octets: int = 0
    out_octets: int = 0
    errors: int = 0
    neighbour: str | None = None  # LLDP: the switch on the other end

    def advance(self, seconds: float) -> None:
        """Count the traffic (and errors) of ``seconds`` while the port is up."""
        if self.up and self.admin_up:
            self.in_octets += int(self.rate_bps / 8 * seconds)
            self.out_octets += int(self.rate_bps / 8 * seconds * 0.4)
            self.errors += int(self.errors_per_s * seconds)


@dataclass
class SimSwitch:
    """A simulated switch: what it says about itself, and its ports."""

    community: str
    uid: str
    name: str
    model: str
    serial: str
    booted: float  # Unix time
    ports: list[SimPort]
    uplink: str | None = None  # the configured uplink port (poll_profile), None: the poller infers it
    school_uplink: bool = False

    def snmprec(self, now: float) -> str:
        """The switch as an snmpsim recording (``oid|type|value`` lines in OID order)."""
        lines = [f"{SYS}.1.0|4|SIMULATED classfleet demo switch {self.model}",
                 f"{SYS}.2.0|6|1.3.6.1.4.1.8072.3.2.10", f"{SYS}.3.0|67|{int((now - self.booted) * 100)}",
                 f"{SYS}.4.0|4|demo@classfleet.invalid", f"{SYS}.5.0|4|{self.uid}", f"{SYS}.6.0|4|{self.name}"]
        lines += [f"{ENT}.2.1|4|{self.model} chassis", f"{ENT}.5.1|2|3", f"{ENT}.7.1|4|{self.model}",
                  f"{ENT}.9.1|4|", f"{ENT}.10.1|4|15.2(7)E-demo", f"{ENT}.11.1|4|{self.serial}",
                  f"{ENT}.12.1|4|classfleet demo", f"{ENT}.13.1|4|{self.model}"]
        for p in self.ports:
            i = p.index
            oper = 1 if p.up and p.admin_up else 2
            lines += [f"{IF}.1.{i}|2|{i}", f"{IF}.2.{i}|4|{p.name}", f"{IF}.3.{i}|2|6",
                      f"{IF}.5.{i}|66|{min(p.speed_mbps * 1_000_000, 4_294_967_295)}",
                      f"{IF}.7.{i}|2|{1 if p.admin_up else 2}", f"{IF}.8.{i}|2|{oper}",
                      f"{IF}.10.{i}|65|{p.in_octets % 2**32}", f"{IF}.14.{i}|65|{p.errors % 2**32}",
                      f"{IF}.16.{i}|65|{p.out_octets % 2**32}", f"{IF}.20.{i}|65|0",
                      f"{IFX}.1.{i}|4|{p.name}", f"{IFX}.6.{i}|70|{p.in_octets}", f"{IFX}.10.{i}|70|{p.out_octets}",
                      f"{IFX}.15.{i}|66|{p.speed_mbps}", f"{IFX}.18.{i}|4|{p.alias}",
                      f"{LLDP_LOC}.3.{i}|4|{p.name}", f"{LLDP_LOC}.4.{i}|4|{p.alias}"]
            if p.neighbour and p.up:
                lines += [f"{LLDP_REM}.5.0.{i}.1|4|{p.neighbour}", f"{LLDP_REM}.7.0.{i}.1|4|uplink",
                          f"{LLDP_REM}.8.0.{i}.1|4|to {self.uid}", f"{LLDP_REM}.9.0.{i}.1|4|{p.neighbour}"]
        return "\n".join(sorted(lines, key=lambda line: tuple(int(x) for x in line.split("|", 1)[0].split(".")))) \
            + "\n"


def demo_switches(school_id: str, now: float, rng: random.Random) -> list[SimSwitch]:
    """The school's core switch (its uplink to the district) and a 24-port access switch for the classrooms."""
    core_ports = [SimPort(1, "Te1/0/1", 10_000, "uplink: district network", rate_bps=40e6),
                  SimPort(2, "Te1/0/2", 10_000, "to access switch", rate_bps=30e6, neighbour=f"{school_id}-sw-access"),
                  SimPort(3, "Gi1/0/3", 1000, "NVR", rate_bps=12e6),
                  SimPort(4, "Gi1/0/4", 1000, "wifi AP", rate_bps=3e6),
                  SimPort(5, "Gi1/0/5", 1000, "office", rate_bps=1e6), SimPort(6, "Gi1/0/6", 1000, "", up=False),
                  SimPort(7, "Gi1/0/7", 1000, "", up=False), SimPort(8, "Gi1/0/8", 1000, "spare", admin_up=False)]
    access_ports = [SimPort(i, f"Gi1/0/{i}", 1000, f"classroom {i}", rate_bps=rng.uniform(0.2e6, 4e6),
                            up=rng.random() < 0.8) for i in range(1, 25)]
    access_ports[6].errors_per_s, access_ports[6].up, access_ports[6].alias = BAD_CABLE_ERRORS_PER_S, True, \
        "classroom 7 (bad cable)"
    access_ports += [SimPort(25, "Te1/0/25", 10_000, "to core", rate_bps=25e6, neighbour=f"{school_id}-sw-core"),
                     SimPort(26, "Te1/0/26", 10_000, "", up=False)]
    return [SimSwitch("demo-sw-core", "sw-core", "Core switch", "SIM-CORE-8X", "DEMO-SW-0001", now - 41 * 86400,
                      core_ports, uplink="Te1/0/1", school_uplink=True),
            SimSwitch("demo-sw-access", "sw-access-1", "Access switch, block A", "SIM-ACCESS-24G", "DEMO-SW-0002",
                      now - 9 * 86400, access_ports)]


def write_recordings(switches: list[SimSwitch], workdir: Path, now: float) -> None:
    """Write every switch's recording atomically (snmpsim re-indexes a file whose mtime changed; the files
    are rewritten seconds apart, never twice within the second its index was built)."""
    data, tmp = workdir / "data", workdir / "tmp"
    data.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(exist_ok=True)
    for switch in switches:
        staged = tmp / f"{switch.community}.snmprec"
        staged.write_text(switch.snmprec(now))
        os.replace(staged, data / f"{switch.community}.snmprec")


def _snmpsim_binary() -> Path | None:
    """snmpsim's responder beside this interpreter (a venv), else on PATH (the ``demo`` extra installs it)."""
    import shutil

    beside = Path(sys.executable).with_name("snmpsim-command-responder")
    if beside.exists():
        return beside
    found = shutil.which("snmpsim-command-responder")
    return Path(found) if found else None


# Run snmpsim through this: it asks Linux for SIGTERM when the demo dies, even by SIGKILL (PR_SET_PDEATHSIG
# survives exec), then becomes snmpsim. Done in the child's own interpreter, not in a preexec_fn, which is
# unsafe in a process that already runs threads.
DIE_WITH_PARENT = ("import ctypes, os, signal, sys\n"
                   "if sys.platform == 'linux':\n"
                   "    ctypes.CDLL(None).prctl(1, signal.SIGTERM)\n"
                   "    if os.getppid() != int(sys.argv[1]):\n"
                   "        sys.exit(0)\n"
                   "os.execv(sys.argv[2], sys.argv[2:])\n")


def _free_udp_port() -> int:
    """A loopback UDP port nothing is bound to right now (snmpsim's)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DemoSwitches:
    """snmpsim serving the demo's switches on loopback, and the thread that keeps their recordings moving."""

    switches: list[SimSwitch]
    workdir: Path
    port: int
    process: subprocess.Popen[bytes]
    device_ids: list[int]
    environ: Mapping[str, str] = field(repr=False)
    tick_s: float = 5.0
    flap_every_s: float = 20.0
    seed: int = 11
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def run(self) -> None:
        """Advance counters every ``tick_s``; now and then a classroom machine is switched off or on."""
        rng = random.Random(self.seed)
        last = next_flap = time.time()
        while not self._stop.wait(self.tick_s):
            now = time.time()
            for switch in self.switches:
                for p in switch.ports:
                    p.advance(now - last)
            last = now
            if now >= next_flap:
                next_flap = now + self.flap_every_s
                access = self.switches[-1]
                port = rng.choice([p for p in access.ports if p.name.startswith("Gi") and not p.errors_per_s])
                port.up = not port.up
                log.info("demo: %s port %s went %s", access.uid, port.name, "up" if port.up else "down")
            try:
                write_recordings(self.switches, self.workdir, now)
            except OSError as exc:  # a full disk must not end the demo
                log.warning("demo: cannot rewrite the switch recordings: %s", exc)

    def start(self) -> None:
        """Start moving the recordings."""
        self._thread = threading.Thread(target=self.run, name="demo-switches", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and snmpsim (terminate, then kill if it lingers)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_demo_switches(engine: Engine, school_id: str, workdir: Path, timeout_s: float = 60.0) -> DemoSwitches:
    """Write the recordings, start snmpsim on a free loopback UDP port and register the switches
    (idempotent by uid); raises ``RuntimeError`` when snmpsim is missing or does not start."""
    binary = _snmpsim_binary()
    if binary is None:
        raise RuntimeError("snmpsim is not installed: pip install 'classfleet[demo]'")
    now = time.time()
    switches = demo_switches(school_id, now, random.Random(5))
    write_recordings(switches, workdir, now)
    (workdir / "cache").mkdir(exist_ok=True)
    port = _free_udp_port()
    log_path = workdir / "snmpsim.log"
    env = {**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}  # else, as root, it drops to a user that cannot read here
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", DIE_WITH_PARENT, str(os.getpid()), str(binary), f"--data-dir={workdir / 'data'}",
             f"--cache-dir={workdir / 'cache'}", f"--agent-udpv4-endpoint=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    (workdir / "snmpsim.pid").write_text(f"{process.pid}\n")
    deadline = time.monotonic() + timeout_s
    while "Listening at UDP/IPv4 endpoint" not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
                process.wait(5)
            raise RuntimeError(f"snmpsim did not start: {log_path.read_text(errors='replace')[-1000:]}")
        time.sleep(0.1)
    environ = {f"{SNMP_CREDENTIAL_PREFIX}{s.uid.upper().replace('-', '_')}": s.community for s in switches}
    ids: list[int] = []
    try:
        with Session(engine) as session, session.begin():
            for switch in switches:
                device = session.scalar(select(Device).where(Device.school_id == school_id, Device.uid == switch.uid))
                if device is None:
                    device = Device(school_id=school_id, uid=switch.uid, kind="switch")
                    session.add(device)
                device.name, device.watched_by = switch.name, "snmp"
                device.mgmt_address = f"127.0.0.1:{port}"
                device.credential_ref = f"{SNMP_CREDENTIAL_PREFIX}{switch.uid.upper().replace('-', '_')}"
                device.poll_profile = f"switch;uplink={switch.uplink}" if switch.uplink else "switch"
                device.is_school_uplink = switch.school_uplink
                session.flush()
                ids.append(device.id)
    except Exception:
        process.kill()
        process.wait(5)
        raise
    demo = DemoSwitches(switches, workdir, port, process, ids, environ)
    demo.start()
    return demo


# --- air conditioners on smart plugs (Tasmota, Shelly Gen2) ------------------------------------------

@dataclass(frozen=True, slots=True)
class DemoPlug:
    """One demo air conditioner on a smart plug: where it sits and how its plug is addressed."""

    school: str
    uid: str
    name: str
    dialect: str  # watched_by: tasmota | shelly
    address: str  # Tasmota Topic / Shelly topic prefix (mgmt_address)
    load_w: float
    energy_kwh: float


def demo_plugs(schools: list[str]) -> list[DemoPlug]:
    """Two Tasmota plugs in the first school's computer lab (the plan has two air conditioners there) and a
    Shelly Plus Plug S in the last school's (the first school's with a one-school demo)."""
    first, last = schools[0], schools[-1]
    return [DemoPlug(first, "aircon-01", "Điều hòa phòng máy 1 (trái)", "tasmota", "tasmota_DEMO01", 920.0, 1250.0),
            DemoPlug(first, "aircon-02", "Điều hòa phòng máy 1 (phải)", "tasmota", "tasmota_DEMO02", 880.0, 1175.0),
            DemoPlug(last, "aircon-03", "Điều hòa phòng máy (Shelly)", "shelly", "shellyplusplugs-demo03", 1050.0,
                     980.0)]


DEMO_SCHEDULE_NAME = "Tắt điều hòa cuối ngày"  # the demo's recurring schedule, found again by this name


def seed_plugs(engine: Engine, plugs: list[DemoPlug], schedule_school: str) -> list[int]:
    """Register the plugs as air conditioners in each school's first computer lab, and one recurring schedule:
    ``power_off`` of every air conditioner of ``schedule_school`` at 17:30 on school days (idempotent; the
    schools keep the default timetable, Monday to Friday 07:00–17:00). Returns the plugs' device ids."""
    from .store.models import CommandSchedule

    ids: list[int] = []
    with Session(engine) as session, session.begin():
        for plug in plugs:
            room_id = session.scalar(select(Room.id).where(Room.school_id == plug.school, Room.kind == "computer_lab")
                                     .order_by(Room.code).limit(1))
            device = session.scalar(select(Device).where(Device.school_id == plug.school, Device.uid == plug.uid))
            if device is None:
                device = Device(school_id=plug.school, uid=plug.uid, kind="air_conditioner")
                session.add(device)
            device.name, device.room_id = plug.name, room_id
            device.watched_by, device.mgmt_address = plug.dialect, plug.address
            device.vendor = "Tasmota" if plug.dialect == "tasmota" else "Shelly"
            device.model = "Sonoff S31 (Tasmota)" if plug.dialect == "tasmota" else "Shelly Plus Plug S"
            session.flush()
            ids.append(device.id)
        if session.scalar(select(CommandSchedule.id).where(CommandSchedule.school_id == schedule_school,
                                                           CommandSchedule.name == DEMO_SCHEDULE_NAME)) is None:
            session.add(CommandSchedule(school_id=schedule_school, kind="air_conditioner", action="power_off",
                                        args={}, at_time="17:30", school_days_only=True, expires_in_s=3600,
                                        enabled=True, name=DEMO_SCHEDULE_NAME, created_by="demo"))
    return ids


@dataclass
class DemoPlugsRunner:
    """The demo's simulated plugs on the broker (anonymous, like the demo's agents: auth is off), and the
    thread that makes them report power and energy every ``report_s``, as Tasmota's TelePeriod does."""

    plugs: list[Any]  # SimulatedPlug
    device_ids: list[int]
    report_s: float = 60.0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def run(self) -> None:
        """Report until stopped; a plug whose connection hiccups reports again next time."""
        while not self._stop.wait(self.report_s):
            for plug in self.plugs:
                try:
                    plug.report()
                except Exception as exc:  # noqa: BLE001 - one plug's trouble must not stop the others
                    log.warning("demo: plug %s could not report: %s", plug.address, exc)

    def start(self) -> None:
        """Start the reporting thread."""
        self._thread = threading.Thread(target=self.run, name="demo-plugs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reporting and disconnect the plugs."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for plug in self.plugs:
            try:
                plug.stop()
            except Exception as exc:  # noqa: BLE001 - stopping the others matters more
                log.debug("demo: plug %s did not stop cleanly: %s", plug.address, exc)


def start_demo_plugs(engine: Engine, schools: list[str], broker_host: str, broker_port: int,
                     report_s: float = 60.0) -> DemoPlugsRunner:
    """Register the demo's plugs and their schedule, connect a simulated plug for each (its birth message and
    first report come on connect) and start their periodic reports."""
    from .adapters.simulator import SimulatedPlug

    specs = demo_plugs(schools)
    ids = seed_plugs(engine, specs, schools[0])
    plugs = [SimulatedPlug(p.dialect, p.address, broker_host, broker_port, load_w=p.load_w, energy_kwh=p.energy_kwh)
             for p in specs]
    runner = DemoPlugsRunner(plugs, ids, report_s)
    started: list[Any] = []
    try:
        for plug in plugs:
            plug.start()
            started.append(plug)
    except Exception:
        runner.plugs = started
        runner.stop()
        raise
    runner.start()
    return runner
