"""Linux: sysfs/procfs for firmware, displays, touch and batteries, dpkg/rpm for software, systemd for services.

Every path hangs off an injectable ``root`` so tests can build a fake ``/sys`` and ``/proc``;
a file we may not read (DMI serials are root-only) is None, never an exception.
"""

from __future__ import annotations

import math
import os
import platform
import re
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..identity import usable
from .base import (
    VIRTUAL_NAME_PREFIXES,
    Battery,
    Display,
    IdentitySources,
    PsutilPlatform,
    Runner,
    TouchDevice,
    budget_software,
    clean_notice,
    clean_text,
    finite_or_none,
    health_pct,
    is_hardware_mac,
    normalize_mac,
    run_command,
)

DMI_FIELDS = ("sys_vendor", "product_name", "product_version", "product_serial", "product_uuid", "product_sku",
              "board_vendor", "board_name", "board_serial", "bios_vendor", "bios_version", "bios_date",
              "chassis_type", "chassis_serial")
SKIP_BLOCK = ("loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd", "rbd")
# Input event codes (linux/input-event-codes.h) that tell a touch screen from a mouse or a touchpad.
ABS_X, ABS_MT_POSITION_X = 0x00, 0x35
BTN_TOUCH, BTN_TOOL_FINGER = 0x14A, 0x145
INPUT_PROP_POINTER, INPUT_PROP_DIRECT = 0x00, 0x01
LONG_BITS = struct.calcsize("l") * 8
ACTIVE_STATES = {"active", "reloading"}
NOT_TOUCH = re.compile(r"\b(touchpad|trackpad|synaptics|pen|stylus|mouse)\b")


class LinuxPlatform(PsutilPlatform):
    """Linux desktops, lab PCs and smart boards' OPS modules running Linux."""

    os_name = "Linux"

    def __init__(self, root: str | Path = "/", ps: Any = None, *, run: Runner = run_command,
                 clock: Callable[[], float] = time.time, hostname: Callable[[], str] = socket.gethostname) -> None:
        super().__init__(ps, clock=clock, hostname=hostname)
        self.root = Path(root)
        self._run = run

    # ---- file access --------------------------------------------------------------------------
    def _path(self, relative: str) -> Path:
        return self.root / relative.lstrip("/")

    def _read(self, relative: str | Path) -> str | None:
        """A small sysfs/procfs file's text, stripped; None if absent or unreadable."""
        path = relative if isinstance(relative, Path) else self._path(relative)
        try:
            return path.read_text(encoding="utf-8", errors="replace").strip()
        except (OSError, ValueError):
            return None

    def _read_number(self, path: Path) -> float | None:
        text = self._read(path)
        try:
            return float(text) if text is not None else None
        except ValueError:
            return None

    # ---- firmware -----------------------------------------------------------------------------
    def dmi(self) -> dict[str, str | None]:
        """/sys/class/dmi/id: vendor, model, serials, BIOS (serials and UUID need root)."""
        return {name: clean_text(self._read(f"sys/class/dmi/id/{name}")) for name in DMI_FIELDS}

    def os_release(self) -> dict[str, str]:
        """/etc/os-release as a dict (PRETTY_NAME, VERSION_ID, ID)."""
        text = self._read("etc/os-release") or self._read("usr/lib/os-release") or ""
        values = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip():
                values[key.strip()] = value.strip().strip('"').strip("'")
        return values

    def cpu_model(self) -> str | None:
        """/proc/cpuinfo's model name (x86) or Model/Hardware (ARM boards)."""
        text = self._read("proc/cpuinfo") or ""
        found: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                found.setdefault(key.strip().lower(), value.strip())
        for key in ("model name", "model", "hardware", "cpu model"):
            if found.get(key):
                return clean_text(found[key])
        return platform.machine() or None

    def block_disks(self) -> list[dict[str, Any]]:
        """Whole physical disks from /sys/block (not partitions, loops, RAM disks or optical drives)."""
        base = self._path("sys/block")
        try:
            names = sorted(p.name for p in base.iterdir())
        except OSError:
            return []
        disks = []
        for name in names:
            if name.startswith(SKIP_BLOCK):
                continue
            sectors = self._read_number(base / name / "size")
            if not sectors:
                continue
            rotational = self._read(base / name / "queue" / "rotational")
            disks.append({
                "device": name,
                "size_bytes": int(sectors) * 512,  # sysfs counts 512-byte sectors whatever the disk's own size
                "model": clean_text(self._read(base / name / "device" / "model")),
                "removable": self._read(base / name / "removable") == "1",
                "ssd": None if rotational is None else rotational == "0",
            })
        return disks[:32]

    # ---- inventory ----------------------------------------------------------------------------
    def inventory(self) -> dict[str, Any]:
        """Hardware from DMI/procfs/psutil and software from the package manager."""
        dmi = self.dmi()
        rel = self.os_release()
        hardware = self.base_hardware()
        hardware.update({
            "os_name": rel.get("PRETTY_NAME") or rel.get("NAME"),
            "os_version": rel.get("VERSION_ID") or rel.get("VERSION"),
            "os_id": rel.get("ID"),
            "kernel": self._read("proc/sys/kernel/osrelease") or platform.release(),
            "arch": platform.machine(),
            # The controller copies vendor/model/serial into the device record: no placeholders there.
            "vendor": usable(dmi["sys_vendor"]),
            "model": usable(dmi["product_name"]),
            "model_version": usable(dmi["product_version"]),
            "serial": usable(dmi["product_serial"], serial=True) or usable(dmi["chassis_serial"], serial=True),
            "board_vendor": dmi["board_vendor"],
            "board_model": dmi["board_name"],
            "board_serial": dmi["board_serial"],
            "product_uuid": dmi["product_uuid"],
            "chassis_type": dmi["chassis_type"],
            "bios_vendor": dmi["bios_vendor"],
            "bios_version": dmi["bios_version"],
            "bios_date": dmi["bios_date"],
            "cpu_model": self.cpu_model(),
            "disks": self.block_disks(),
        })
        software, total = self.software()
        hardware["software_count"] = total
        hardware["software_truncated"] = len(software) < total
        return {"hardware": hardware, "software": software}

    def software(self) -> tuple[list[dict[str, Any]], int]:
        """Installed packages (dpkg, else rpm), cut to fit the payload; (kept, total)."""
        result = self._run(["dpkg-query", "-W", "-f", "${db:Status-Status}\t${Package}\t${Version}\n"], 30.0)
        entries: list[dict[str, Any]] = []
        if result is not None and result.returncode == 0:
            for line in result.stdout.splitlines():
                parts = line.split("\t")
                if len(parts) == 3 and parts[0] == "installed":
                    entries.append({"name": parts[1], "version": parts[2]})
        else:
            result = self._run(["rpm", "-qa", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\n"], 30.0)
            if result is not None and result.returncode == 0:
                for line in result.stdout.splitlines():
                    name, _, version = line.partition("\t")
                    if name and not name.startswith("gpg-pubkey"):
                        entries.append({"name": name, "version": version})
        return budget_software(entries)

    # ---- displays and touch -------------------------------------------------------------------
    def displays(self) -> list[Display] | None:
        """DRM connectors whose status is ``connected``; None without /sys/class/drm (headless, container)."""
        base = self._path("sys/class/drm")
        try:
            entries = sorted(p for p in base.iterdir() if re.match(r"card\d+-", p.name))
        except OSError:
            return None
        found = []
        for entry in entries:
            if self._read(entry / "status") == "connected":
                found.append(Display(name=entry.name.split("-", 1)[1]))
        return found

    def touch_devices(self) -> list[TouchDevice] | None:
        """Touch screens from /proc/bus/input/devices; None if it cannot be read."""
        text = self._read("proc/bus/input/devices")
        if text is None:
            return None
        return parse_input_devices(text)

    # ---- battery ------------------------------------------------------------------------------
    def battery(self) -> Battery | None:
        """Summed over the system's batteries (not a wireless mouse's); health from energy_* or charge_*."""
        base = self._path("sys/class/power_supply")
        try:
            supplies = sorted(base.iterdir())
        except OSError:
            return None
        full_sum = design_sum = 0.0
        have_capacity = False
        percents: list[float] = []
        statuses: list[str] = []
        mains: list[bool] = []
        batteries = 0
        for supply in supplies:
            kind = self._read(supply / "type")
            if kind == "Mains":
                mains.append(self._read(supply / "online") == "1")
                continue
            if kind != "Battery" or self._read(supply / "scope") == "Device" or self._read(supply / "present") == "0":
                continue
            batteries += 1
            pct = finite_or_none(self._read_number(supply / "capacity"), 0, 100)
            if pct is not None:
                percents.append(pct)
            statuses.append(self._read(supply / "status") or "")
            for prefix in ("energy", "charge"):
                full = self._read_number(supply / f"{prefix}_full")
                design = self._read_number(supply / f"{prefix}_full_design")
                if full is not None and design:
                    full_sum += full
                    design_sum += design
                    have_capacity = True
                    break
        if not batteries:
            return None
        if mains:
            plugged: bool | None = any(mains)
        elif statuses and all(s == "Discharging" for s in statuses):
            plugged = False
        elif any(s in ("Charging", "Full", "Not charging") for s in statuses):
            plugged = True
        else:
            plugged = None
        full_v = full_sum if have_capacity else None
        design_v = design_sum if have_capacity else None
        return Battery(percent=round(sum(percents) / len(percents), 1) if percents else None, plugged=plugged,
                       health_pct=health_pct(full_v, design_v), full_capacity=full_v, design_capacity=design_v)

    # ---- services -----------------------------------------------------------------------------
    def service_running(self, name: str) -> bool | None:
        """systemd's view of the unit when it knows it, else a process of that name."""
        unit = name if "." in name else f"{name}.service"
        result = self._run(["systemctl", "show", "--property=LoadState,ActiveState,SubState", "--", unit], 10.0)
        if result is not None and result.returncode == 0:
            props = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
            load, active, sub = props.get("LoadState"), props.get("ActiveState"), props.get("SubState")
            if load and load != "not-found" and active:
                if active == "activating":
                    return sub != "auto-restart"  # crash-looping counts as down
                return active in ACTIVE_STATES
        return self.process_running(name)

    # ---- identity -----------------------------------------------------------------------------
    def physical_macs(self) -> tuple[str, ...]:
        """Burnt-in MACs of built-in NICs: no virtual, USB, randomised or locally administered addresses."""
        base = self._path("sys/class/net")
        macs: set[str] = set()
        try:
            names = sorted(p.name for p in base.iterdir())
        except OSError:
            names = []
        for name in names:
            if name.startswith(VIRTUAL_NAME_PREFIXES):
                continue
            device = base / name / "device"
            if not device.exists():
                continue  # virtual interfaces have no device behind them
            try:
                if "/usb" in os.path.realpath(device):
                    continue  # dongles come and go; they must not move the id
            except OSError:
                pass
            assign = self._read(base / name / "addr_assign_type")
            if assign not in (None, "0"):
                continue  # 1 random, 2 stolen, 3 set by userspace: not the card's own address
            mac = normalize_mac(self._read(base / name / "address"))
            if mac and is_hardware_mac(mac):
                macs.add(mac)
        return tuple(sorted(macs))

    def identity_sources(self) -> IdentitySources:
        """DMI serials and UUID, the machine-id, and the physical MAC set."""
        dmi = self.dmi()
        machine_id = clean_text(self._read("etc/machine-id") or self._read("var/lib/dbus/machine-id"))
        return IdentitySources(
            hostname=self._hostname(), vendor=dmi["sys_vendor"], model=dmi["product_name"],
            board_serial=dmi["board_serial"], product_serial=dmi["product_serial"],
            product_uuid=dmi["product_uuid"], machine_id=machine_id, macs=self.physical_macs(),
        )

    # ---- actions ------------------------------------------------------------------------------
    def power_argv(self, action: str, delay_s: int, notice: str | None) -> list[str]:
        """``shutdown -r|-P +minutes [notice]`` (systemd counts in minutes), or ``shutdown -c``."""
        text = clean_notice(notice)
        if action == "cancel":
            return ["shutdown", "-c"] + ([text] if text else [])
        when = "now" if delay_s <= 0 else f"+{math.ceil(delay_s / 60)}"
        argv = ["shutdown", "-r" if action == "reboot" else "-P", when]
        return argv + ([text] if text else [])

    def notify_argv(self, text: str) -> list[str]:
        """``wall`` to every terminal; two arguments, so wall never takes the notice for a file to read."""
        return ["wall", "[classfleet]", clean_notice(text) or ""]


def _bitmap(value: str) -> int:
    """An input capability bitmap ("B: ABS=260800000000003"): words of one C long, most significant first."""
    number = 0
    for word in value.split():
        try:
            number = (number << LONG_BITS) | int(word, 16)
        except ValueError:
            return 0
    return number


def _has(bitmap: int, bit: int) -> bool:
    return bool(bitmap >> bit & 1)


def parse_input_devices(text: str) -> list[TouchDevice]:
    """Touch screens in /proc/bus/input/devices: direct-input absolute devices, or absolute ones named touch."""
    found: list[TouchDevice] = []
    seen: set[tuple[str, str]] = set()
    for block in re.split(r"\n\s*\n", text.strip()):
        name = phys = ident = ""
        bits: dict[str, int] = {}
        for line in block.splitlines():
            tag, _, rest = line.partition(": ")
            if tag == "N":
                name = rest.partition("=")[2].strip().strip('"')
            elif tag == "P":
                phys = rest.partition("=")[2].strip()
            elif tag == "I":
                fields = dict(part.split("=", 1) for part in rest.split() if "=" in part)
                ident = f"{fields.get('Vendor', '')}:{fields.get('Product', '')}".lower()
            elif tag == "B":
                key, _, value = rest.partition("=")
                bits[key.strip()] = _bitmap(value)
        abs_bits, keys, props = bits.get("ABS", 0), bits.get("KEY", 0), bits.get("PROP", 0)
        lowered = name.lower()
        if not abs_bits or NOT_TOUCH.search(lowered):
            continue
        positional = _has(abs_bits, ABS_X) or _has(abs_bits, ABS_MT_POSITION_X)
        direct = _has(props, INPUT_PROP_DIRECT) and not _has(props, INPUT_PROP_POINTER)
        finger_pad = _has(keys, BTN_TOOL_FINGER) and not direct
        is_touch = positional and not finger_pad and (
            direct or "touch" in lowered or (_has(abs_bits, ABS_MT_POSITION_X) and _has(keys, BTN_TOUCH)))
        if not is_touch:
            continue
        key = (name, phys.split("/input", 1)[0])
        if key in seen:
            continue
        seen.add(key)
        found.append(TouchDevice(name=name or "touch screen", id=ident or None))
    return found
