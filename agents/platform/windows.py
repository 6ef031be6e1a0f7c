"""Windows: WMI/CIM (through PowerShell's ConvertTo-Json) and the registry, behind a small injectable reader.

All raw access goes through ``WindowsReader`` so the parsing below runs, and is tested, on
Linux against recorded outputs; no pywin32 or wmi package is needed on the machine either.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from ..identity import usable
from .base import (
    Battery,
    Display,
    IdentitySources,
    PsutilPlatform,
    Runner,
    TouchDevice,
    TtlCache,
    budget_software,
    clean_notice,
    clean_text,
    finite_or_none,
    health_pct,
    is_hardware_mac,
    normalize_mac,
    run_command,
)

log = logging.getLogger(__name__)

UNINSTALL = r"SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall"
CURRENT_VERSION = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion"
CRYPTOGRAPHY = r"SOFTWARE\Microsoft\Cryptography"
UPDATE_RELEASE_TYPES = {"Security Update", "Update Rollup", "Hotfix", "Update", "ServicePack"}
# The HID top-level collection of a touch screen: usage page 0x0D (digitizers), usage 0x04 (touch screen).
TOUCH_HID_ID = "HID_DEVICE_UP:000D_U:0004"
VIRTUAL_ADAPTER = re.compile(r"virtual|hyper-v|vpn|tap-|tunnel|bluetooth|wan miniport|loopback|vmware|virtualbox|"
                             r"npcap|wi-fi direct|teredo|isatap|fortinet|wireguard|tailscale|zerotier", re.I)
NOT_BUILT_IN = ("USB\\", "ROOT\\", "SWD\\", "BTH", "{", "VMBUS\\")
MAX_NOTICE_COMMENT = 500  # shutdown /c takes at most 512 characters


@dataclass(frozen=True, slots=True)
class CimQuery:
    """One ``Get-CimInstance`` call: class, the properties worth keeping, namespace and WQL filter."""

    cls: str
    properties: tuple[str, ...]
    namespace: str = "root/cimv2"
    filter: str | None = None


class WindowsReader(Protocol):
    """Raw Windows data access: swapped for recorded outputs in tests."""

    def cim(self, queries: Sequence[CimQuery]) -> dict[str, list[dict[str, Any]]]:
        """Rows per class name; [] for a class with no instances, and no key at all when nothing could run."""
        ...

    def registry_subkeys(self, hive: str, path: str, view: int = 64) -> list[dict[str, Any]]:
        """The values of each subkey of ``hive\\path`` (``Get-ItemProperty path\\*``), with ``PSChildName``."""
        ...

    def registry_value(self, hive: str, path: str, name: str, view: int = 64) -> Any:
        """One registry value, or None."""
        ...

    def registry_key_names(self, hive: str, path: str) -> list[str]:
        """Names of the subkeys of ``hive\\path`` (e.g. the loaded user hives under HKU)."""
        ...


# ---- parsing of PowerShell output -------------------------------------------------------------


def parse_cim_json(text: str | None) -> list[dict[str, Any]]:
    """``Get-CimInstance X | Select-Object ... | ConvertTo-Json``: one object, a list, or nothing at all."""
    if not text or not text.strip():
        return []
    try:
        data = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError:
        log.debug("PowerShell output is not JSON: %.200s", text)
        return []
    return _rows(data)


def _rows(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return [row for row in data if isinstance(row, dict)]
    return []


def parse_cim_batch(text: str | None) -> dict[str, list[dict[str, Any]]]:
    """The batched script's ``{"Class": [rows], ...}`` object; anything else is empty."""
    if not text or not text.strip():
        return {}
    try:
        data = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError:
        return {}
    return {str(k): _rows(v) for k, v in data.items()} if isinstance(data, dict) else {}


def parse_cim_datetime(value: Any) -> float | None:
    """Windows PowerShell 5.1's ``/Date(ms)/``, PowerShell 7's ISO text, or WMI's DMTF ``yyyymmddHHMMSS``."""
    if value is None:
        return None
    if isinstance(value, dict) and "value" in value:  # ConvertTo-Json of a DateTime with -Depth > 1
        value = value["value"]
    text = str(value)
    match = re.search(r"/Date\((-?\d+)", text)
    if match:
        return int(match.group(1)) / 1000.0
    match = re.fullmatch(r"(\d{14})\.\d+([+-]\d{3})", text)
    if match:
        when = datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        return when.timestamp() - int(match.group(2)) * 60
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _iso_date(value: Any) -> str | None:
    stamp = parse_cim_datetime(value)
    return datetime.fromtimestamp(stamp, UTC).date().isoformat() if stamp is not None else None


def decode_wmi_string(value: Any) -> str | None:
    """WmiMonitorID's names are arrays of UTF-16 code units padded with zeros."""
    if isinstance(value, list):
        return clean_text("".join(chr(c) for c in value if isinstance(c, int) and 0 < c < 0x110000))
    return clean_text(value)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _first(rows: list[dict[str, Any]] | None) -> dict[str, Any]:
    return rows[0] if rows else {}


# ---- the real reader ----------------------------------------------------------------------------


def cim_script(queries: Sequence[CimQuery]) -> str:
    """One PowerShell process for many classes: starting PowerShell costs more than the queries."""
    lines = ["$ErrorActionPreference = 'SilentlyContinue'",
             "[Console]::OutputEncoding = [System.Text.Encoding]::UTF8",  # else the OEM code page mangles names
             "$r = [ordered]@{}"]
    for q in queries:
        where = f" -Filter \"{q.filter}\"" if q.filter else ""
        props = ",".join(q.properties)
        lines.append(f"$r['{q.cls}'] = @(Get-CimInstance -Namespace '{q.namespace}' -ClassName '{q.cls}'{where}"
                     f" -OperationTimeoutSec 15 | Select-Object {props})")
    lines.append("$r | ConvertTo-Json -Depth 4 -Compress")
    return "\n".join(lines)


class LocalWindowsReader:
    """The machine's own WMI (PowerShell's Get-CimInstance) and registry (winreg, stdlib on Windows)."""

    HIVES = {"HKLM": "HKEY_LOCAL_MACHINE", "HKCU": "HKEY_CURRENT_USER", "HKU": "HKEY_USERS"}

    def __init__(self, run: Runner = run_command, winreg: Any = None, timeout_s: float = 60.0) -> None:
        self._run = run
        self._winreg = winreg
        self._timeout = timeout_s

    def _reg(self) -> Any:
        """The winreg module; OSError where there is none, so a registry read is just "unreadable"."""
        if self._winreg is None:
            try:
                import winreg  # Windows only
            except ImportError:
                raise OSError("no Windows registry on this system") from None
            self._winreg = winreg
        return self._winreg

    def cim(self, queries: Sequence[CimQuery]) -> dict[str, list[dict[str, Any]]]:
        """Run the batched script with -EncodedCommand (no quoting to get wrong); failures are empty."""
        encoded = base64.b64encode(cim_script(queries).encode("utf-16-le")).decode()
        result = self._run(["powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass",
                            "-EncodedCommand", encoded], self._timeout)
        if result is None or result.returncode != 0:
            return {}
        batch = parse_cim_batch(result.stdout)
        return {q.cls: batch.get(q.cls, []) for q in queries} if batch else {}

    def _open(self, hive: str, path: str, view: int) -> Any:
        reg = self._reg()
        access = reg.KEY_READ | (reg.KEY_WOW64_32KEY if view == 32 else reg.KEY_WOW64_64KEY)
        return reg.OpenKey(getattr(reg, self.HIVES[hive]), path, 0, access)

    def registry_key_names(self, hive: str, path: str) -> list[str]:
        """Subkey names; an unreadable key has none."""
        names: list[str] = []
        try:
            reg = self._reg()
            with self._open(hive, path, 64) as key:
                for i in range(reg.QueryInfoKey(key)[0]):
                    names.append(reg.EnumKey(key, i))
        except OSError:
            return names
        return names

    def registry_subkeys(self, hive: str, path: str, view: int = 64) -> list[dict[str, Any]]:
        """Each subkey's values, like ``Get-ItemProperty path\\*`` (PSChildName is the subkey's name)."""
        rows: list[dict[str, Any]] = []
        try:
            reg = self._reg()
            parent = self._open(hive, path, view)
        except OSError:
            return rows
        with parent:
            for i in range(reg.QueryInfoKey(parent)[0]):
                name = reg.EnumKey(parent, i)
                row: dict[str, Any] = {"PSChildName": name}
                try:
                    with reg.OpenKey(parent, name) as sub:
                        for j in range(reg.QueryInfoKey(sub)[1]):
                            value_name, value, _ = reg.EnumValue(sub, j)
                            row[value_name] = value
                except OSError:
                    continue
                rows.append(row)
        return rows

    def registry_value(self, hive: str, path: str, name: str, view: int = 64) -> Any:
        """One value, or None when the key or value is missing or unreadable."""
        try:
            with self._open(hive, path, view) as key:
                return self._reg().QueryValueEx(key, name)[0]
        except OSError:
            return None


# ---- the platform -------------------------------------------------------------------------------

CS = CimQuery("Win32_ComputerSystem", ("Name", "DNSHostName", "Domain", "PartOfDomain", "Workgroup", "Manufacturer",
                                       "Model", "SystemFamily", "SystemSKUNumber", "TotalPhysicalMemory",
                                       "NumberOfLogicalProcessors", "PCSystemType"))
CS_PRODUCT = CimQuery("Win32_ComputerSystemProduct", ("IdentifyingNumber", "Name", "UUID", "Vendor", "Version"))
BIOS = CimQuery("Win32_BIOS", ("Manufacturer", "SMBIOSBIOSVersion", "Version", "ReleaseDate", "SerialNumber"))
BOARD = CimQuery("Win32_BaseBoard", ("Manufacturer", "Product", "SerialNumber", "Version"))
OS = CimQuery("Win32_OperatingSystem", ("Caption", "Version", "BuildNumber", "OSArchitecture", "LastBootUpTime",
                                        "InstallDate"))
CPU = CimQuery("Win32_Processor", ("Name", "NumberOfCores", "NumberOfLogicalProcessors", "MaxClockSpeed"))
DISKS = CimQuery("Win32_DiskDrive", ("DeviceID", "Model", "Size", "SerialNumber", "InterfaceType", "MediaType"))
ENCLOSURE = CimQuery("Win32_SystemEnclosure", ("ChassisTypes",))
NICS = CimQuery("Win32_NetworkAdapter", ("Name", "MACAddress", "PNPDeviceID", "PhysicalAdapter", "NetConnectionID"),
                filter="PhysicalAdapter = TRUE")
ACCOUNTS = CimQuery("Win32_UserAccount", ("Name", "SID"), filter="LocalAccount = TRUE")
MONITORS = CimQuery("WmiMonitorID", ("Active", "InstanceName", "ManufacturerName", "UserFriendlyName"),
                    namespace="root/wmi")
DESKTOP_MONITORS = CimQuery("Win32_DesktopMonitor", ("Name", "PNPDeviceID", "Status", "Availability"))
PNP_HID = CimQuery("Win32_PnPEntity", ("Name", "DeviceID", "Status", "ConfigManagerErrorCode", "Present",
                                       "HardwareID", "CompatibleID"), filter="PNPClass = 'HIDClass'")
THERMAL = CimQuery("MSAcpi_ThermalZoneTemperature", ("InstanceName", "CurrentTemperature"), namespace="root/wmi")
BATTERY = CimQuery("Win32_Battery", ("DeviceID", "Name", "EstimatedChargeRemaining", "BatteryStatus"))
BATTERY_FULL = CimQuery("BatteryFullChargedCapacity", ("InstanceName", "FullChargedCapacity"), namespace="root/wmi")
BATTERY_STATIC = CimQuery("BatteryStaticData", ("InstanceName", "DesignedCapacity", "DeviceName"),
                          namespace="root/wmi")

INVENTORY_QUERIES = (CS, CS_PRODUCT, BIOS, BOARD, OS, CPU, DISKS, ENCLOSURE)
IDENTITY_QUERIES = (CS, CS_PRODUCT, BOARD, NICS, ACCOUNTS)
LIVE_QUERIES = (MONITORS, DESKTOP_MONITORS, PNP_HID, THERMAL)
BATTERY_QUERIES = (BATTERY, BATTERY_FULL, BATTERY_STATIC)
# psutil's win_service_get states that mean "it is, or is about to be, serving".
RUNNING_SERVICE_STATES = {"running", "start_pending", "continue_pending"}


class WindowsPlatform(PsutilPlatform):
    """Windows 10/11 classroom PCs and smart boards' OPS modules."""

    os_name = "Windows"

    def __init__(self, reader: WindowsReader | None = None, ps: Any = None, *, clock: Callable[[], float] = time.time,
                 hostname: Callable[[], str] = socket.gethostname, live_ttl_s: float = 120.0,
                 slow_ttl_s: float = 3600.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ps, clock=clock, hostname=hostname)
        self.reader: WindowsReader = reader if reader is not None else LocalWindowsReader()
        # One PowerShell start costs ~0.5 s of CPU: displays/touch/thermal are polled at most every
        # live_ttl_s, battery capacities (which move over months) every slow_ttl_s.
        self._live = TtlCache(live_ttl_s, monotonic)
        self._slow = TtlCache(slow_ttl_s, monotonic)

    def _live_rows(self) -> dict[str, list[dict[str, Any]]]:
        return self._live.get("live", lambda: self.reader.cim(LIVE_QUERIES))

    # ---- heartbeat ----------------------------------------------------------------------------
    def temperature(self) -> float | None:
        """ACPI thermal zones (tenths of a kelvin); the hottest plausible one."""
        readings = []
        for row in self._live_rows().get(THERMAL.cls, []):
            raw = _int(row.get("CurrentTemperature"))
            if raw is not None:
                celsius = finite_or_none(round(raw / 10 - 273.15, 1), -50, 150)
                if celsius is not None and celsius != 0:
                    readings.append(celsius)
        return max(readings) if readings else None

    # ---- live facts ---------------------------------------------------------------------------
    def displays(self) -> list[Display] | None:
        """Active monitors from WmiMonitorID; Win32_DesktopMonitor when that class answers nothing."""
        rows = self._live_rows()
        if MONITORS.cls not in rows:
            return None  # PowerShell did not run: unknown, not "no display"
        monitors = rows[MONITORS.cls]
        if monitors:
            return [Display(name=clean_text(m.get("InstanceName")) or "monitor",
                            vendor=decode_wmi_string(m.get("ManufacturerName")),
                            model=decode_wmi_string(m.get("UserFriendlyName")))
                    for m in monitors if m.get("Active") is not False]
        return [Display(name=clean_text(m.get("Name")) or "monitor") for m in rows.get(DESKTOP_MONITORS.cls, [])
                if m.get("PNPDeviceID") and m.get("Status") in (None, "OK")]

    def touch_devices(self) -> list[TouchDevice] | None:
        """HID touch-screen collections that are present and working (by HID usage, so any language works)."""
        rows = self._live_rows()
        if PNP_HID.cls not in rows:
            return None
        found = []
        for row in rows[PNP_HID.cls]:
            ids = [str(i).upper() for key in ("HardwareID", "CompatibleID") for i in (row.get(key) or [])]
            name = clean_text(row.get("Name")) or ""
            if not (any(TOUCH_HID_ID in i for i in ids) or "touch screen" in name.lower()):
                continue
            if row.get("Present") is False or _int(row.get("ConfigManagerErrorCode")) not in (None, 0):
                continue
            found.append(TouchDevice(name=name or "touch screen", id=clean_text(row.get("DeviceID"))))
        return found

    def battery(self) -> Battery | None:
        """Charge and plug state (psutil or Win32_Battery); health from root/wmi's capacities."""
        rows = self._slow.get("battery", lambda: self.reader.cim(BATTERY_QUERIES))
        design = {r.get("InstanceName"): _int(r.get("DesignedCapacity")) for r in rows.get(BATTERY_STATIC.cls, [])}
        full_sum = design_sum = 0
        for row in rows.get(BATTERY_FULL.cls, []):
            full, des = _int(row.get("FullChargedCapacity")), design.get(row.get("InstanceName"))
            if full is not None and des:
                full_sum += full
                design_sum += des
        full_v = float(full_sum) if design_sum else None
        design_v = float(design_sum) if design_sum else None
        state = self._psutil_battery(full_v, design_v)
        if state is not None and state.percent is not None:
            return state
        wmi = rows.get(BATTERY.cls, [])
        if not wmi:
            return state
        percent = finite_or_none(wmi[0].get("EstimatedChargeRemaining"), 0, 100)
        status = _int(wmi[0].get("BatteryStatus"))
        # Win32_Battery.BatteryStatus: 1 discharging; 2 on AC; 3 fully charged; 6-9 charging; 11 partly charged.
        plugged = None if status is None else status != 1 and status in (2, 3, 6, 7, 8, 9, 11)
        return Battery(percent=percent, plugged=plugged, health_pct=health_pct(full_v, design_v),
                       full_capacity=full_v, design_capacity=design_v)

    def service_running(self, name: str) -> bool | None:
        """The Windows service of that name, else a process of that name (``name`` or ``name.exe``)."""
        get = getattr(self._ps, "win_service_get", None)
        if get is not None:
            try:
                status = get(name).status()
            except Exception:  # noqa: BLE001 - psutil.NoSuchProcess for an unknown service; access errors alike
                status = None
            if status is not None:
                return status in RUNNING_SERVICE_STATES
        return self.process_running(name)

    # ---- inventory ----------------------------------------------------------------------------
    def inventory(self) -> dict[str, Any]:
        """Hardware from WMI and the registry, software from the Uninstall keys."""
        rows = self.reader.cim(INVENTORY_QUERIES)
        cs, product, bios = _first(rows.get(CS.cls)), _first(rows.get(CS_PRODUCT.cls)), _first(rows.get(BIOS.cls))
        board, os_row, cpu = _first(rows.get(BOARD.cls)), _first(rows.get(OS.cls)), _first(rows.get(CPU.cls))
        hardware = self.base_hardware()
        display_version = self.reader.registry_value("HKLM", CURRENT_VERSION, "DisplayVersion")
        ubr = self.reader.registry_value("HKLM", CURRENT_VERSION, "UBR")
        build = clean_text(os_row.get("BuildNumber"))
        chassis = _first(rows.get(ENCLOSURE.cls)).get("ChassisTypes") or []
        hardware.update({
            "hostname": clean_text(cs.get("DNSHostName")) or clean_text(cs.get("Name")) or hardware["hostname"],
            "domain": clean_text(cs.get("Domain")),
            "os_name": clean_text(os_row.get("Caption")),
            "os_version": clean_text(os_row.get("Version")),
            "os_release": clean_text(display_version),
            "os_build": f"{build}.{ubr}" if build and _int(ubr) is not None else build,
            "arch": clean_text(os_row.get("OSArchitecture")),
            "installed": _iso_date(os_row.get("InstallDate")),
            # The controller copies vendor/model/serial into the device record: no placeholders there.
            "vendor": usable(clean_text(cs.get("Manufacturer"))) or usable(clean_text(product.get("Vendor"))),
            "model": usable(clean_text(cs.get("Model"))) or usable(clean_text(product.get("Name"))),
            "model_family": usable(clean_text(cs.get("SystemFamily"))),
            "serial": usable(clean_text(product.get("IdentifyingNumber")), serial=True)
            or usable(clean_text(bios.get("SerialNumber")), serial=True),
            "board_vendor": clean_text(board.get("Manufacturer")),
            "board_model": clean_text(board.get("Product")),
            "board_serial": clean_text(board.get("SerialNumber")),
            "product_uuid": clean_text(product.get("UUID")),
            "chassis_type": str(chassis[0]) if isinstance(chassis, list) and chassis else None,
            "bios_vendor": clean_text(bios.get("Manufacturer")),
            "bios_version": clean_text(bios.get("SMBIOSBIOSVersion")) or clean_text(bios.get("Version")),
            "bios_date": _iso_date(bios.get("ReleaseDate")),
            "cpu_model": clean_text(cpu.get("Name")),
            "disks": [{"device": clean_text(d.get("DeviceID")), "size_bytes": _int(d.get("Size")),
                       "model": clean_text(d.get("Model")), "interface": clean_text(d.get("InterfaceType")),
                       "media": clean_text(d.get("MediaType"))} for d in rows.get(DISKS.cls, [])[:32]],
        })
        if hardware.get("ram_bytes") is None:
            hardware["ram_bytes"] = _int(cs.get("TotalPhysicalMemory"))
        if hardware.get("boot_time") is None:
            hardware["boot_time"] = parse_cim_datetime(os_row.get("LastBootUpTime"))
        software, total = self.software()
        hardware["software_count"] = total
        hardware["software_truncated"] = len(software) < total
        return {"hardware": hardware, "software": software}

    def uninstall_sources(self) -> list[tuple[str, str, int, str]]:
        """(hive, path, view, scope): machine-wide 64- and 32-bit, the agent's HKCU and each loaded user hive."""
        sources = [("HKLM", UNINSTALL, 64, "machine"), ("HKLM", UNINSTALL, 32, "machine"),
                   ("HKCU", UNINSTALL, 64, "user")]
        for sid in self.reader.registry_key_names("HKU", ""):
            if sid.startswith("S-1-5-21-") and not sid.endswith("_Classes"):
                sources.append(("HKU", f"{sid}\\{UNINSTALL}", 64, "user"))
        return sources

    def software(self) -> tuple[list[dict[str, Any]], int]:
        """What "Apps & features" lists: named entries that are neither system components nor updates."""
        entries = []
        for hive, path, view, scope in self.uninstall_sources():
            for row in self.reader.registry_subkeys(hive, path, view):
                name = clean_text(row.get("DisplayName"), 200)
                if not name or _int(row.get("SystemComponent")) == 1 or row.get("ParentKeyName"):
                    continue
                if row.get("ReleaseType") in UPDATE_RELEASE_TYPES:
                    continue
                entries.append({"name": name, "version": clean_text(row.get("DisplayVersion"), 100),
                                "publisher": clean_text(row.get("Publisher"), 100), "scope": scope})
        return budget_software(entries)

    # ---- identity -----------------------------------------------------------------------------
    def identity_sources(self) -> IdentitySources:
        """SMBIOS serials and UUID, MachineGuid, the machine SID, and built-in NICs' burnt-in MACs."""
        rows = self.reader.cim(IDENTITY_QUERIES)
        cs, product, board = _first(rows.get(CS.cls)), _first(rows.get(CS_PRODUCT.cls)), _first(rows.get(BOARD.cls))
        macs = set()
        for nic in rows.get(NICS.cls, []):
            pnp = str(nic.get("PNPDeviceID") or "").upper()
            name = str(nic.get("Name") or "")
            if nic.get("PhysicalAdapter") is False or pnp.startswith(NOT_BUILT_IN) or VIRTUAL_ADAPTER.search(name):
                continue
            mac = normalize_mac(nic.get("MACAddress"))
            if mac and is_hardware_mac(mac):
                macs.add(mac)
        return IdentitySources(
            hostname=clean_text(cs.get("DNSHostName")) or clean_text(cs.get("Name")) or self._hostname(),
            vendor=clean_text(cs.get("Manufacturer")), model=clean_text(cs.get("Model")),
            board_serial=clean_text(board.get("SerialNumber")),
            product_serial=clean_text(product.get("IdentifyingNumber")),
            product_uuid=clean_text(product.get("UUID")),
            machine_id=clean_text(self.reader.registry_value("HKLM", CRYPTOGRAPHY, "MachineGuid")),
            os_sid=machine_sid(rows.get(ACCOUNTS.cls, [])), macs=tuple(sorted(macs)),
        )

    # ---- actions ------------------------------------------------------------------------------
    def power_argv(self, action: str, delay_s: int, notice: str | None) -> list[str]:
        """``shutdown /r|/s /t N [/c notice]`` (N in seconds), or ``shutdown /a`` to cancel."""
        if action == "cancel":
            return ["shutdown", "/a"]
        argv = ["shutdown", "/r" if action == "reboot" else "/s", "/t", str(max(0, delay_s))]
        text = _windows_text(notice)
        return argv + (["/c", text[:MAX_NOTICE_COMMENT]] if text else [])

    def notify_argv(self, text: str) -> list[str]:
        """``msg * text``: a message box in every user session."""
        return ["msg", "*", _windows_text(text) or ""]


def _windows_text(text: str | None) -> str | None:
    """Double quotes would end the argument in the Windows command line that ``subprocess`` builds."""
    cleaned = clean_notice(text)
    return cleaned.replace('"', "'") if cleaned else None


def machine_sid(accounts: list[dict[str, Any]]) -> str | None:
    """The machine SID: a local account's SID without its last part (the RID)."""
    for row in accounts:
        sid = str(row.get("SID") or "")
        if re.fullmatch(r"S-1-5-21-\d+-\d+-\d+-\d+", sid):
            return sid.rsplit("-", 1)[0]
    return None
