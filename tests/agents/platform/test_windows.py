"""Windows platform on recorded PowerShell/registry outputs: a Dell laptop and a smart board's OPS module."""

from __future__ import annotations

import base64
import time
from types import SimpleNamespace
from typing import Any

import pytest

from agents.identity import derive_device_id
from agents.platform.base import CommandResult
from agents.platform.windows import (
    NICS,
    PNP_HID,
    UNINSTALL,
    LocalWindowsReader,
    WindowsPlatform,
    cim_script,
    decode_wmi_string,
    parse_cim_batch,
    parse_cim_datetime,
    parse_cim_json,
)
from classfleet_wire import Heartbeat, Inventory, encode
from classfleet_wire.models import MAX_PAYLOAD_BYTES

from .fakes import WINDOWS, FakePsutil, RecordedReader, RecordingRunner

LAPTOP_SID = "S-1-5-21-3623811015-3361044348-30300820"


def laptop(**kwargs: Any) -> WindowsPlatform:
    """The recorded Dell Latitude, its battery at 87% on AC."""
    ps = kwargs.pop("ps", FakePsutil(battery=SimpleNamespace(percent=87.0, power_plugged=True, secsleft=-2)))
    return WindowsPlatform(RecordedReader("laptop"), ps=ps, **kwargs)


def ops(reader: RecordedReader | None = None) -> WindowsPlatform:
    """The recorded smart board OPS module: placeholder firmware strings, a touch frame, no battery."""
    return WindowsPlatform(reader or RecordedReader("ops"), ps=FakePsutil())


# ---- parsing ---------------------------------------------------------------------------------------


def test_convertto_json_shapes() -> None:
    assert parse_cim_json("") == []
    assert parse_cim_json("\r\n") == []
    assert parse_cim_json('{"Name": "x"}') == [{"Name": "x"}]  # one instance: an object, not a list
    assert parse_cim_json('\ufeff[{"Name": "x"}, {"Name": "y"}]') == [{"Name": "x"}, {"Name": "y"}]
    assert parse_cim_json("Get-CimInstance : Access denied") == []
    single_disk = parse_cim_json((WINDOWS / "ops/cim/Win32_DiskDrive.json").read_text())
    assert [d["Model"] for d in single_disk] == ["NETAC SSD 256GB"]


def test_cim_datetimes_in_every_powershell_flavour() -> None:
    assert parse_cim_datetime("/Date(1686787200000)/") == 1686787200.0  # Windows PowerShell 5.1
    assert parse_cim_datetime("2021-03-22T07:00:00+07:00") == 1616371200.0  # PowerShell 7
    assert parse_cim_datetime("20210322070000.000000+420") == 1616371200.0  # WMI's DMTF text
    assert parse_cim_datetime({"value": "/Date(0)/", "DisplayHint": 2}) == 0.0
    assert parse_cim_datetime(None) is None
    assert parse_cim_datetime("not a date") is None


def test_wmi_monitor_names_are_utf16_arrays() -> None:
    assert decode_wmi_string([68, 69, 76, 76, 32, 80, 50, 50, 49, 57, 72, 0, 0]) == "DELL P2219H"
    assert decode_wmi_string([]) is None
    assert decode_wmi_string("plain") == "plain"


# ---- the laptop ------------------------------------------------------------------------------------


def test_laptop_inventory_hardware() -> None:
    hw = laptop().inventory()["hardware"]
    assert hw["hostname"] == "GV-LAPTOP-03"
    assert (hw["vendor"], hw["model"], hw["serial"]) == ("Dell Inc.", "Latitude 3420", "7XK3QH3")
    assert (hw["os"], hw["os_name"], hw["os_version"]) == ("Windows", "Microsoft Windows 11 Pro", "10.0.22631")
    assert (hw["os_release"], hw["os_build"]) == ("23H2", "22631.4460")
    assert (hw["bios_vendor"], hw["bios_version"], hw["bios_date"]) == ("Dell Inc.", "1.25.0", "2023-06-15")
    assert (hw["board_model"], hw["board_serial"]) == ("0K4KJ1", "/7XK3QH3/CNFCW0021Q00KH/")
    assert hw["product_uuid"] == "4C4C4544-0058-4B10-8033-B7C04F514833"
    assert hw["cpu_model"] == "11th Gen Intel(R) Core(TM) i5-1135G7 @ 2.40GHz"
    assert hw["chassis_type"] == "10"  # notebook
    assert hw["ram_bytes"] == 8 * 1024**3  # psutil's figure wins over WMI's
    assert [(d["model"], d["size_bytes"], d["interface"]) for d in hw["disks"]] == [
        ("KINGSTON SNVS256G", 256052966400, "SCSI"), ("SanDisk Cruzer Blade USB Device", 15631122432, "USB")]
    assert hw["network"] == [{"name": "Ethernet", "mac": "b0:7b:25:1a:2c:3d", "ipv4": ["10.20.1.57"], "ipv6": [],
                              "up": True, "speed_mbps": 1000}]
    assert hw["boot_time"] == 1_732_838_400.0
    assert hw["agent_version"]


def test_laptop_software_from_the_uninstall_keys() -> None:
    software = laptop().inventory()["software"]
    names = [s["name"] for s in software]
    assert names == sorted(names, key=str.casefold)
    assert names.count("Google Chrome") == 1  # in both the 64- and 32-bit views
    for present in ("7-Zip 23.01 (x64)", "Microsoft Office Professional Plus 2019 - vi-vn", "Foxit PDF Reader",
                    "UniKey 4.6 RC2", "classfleet-agent", "Zalo", "GeoGebra Classic", "Microsoft OneDrive"):
        assert present in names
    for absent in ("Office 16 Click-to-Run Extensibility Component",  # SystemComponent
                   "Security Update for Microsoft Windows (KB5044284)"):  # an update
        assert absent not in names
    assert len(software) == 15  # 8 machine-wide 64-bit, 4 more 32-bit, 3 in the teacher's hive
    zalo = next(s for s in software if s["name"] == "Zalo")
    assert zalo == {"name": "Zalo", "version": "24.11.1", "publisher": "VNG Corp.", "scope": "user"}


def test_laptop_inventory_is_one_valid_payload() -> None:
    inventory = laptop().inventory()
    payload = Inventory(session=3, seq=1, ts=time.time(), hash="abcdef0123456789", **inventory)
    assert len(encode(payload)) <= MAX_PAYLOAD_BYTES


def test_laptop_heartbeat_and_live_facts() -> None:
    platform = laptop()
    figures = platform.heartbeat()
    Heartbeat(session=1, seq=1, ts=time.time(), **figures)
    assert figures["disk"] == [{"mount": "C:\\", "total_bytes": 255_369_785_344, "used_pct": 47.3}]  # no DVD, no stick
    assert figures["temp_c"] == pytest.approx(48.05, abs=0.06)  # 3212 tenths of a kelvin
    facts = platform.live_facts(["Spooler"])
    assert facts["users"] == 1
    assert (facts["battery_percent"], facts["battery_plugged"], facts["battery_health_pct"]) == (87.0, True, 71.6)
    assert facts["displays"] == 2  # the projector seen last week is not active
    assert facts["touch"] == 0  # a touch pad is not a touch screen
    assert [(d.vendor, d.model) for d in platform.displays() or []] == [("AUO", None), ("DEL", "DELL P2219H")]


def test_battery_from_wmi_when_psutil_has_none() -> None:
    battery = laptop(ps=FakePsutil(battery=None)).battery()
    assert battery is not None
    assert (battery.percent, battery.plugged, battery.health_pct) == (87.0, True, 71.6)


def test_slow_wmi_queries_are_cached() -> None:
    clock = [0.0]
    reader = RecordedReader("laptop")
    platform = WindowsPlatform(reader, ps=FakePsutil(), monotonic=lambda: clock[0], live_ttl_s=120,
                               slow_ttl_s=3600)
    for _ in range(3):
        platform.heartbeat()
        platform.live_facts([])
    assert len(reader.cim_calls) == 2  # one live batch, one battery batch
    clock[0] = 121.0
    platform.live_facts([])
    assert len(reader.cim_calls) == 3
    clock[0] = 3601.0
    platform.live_facts([])
    assert len(reader.cim_calls) == 5


def test_laptop_identity_sources() -> None:
    sources = laptop().identity_sources()
    assert sources.hostname == "GV-LAPTOP-03"
    assert (sources.product_serial, sources.board_serial) == ("7XK3QH3", "/7XK3QH3/CNFCW0021Q00KH/")
    assert sources.product_uuid == "4C4C4544-0058-4B10-8033-B7C04F514833"
    assert sources.machine_id == "6f3b8c2a-1d4e-4f5a-9b7c-0e1d2c3b4a59"
    assert sources.os_sid == LAPTOP_SID
    # Built-in Ethernet and Wi-Fi only: not Bluetooth PAN, the USB dongle or Wi-Fi Direct's local address.
    assert sources.macs == ("4c:79:6e:9a:01:22", "b0:7b:25:1a:2c:3d")


# ---- the smart board's OPS -------------------------------------------------------------------------


def test_ops_inventory_drops_placeholder_firmware_strings() -> None:
    inventory = ops().inventory()
    hw = inventory["hardware"]
    assert (hw["vendor"], hw["model"], hw["serial"]) == (None, None, None)
    assert hw["board_serial"] == "Default string"
    assert (hw["os_name"], hw["os_build"], hw["bios_date"]) == ("Microsoft Windows 10 Pro", "19045.5131",
                                                                 "2021-03-22")
    assert [d["model"] for d in hw["disks"]] == ["NETAC SSD 256GB"]
    assert [s["name"] for s in inventory["software"]] == ["ActivInspire", "Microsoft Office Standard 2016",
                                                          "myViewBoard", "Zoom Workplace (64-bit)"]


def test_ops_display_and_touch() -> None:
    platform = ops()
    assert [d.model for d in platform.displays() or []] == ["IFP7550"]
    touch = platform.touch_devices()
    # Found by HID usage (the name is Vietnamese); the pen and the unplugged old frame do not count.
    assert [t.name for t in touch or []] == ["Màn hình cảm ứng tuân thủ HID"]
    facts = platform.live_facts([])
    assert (facts["displays"], facts["touch"]) == (1, 1)
    assert (facts["battery_health_pct"], facts["battery_percent"]) == (None, None)
    assert platform.heartbeat()["temp_c"] is None


def test_ops_with_the_touch_frame_unplugged() -> None:
    rows = parse_cim_json((WINDOWS / "ops/cim/Win32_PnPEntity.json").read_text(encoding="utf-8"))
    keyboard_only = [r for r in rows if "UP:0001" in " ".join(r["HardwareID"])]
    platform = ops(RecordedReader("ops", overrides={PNP_HID.cls: keyboard_only, "WmiMonitorID": []}))
    facts = platform.live_facts([])
    assert facts["touch"] == 0  # touch.missing
    assert facts["displays"] == 1  # Win32_DesktopMonitor still names the panel


def test_cloned_ops_modules_get_different_ids() -> None:
    """Two boards imaged from one disk: same MachineGuid and SID, same placeholder serials and UUID."""
    second_nics = [{"Name": "Realtek PCIe GbE Family Controller", "MACAddress": "00:E0:4C:68:99:07",
                    "PNPDeviceID": "PCI\\VEN_10EC&DEV_8168&SUBSYS_123410EC&REV_15\\01000000684CE00000",
                    "PhysicalAdapter": True}]
    first = ops().identity_sources()
    second = ops(RecordedReader("ops", overrides={NICS.cls: second_nics})).identity_sources()
    assert (first.machine_id, first.os_sid) == (second.machine_id, second.os_sid)
    assert first.product_uuid == second.product_uuid == "03000200-0400-0500-0006-000700080009"
    assert derive_device_id(first) != derive_device_id(second)


def test_windows_services_then_processes() -> None:
    ps = FakePsutil(services={"Spooler": "running", "wuauserv": "stopped", "BITS": "start_pending"},
                    processes=["Zoom.exe"])
    platform = WindowsPlatform(RecordedReader("ops"), ps=ps)
    assert platform.service_running("Spooler") is True
    assert platform.service_running("wuauserv") is False
    assert platform.service_running("BITS") is True
    assert platform.service_running("zoom") is True  # no such service: the process counts
    assert platform.service_running("myViewBoard") is False
    assert platform.live_facts(["Spooler", "wuauserv"])["services"] == {"Spooler": True, "wuauserv": False}


# ---- the real reader, with its process and registry faked ---------------------------------------------


def test_local_reader_runs_one_encoded_powershell_for_a_batch() -> None:
    batch = (WINDOWS / "ops/batch_live.json").read_text(encoding="utf-8")
    run = RecordingRunner({"powershell.exe": CommandResult(0, batch)})
    platform = WindowsPlatform(LocalWindowsReader(run=run), ps=FakePsutil())
    facts = platform.live_facts([])
    assert (facts["displays"], facts["touch"]) == (1, 1)
    assert len(run.calls) == 2  # the live batch and the battery batch
    for argv in run.calls:
        assert argv[:-1] == ["powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass",
                             "-EncodedCommand"]
    scripts = [base64.b64decode(argv[-1]).decode("utf-16-le") for argv in run.calls]
    script = next(s for s in scripts if "WmiMonitorID" in s)
    assert "Get-CimInstance -Namespace 'root/wmi' -ClassName 'WmiMonitorID'" in script
    assert "-Filter \"PNPClass = 'HIDClass'\"" in script
    assert script.endswith("ConvertTo-Json -Depth 4 -Compress")


def test_local_reader_failure_is_unknown_not_missing() -> None:
    platform = WindowsPlatform(LocalWindowsReader(run=RecordingRunner()), ps=FakePsutil())
    facts = platform.live_facts([])
    assert (facts["displays"], facts["touch"]) == (None, None)  # neither display.missing nor touch.missing
    assert platform.inventory()["hardware"]["vendor"] is None


def test_batch_output_parsing() -> None:
    assert parse_cim_batch('{"A":[{"x":1}],"B":{"y":2},"C":[]}') == {"A": [{"x": 1}], "B": [{"y": 2}], "C": []}
    assert parse_cim_batch("") == {}
    assert parse_cim_batch("[1, 2]") == {}
    assert "SilentlyContinue" in cim_script([NICS])


class FakeKey:
    """A registry key: values and subkeys."""

    def __init__(self, values: dict[str, Any] | None = None, subkeys: dict[str, FakeKey] | None = None) -> None:
        self.values = values or {}
        self.subkeys = subkeys or {}

    def __enter__(self) -> FakeKey:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class FakeWinreg:
    """The handful of ``winreg`` calls LocalWindowsReader makes, over an in-memory tree."""

    HKEY_LOCAL_MACHINE, HKEY_CURRENT_USER, HKEY_USERS = "HKLM", "HKCU", "HKU"
    KEY_READ, KEY_WOW64_64KEY, KEY_WOW64_32KEY = 0x20019, 0x0100, 0x0200

    def __init__(self, trees: dict[tuple[str, int], FakeKey]) -> None:
        self.trees = trees

    def OpenKey(self, key: Any, sub: str, reserved: int = 0, access: int = 0) -> FakeKey:  # noqa: N802
        if isinstance(key, str):
            view = 32 if access & self.KEY_WOW64_32KEY else 64
            key = self.trees.get((key, view)) or self.trees[(key, 64)]
        for part in [p for p in sub.split("\\") if p]:
            if part not in key.subkeys:
                raise FileNotFoundError(part)
            key = key.subkeys[part]
        return key

    def QueryInfoKey(self, key: FakeKey) -> tuple[int, int, int]:  # noqa: N802
        return len(key.subkeys), len(key.values), 0

    def EnumKey(self, key: FakeKey, i: int) -> str:  # noqa: N802
        return list(key.subkeys)[i]

    def EnumValue(self, key: FakeKey, i: int) -> tuple[str, Any, int]:  # noqa: N802
        name = list(key.values)[i]
        return name, key.values[name], 1

    def QueryValueEx(self, key: FakeKey, name: str) -> tuple[Any, int]:  # noqa: N802
        if name not in key.values:
            raise FileNotFoundError(name)
        return key.values[name], 1


def _tree(path: str, leaf: FakeKey) -> FakeKey:
    for part in reversed(path.split("\\")):
        leaf = FakeKey(subkeys={part: leaf})
    return leaf


def test_local_reader_registry_with_winreg() -> None:
    apps64 = FakeKey(subkeys={"7-Zip": FakeKey({"DisplayName": "7-Zip 23.01 (x64)", "DisplayVersion": "23.01"})})
    apps32 = FakeKey(subkeys={"Foxit": FakeKey({"DisplayName": "Foxit PDF Reader", "DisplayVersion": "2024.3"})})
    machine64 = _tree(UNINSTALL, apps64)
    machine64.subkeys["SOFTWARE"].subkeys["Microsoft"].subkeys["Cryptography"] = FakeKey({"MachineGuid": "abc-1"})
    reg = FakeWinreg({("HKLM", 64): machine64, ("HKLM", 32): _tree(UNINSTALL, apps32),
                      ("HKCU", 64): FakeKey(), ("HKU", 64): FakeKey(subkeys={"S-1-5-18": FakeKey()})})
    reader = LocalWindowsReader(run=RecordingRunner(), winreg=reg)
    assert reader.registry_subkeys("HKLM", UNINSTALL, 64) == [
        {"PSChildName": "7-Zip", "DisplayName": "7-Zip 23.01 (x64)", "DisplayVersion": "23.01"}]
    assert [r["DisplayName"] for r in reader.registry_subkeys("HKLM", UNINSTALL, 32)] == ["Foxit PDF Reader"]
    assert reader.registry_subkeys("HKCU", UNINSTALL) == []
    assert reader.registry_value("HKLM", r"SOFTWARE\Microsoft\Cryptography", "MachineGuid") == "abc-1"
    assert reader.registry_value("HKLM", r"SOFTWARE\Microsoft\Cryptography", "Nope") is None
    assert reader.registry_key_names("HKU", "") == ["S-1-5-18"]
    software, total = WindowsPlatform(reader, ps=FakePsutil()).software()
    assert [s["name"] for s in software] == ["7-Zip 23.01 (x64)", "Foxit PDF Reader"]
    assert total == 2
