"""The one platform interface the agent talks to, its JSON-friendly records, and what Linux and Windows share.

The operating-system specifics live in ``linux.py`` and ``windows.py``; everything here is
psutil or plain Python, so both implementations (and their tests) behave alike where they can.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import shlex
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from .. import __version__

log = logging.getLogger(__name__)

PowerAction = Literal["reboot", "shutdown", "cancel"]
POWER_ACTIONS: tuple[str, ...] = ("reboot", "shutdown", "cancel")
MAX_DISKS = 64  # the wire contract's Heartbeat.disk bound
MAX_INTERFACES = 32
MAX_SOFTWARE = 3000
# The inventory payload must stay under the wire contract's 64 KiB with the hardware part beside it.
SOFTWARE_BUDGET_BYTES = 44_000
MAX_NOTICE_CHARS = 250
COMMAND_TIMEOUT_S = 20.0


class PlatformError(RuntimeError):
    """An action (power, notice) that the OS refused or that could not run: the command acks ``failed``."""


# ---- records ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Battery:
    """One machine's battery (all packs summed); ``health_pct`` is full-charge over design capacity."""

    percent: float | None
    plugged: bool | None
    health_pct: float | None
    # In the OS's own unit (µWh or µAh on Linux, mWh on Windows): only their ratio means anything.
    full_capacity: float | None = None
    design_capacity: float | None = None


@dataclass(frozen=True, slots=True)
class Display:
    """A connected display output (Linux: a DRM connector; Windows: an active monitor)."""

    name: str
    vendor: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class TouchDevice:
    """A touch screen input device (an interactive panel's touch frame, usually USB HID)."""

    name: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class IdentitySources:
    """The raw facts a stable device id is derived from (``agents.identity`` judges which are junk)."""

    hostname: str | None = None
    vendor: str | None = None
    model: str | None = None
    board_serial: str | None = None
    product_serial: str | None = None
    product_uuid: str | None = None
    machine_id: str | None = None  # /etc/machine-id, or Windows' MachineGuid: copied by disk images
    os_sid: str | None = None  # Windows machine SID: copied by disk images unless sysprepped
    macs: tuple[str, ...] = ()  # physical, universally administered, sorted, aa:bb:cc:dd:ee:ff

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for ``classfleet-agent facts`` and enrolment)."""
        data = asdict(self)
        data["macs"] = list(self.macs)
        return data


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a subprocess returned; ``None`` from a runner means it did not run at all."""

    returncode: int
    stdout: str
    stderr: str = ""


Runner = Callable[[Sequence[str], float], CommandResult | None]


def run_command(argv: Sequence[str], timeout: float = COMMAND_TIMEOUT_S) -> CommandResult | None:
    """Run a read-only query command with a timeout; a missing binary or a timeout is None, never a raise."""
    try:
        done = subprocess.run(list(argv), capture_output=True, timeout=timeout, check=False,  # noqa: S603
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("%s did not run: %s", argv[0], exc)
        return None
    return CommandResult(done.returncode, done.stdout.decode("utf-8", "replace"),
                         done.stderr.decode("utf-8", "replace"))


def run_action(argv: Sequence[str], timeout: float = COMMAND_TIMEOUT_S) -> None:
    """Run a power or notice command; failure raises ``PlatformError`` so the command acks ``failed``."""
    try:
        done = subprocess.run(list(argv), capture_output=True, timeout=timeout, check=False,  # noqa: S603
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        raise PlatformError(f"{argv[0]}: {exc}") from None
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip() or done.stdout.decode("utf-8", "replace").strip()
        raise PlatformError(f"{argv[0]} exited {done.returncode}: {err[:300]}")


# ---- the interface ------------------------------------------------------------------------------


@runtime_checkable
class Platform(Protocol):
    """One machine as the agent sees it; a superset of ``agents.facts.FactSource``."""

    def heartbeat(self) -> dict[str, Any]:
        """The wire Heartbeat's figures: uptime_s, cpu_pct, mem_pct, disk, temp_c."""
        ...

    def live_facts(self, services: list[str]) -> dict[str, Any]:
        """Detector inputs beyond the heartbeat (users, battery_*, displays, touch, services)."""
        ...

    def inventory(self) -> dict[str, Any]:
        """{"hardware": {...}, "software": [...]}, small enough for one wire Inventory payload."""
        ...

    def displays(self) -> list[Display] | None:
        """Connected displays; None when this machine cannot tell."""
        ...

    def touch_devices(self) -> list[TouchDevice] | None:
        """Touch screens; None when this machine cannot tell."""
        ...

    def battery(self) -> Battery | None:
        """The battery, or None on a machine without one."""
        ...

    def service_running(self, name: str) -> bool | None:
        """Whether a service (or a process of that name) runs; None when it cannot be told."""
        ...

    def identity_sources(self) -> IdentitySources:
        """Serials, UUID, OS instance ids and physical MACs for ``agents.identity``."""
        ...

    def power_argv(self, action: str, delay_s: int, notice: str | None) -> list[str]:
        """The exact command line ``power`` runs."""
        ...

    def notify_argv(self, text: str) -> list[str]:
        """The exact command line ``notify`` runs."""
        ...

    def power(self, action: str, delay_s: int, notice: str | None, dry_run: bool) -> str:
        """Reboot, shut down or cancel; dry run records and returns the command line and runs nothing."""
        ...

    def notify(self, text: str, dry_run: bool) -> str:
        """Show a notice to logged-in users; dry run records and returns the command line only."""
        ...


# ---- shared helpers -----------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def clean_text(value: Any, limit: int = 256) -> str | None:
    """Firmware strings come padded with spaces and NULs; empty means unknown (None)."""
    if value is None:
        return None
    text = _CONTROL.sub(" ", str(value)).strip()
    return text[:limit] or None


def clean_notice(text: str | None) -> str | None:
    """One line, bounded, and unable to pass for a command-line option."""
    if text is None:
        return None
    line = " ".join(_CONTROL.sub(" ", text).split())[:MAX_NOTICE_CHARS].lstrip("-/ ")
    return line or None


def normalize_mac(value: str | None) -> str | None:
    """``AA-BB-CC-DD-EE-FF`` or ``aa:bb:...`` to lower-case colon form; anything else is None."""
    if not value:
        return None
    hexes = re.sub(r"[^0-9a-fA-F]", "", value)
    if len(hexes) != 12 or len(re.sub(r"[:\-. ]", "", value)) != 12:
        return None
    return ":".join(hexes[i:i + 2] for i in range(0, 12, 2)).lower()


def is_hardware_mac(mac: str | None) -> bool:
    """A burnt-in address: not all-zero/all-F, not multicast, not locally administered (docker, veth, random)."""
    mac = normalize_mac(mac)
    if mac is None or mac in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"):
        return False
    first = int(mac[:2], 16)
    return not first & 0x01 and not first & 0x02


VIRTUAL_NAME_PREFIXES = ("lo", "docker", "veth", "br-", "virbr", "vnet", "vmnet", "vboxnet", "tun", "tap", "wg",
                         "tailscale", "zt", "ifb", "dummy", "bond", "team", "kube", "cni", "flannel", "cali",
                         "lxc", "lxd", "podman", "macvtap", "vxlan", "gre", "sit", "ip6tnl", "nlmon")


def finite_or_none(value: Any, low: float, high: float) -> float | None:
    """A reading inside its physical range, or None (sensors report -273, 0x7fff and NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and low <= number <= high else None


def health_pct(full: float | None, design: float | None) -> float | None:
    """Full-charge over design capacity in percent; None when either is unknown or absurd."""
    if full is None or design is None or design <= 0 or full < 0:
        return None
    pct = 100.0 * full / design
    return round(pct, 1) if pct <= 200 else None


def budget_software(entries: Iterable[dict[str, Any]], budget_bytes: int = SOFTWARE_BUDGET_BYTES,
                    max_count: int = MAX_SOFTWARE) -> tuple[list[dict[str, Any]], int]:
    """Sorted, de-duplicated, cut to fit the payload; returns (kept, total) so a cut can be reported."""
    unique: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in entries:
        name = clean_text(entry.get("name"), 200)
        if not name:
            continue
        version = clean_text(entry.get("version"), 100) or ""
        item = {k: v for k, v in {**entry, "name": name, "version": version or None}.items() if v is not None}
        unique.setdefault((name.casefold(), version), item)
    ordered = [unique[key] for key in sorted(unique)]
    kept: list[dict[str, Any]] = []
    used = 2
    for item in ordered[:max_count]:
        size = len(json.dumps(item, ensure_ascii=False).encode()) + 1
        if used + size > budget_bytes:
            break
        kept.append(item)
        used += size
    return kept, len(ordered)


class PsutilPlatform:
    """What both operating systems answer through psutil: load, memory, disks, users, interfaces."""

    #: ``os`` as reported in the inventory.
    os_name = "unknown"

    def __init__(self, ps: Any = None, *, clock: Callable[[], float] = time.time,
                 hostname: Callable[[], str] = socket.gethostname) -> None:
        if ps is None:
            import psutil  # the [agent] extra; imported here so the demo (simulated facts) does not need it

            ps = psutil
        self._ps = ps
        self._clock = clock
        self._hostname = hostname
        self.dry_run_log: list[list[str]] = []
        self._boot_time: float | None = None
        with contextlib.suppress(Exception):  # a fake or a restricted psutil must not stop the agent
            ps.cpu_percent(None)  # prime the counter: the first call always returns 0

    # ---- heartbeat ----------------------------------------------------------------------------
    def heartbeat(self) -> dict[str, Any]:
        """The wire Heartbeat's figures, nothing else, so the payload validates as is."""
        ps = self._ps
        try:
            uptime = max(0.0, self._clock() - ps.boot_time())
        except Exception:  # noqa: BLE001
            uptime = 0.0
        return {
            "uptime_s": round(uptime, 1),
            "cpu_pct": finite_or_none(ps.cpu_percent(None), 0, 100) or 0.0,
            "mem_pct": finite_or_none(ps.virtual_memory().percent, 0, 100) or 0.0,
            "disk": self.disk_usage(),
            "temp_c": self.temperature(),
        }

    def disk_usage(self) -> list[dict[str, Any]]:
        """Each mounted local file system once (bind mounts of one device are counted once)."""
        disks: list[dict[str, Any]] = []
        seen: set[tuple[str, int]] = set()
        try:
            parts = self._ps.disk_partitions(all=False)
        except Exception:  # noqa: BLE001
            return disks
        for part in parts:
            if len(disks) >= MAX_DISKS:
                break
            opts = part.opts or ""
            if "cdrom" in opts or part.fstype.lower() in ("squashfs", "iso9660", "udf"):
                continue  # read-only media are always "full"
            if "removable" in opts:
                continue  # a pupil's full USB stick is not a fault of this machine (Windows marks them)
            try:
                usage = self._ps.disk_usage(part.mountpoint)
            except (OSError, RuntimeError):
                continue  # an empty card reader or a mount we may not read
            key = (part.device, usage.total)
            if usage.total <= 0 or key in seen:
                continue
            seen.add(key)
            disks.append({"mount": part.mountpoint[:256], "total_bytes": int(usage.total),
                          "used_pct": finite_or_none(usage.percent, 0, 100) or 0.0})
        return disks

    def temperature(self) -> float | None:
        """The hottest plausible sensor (psutil), or None where the OS exposes none."""
        sensors = getattr(self._ps, "sensors_temperatures", None)
        if sensors is None:
            return None
        try:
            readings = [finite_or_none(t.current, -50, 150) for entries in sensors().values() for t in entries]
        except (OSError, RuntimeError, AttributeError):
            return None
        valid = [r for r in readings if r is not None and r != 0]
        return max(valid) if valid else None

    # ---- live facts ---------------------------------------------------------------------------
    def user_count(self) -> int | None:
        """Distinct logged-in users (a lab PC in use has one; an idle one none)."""
        try:
            return len({u.name for u in self._ps.users()})
        except Exception:  # noqa: BLE001
            return None

    def battery(self) -> Battery | None:
        """Overridden per OS (health needs OS data); psutil knows charge and plug state."""
        return self._psutil_battery(None, None)

    def _psutil_battery(self, full: float | None, design: float | None) -> Battery | None:
        sensors = getattr(self._ps, "sensors_battery", None)
        state = None
        if sensors is not None:
            try:
                state = sensors()
            except Exception:  # noqa: BLE001
                state = None
        if state is None and full is None:
            return None
        return Battery(percent=finite_or_none(getattr(state, "percent", None), 0, 100),
                       plugged=getattr(state, "power_plugged", None), health_pct=health_pct(full, design),
                       full_capacity=full, design_capacity=design)

    def displays(self) -> list[Display] | None:
        """Unknown unless the OS implementation says otherwise."""
        return None

    def touch_devices(self) -> list[TouchDevice] | None:
        """Unknown unless the OS implementation says otherwise."""
        return None

    def service_running(self, name: str) -> bool | None:
        """Overridden per OS; here only a process of that name counts."""
        return self.process_running(name)

    def process_running(self, name: str) -> bool | None:
        """A process whose name (or executable's base name) is ``name`` or ``name.exe``."""
        wanted = {name.casefold(), f"{name}.exe".casefold()}
        try:
            for proc in self._ps.process_iter(["name", "exe"]):
                info = proc.info
                exe = (info.get("exe") or "").replace("\\", "/").rsplit("/", 1)[-1]
                if (info.get("name") or "").casefold() in wanted or exe.casefold() in wanted:
                    return True
        except Exception:  # noqa: BLE001
            return None
        return False

    def live_facts(self, services: list[str]) -> dict[str, Any]:
        """Detector inputs; a None value is unknown and neither raises nor clears a fault."""
        battery = self.battery()
        displays = self.displays()
        touch = self.touch_devices()
        return {
            "users": self.user_count(),
            "battery_percent": battery.percent if battery else None,
            "battery_plugged": battery.plugged if battery else None,
            "battery_health_pct": battery.health_pct if battery else None,
            "displays": None if displays is None else len(displays),
            "touch": None if touch is None else len(touch),
            "services": {name: self.service_running(name) for name in services},
        }

    # ---- inventory helpers --------------------------------------------------------------------
    def network_interfaces(self) -> list[dict[str, Any]]:
        """Every interface but loopback, with its MAC and addresses (psutil.net_if_addrs)."""
        ps = self._ps
        try:
            addrs = ps.net_if_addrs()
        except Exception:  # noqa: BLE001
            return []
        try:
            stats = ps.net_if_stats()
        except Exception:  # noqa: BLE001
            stats = {}
        link = getattr(ps, "AF_LINK", None)
        out = []
        for name in sorted(addrs):
            mac = None
            ipv4: list[str] = []
            ipv6: list[str] = []
            for addr in addrs[name]:
                family = int(addr.family)
                if link is not None and family == int(link):
                    mac = normalize_mac(addr.address)
                elif family == socket.AF_INET:
                    ipv4.append(addr.address)
                elif family == socket.AF_INET6:
                    ipv6.append(addr.address.split("%", 1)[0])
            if name == "lo" or name.lower().startswith("loopback") or (mac == "00:00:00:00:00:00" and not ipv4):
                continue
            st = stats.get(name)
            out.append({"name": name[:64], "mac": mac, "ipv4": ipv4[:8], "ipv6": ipv6[:8],
                        "up": bool(st.isup) if st else None, "speed_mbps": (st.speed or None) if st else None})
            if len(out) >= MAX_INTERFACES:
                break
        return out

    def boot_time(self) -> float | None:
        """Boot time, read once: Windows' figure jitters by a second, which would change the inventory hash."""
        if self._boot_time is None:
            try:
                self._boot_time = float(round(self._ps.boot_time()))
            except Exception:  # noqa: BLE001
                return None
        return self._boot_time

    def base_hardware(self) -> dict[str, Any]:
        """Facts psutil knows on every OS; the OS implementations add firmware and identity fields."""
        ps = self._ps
        try:
            ram = int(ps.virtual_memory().total)
        except Exception:  # noqa: BLE001
            ram = None
        return {
            "hostname": self._hostname(),
            "os": self.os_name,
            "cpu_count": ps.cpu_count(),
            "cpu_cores": ps.cpu_count(logical=False),
            "ram_bytes": ram,
            "network": self.network_interfaces(),
            "boot_time": self.boot_time(),
            "agent_version": __version__,
        }

    def inventory(self) -> dict[str, Any]:
        """What psutil knows; the OS implementations add firmware facts and software."""
        return {"hardware": self.base_hardware(), "software": []}

    def identity_sources(self) -> IdentitySources:
        """Only the MACs psutil sees (the OS implementations add serials and OS instance ids)."""
        macs = {i["mac"] for i in self.network_interfaces()
                if is_hardware_mac(i["mac"]) and not i["name"].startswith(VIRTUAL_NAME_PREFIXES)}
        return IdentitySources(hostname=self._hostname(), macs=tuple(sorted(macs)))

    # ---- actions ------------------------------------------------------------------------------
    def power_argv(self, action: str, delay_s: int, notice: str | None) -> list[str]:
        """Implemented per OS; elsewhere power commands fail (and ack ``failed``)."""
        raise PlatformError(f"power commands are not supported on {self.os_name}")

    def notify_argv(self, text: str) -> list[str]:
        """Implemented per OS; elsewhere notices fail (and ack ``failed``)."""
        raise PlatformError(f"notices are not supported on {self.os_name}")

    def _act(self, argv: list[str], dry_run: bool) -> str:
        shown = shlex.join(argv)
        if dry_run:
            self.dry_run_log.append(list(argv))
            log.info("dry run: %s", shown)
            return f"dry run: {shown}"
        log.info("running: %s", shown)
        run_action(argv)
        return f"ran: {shown}"

    def power(self, action: str, delay_s: int, notice: str | None, dry_run: bool) -> str:
        """Reboot, shut down or cancel a pending one; dry run records the argv and runs nothing."""
        if action not in POWER_ACTIONS:
            raise ValueError(f"unknown power action {action!r}")
        if not isinstance(delay_s, int) or isinstance(delay_s, bool) or not 0 <= delay_s <= 7 * 86400:
            raise ValueError("delay_s must be an integer between 0 and 604800")
        return self._act(self.power_argv(action, delay_s, notice), dry_run)

    def notify(self, text: str, dry_run: bool) -> str:
        """Show a notice to the logged-in users; dry run records the argv and runs nothing."""
        if not clean_notice(text):
            raise ValueError("empty notice")
        return self._act(self.notify_argv(text), dry_run)


@dataclass
class TtlCache:
    """Keeps slow answers (PowerShell, dpkg) for a while, so a heartbeat never waits on them."""

    ttl_s: float
    clock: Callable[[], float] = time.monotonic
    _values: dict[str, tuple[float, Any]] = field(default_factory=dict)

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        """The cached value while fresh, else a newly computed one."""
        now = self.clock()
        hit = self._values.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        value = compute()
        self._values[key] = (now, value)
        return value
