"""Linux platform: against this machine where it can be checked independently, and fake sysfs/procfs trees."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from pathlib import Path

import psutil
import pytest

from agents.platform import current_platform
from agents.platform.base import CommandResult
from agents.platform.linux import LinuxPlatform, parse_input_devices
from classfleet_wire import Heartbeat, Inventory, encode
from classfleet_wire.models import MAX_PAYLOAD_BYTES

from .fakes import DATA, FakePsutil, RecordingRunner

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads this Linux machine")
LINUX = DATA / "linux"


def write(root: Path, relative: str, text: str) -> Path:
    """One sysfs-style file (value plus newline)."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return path


# ---- this machine -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> LinuxPlatform:
    """The platform of the machine running the tests (read-only use)."""
    return LinuxPlatform()


def test_current_platform_is_linux() -> None:
    assert isinstance(current_platform(), LinuxPlatform)


def test_heartbeat_is_a_valid_wire_payload_and_matches_the_disks(real: LinuxPlatform) -> None:
    figures = real.heartbeat()
    assert set(figures) == {"uptime_s", "cpu_pct", "mem_pct", "disk", "temp_c"}
    Heartbeat(session=1, seq=1, ts=time.time(), **figures)  # raises if the contract is broken
    assert figures["disk"], "this machine has at least its root file system"
    for disk in figures["disk"]:
        assert disk["total_bytes"] == shutil.disk_usage(disk["mount"]).total
    assert abs(figures["uptime_s"] - (time.time() - psutil.boot_time())) < 5


def test_inventory_matches_what_the_machine_says_independently(real: LinuxPlatform) -> None:
    inventory = real.inventory()
    hw = inventory["hardware"]
    assert hw["hostname"] == socket.gethostname()
    assert hw["os"] == "Linux"
    assert hw["ram_bytes"] == psutil.virtual_memory().total
    assert hw["cpu_count"] == os.cpu_count()
    assert hw["boot_time"] == pytest.approx(psutil.boot_time(), abs=1)
    expected_macs = {
        name: addr.address for name, addrs in psutil.net_if_addrs().items() for addr in addrs
        if addr.family == psutil.AF_LINK and name != "lo"
    }
    assert {i["name"]: i["mac"] for i in hw["network"] if i["mac"]} == expected_macs
    ips = {a.address for addrs in psutil.net_if_addrs().values() for a in addrs if a.family == socket.AF_INET}
    assert {ip for i in hw["network"] for ip in i["ipv4"]} == ips - {"127.0.0.1"}
    for key in ("vendor", "model", "serial", "bios_version", "cpu_model", "disks", "os_name", "agent_version"):
        assert key in hw
    # The whole inventory goes out as one wire payload.
    payload = Inventory(session=1, seq=2, ts=time.time(), hash="0123456789abcdef", **inventory)
    assert len(encode(payload)) <= MAX_PAYLOAD_BYTES


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a dpkg system")
def test_software_is_dpkgs_installed_packages(real: LinuxPlatform) -> None:
    software, total = real.software()
    import subprocess

    out = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Status} ${Package}\n"], capture_output=True,
                         text=True, check=True, timeout=30).stdout
    installed = {line.split()[1] for line in out.splitlines() if line.startswith("installed ")}
    assert total == len(installed)
    assert {s["name"] for s in software} <= installed
    assert "python3" in {s["name"] for s in software} or "dpkg" in {s["name"] for s in software}


def test_identity_sources_of_this_machine(real: LinuxPlatform) -> None:
    sources = real.identity_sources()
    assert sources.hostname == socket.gethostname()
    machine_id = Path("/etc/machine-id")
    if machine_id.exists():
        assert sources.machine_id == machine_id.read_text().strip()
    all_macs = {a.address for addrs in psutil.net_if_addrs().values() for a in addrs if a.family == psutil.AF_LINK}
    assert set(sources.macs) <= all_macs  # only burnt-in ones: none in most containers


def test_live_facts_of_this_machine(real: LinuxPlatform) -> None:
    me = psutil.Process().name()
    facts = real.live_facts([me, "no-such-service-classfleet"])
    assert facts["users"] == len({u.name for u in psutil.users()})
    assert facts["services"] == {me: True, "no-such-service-classfleet": False}
    for key in ("battery_percent", "battery_plugged", "battery_health_pct", "displays", "touch"):
        assert key in facts


# ---- fake trees: firmware ------------------------------------------------------------------------


def test_dmi_values_are_trimmed_and_unreadable_ones_are_none(tmp_path: Path) -> None:
    dmi = "sys/class/dmi/id"
    write(tmp_path, f"{dmi}/sys_vendor", "LENOVO   ")
    write(tmp_path, f"{dmi}/product_name", "11T3S0H700")
    write(tmp_path, f"{dmi}/board_serial", "L1HF16Y01AB")
    write(tmp_path, f"{dmi}/bios_version", "M3AKT4AA")
    write(tmp_path, f"{dmi}/bios_date", "03/15/2023")
    write(tmp_path, f"{dmi}/product_uuid", "")  # empty: unknown
    # product_serial is root-only (0400) on a real system; a directory stands in for "cannot be read".
    (tmp_path / dmi / "product_serial").mkdir()
    platform = LinuxPlatform(root=tmp_path, ps=FakePsutil(), run=RecordingRunner())
    dmi_values = platform.dmi()
    assert dmi_values["sys_vendor"] == "LENOVO"
    assert dmi_values["product_serial"] is None
    assert dmi_values["product_uuid"] is None
    assert dmi_values["chassis_type"] is None  # absent
    hw = platform.inventory()["hardware"]
    assert (hw["vendor"], hw["model"], hw["serial"], hw["board_serial"]) == ("LENOVO", "11T3S0H700", None,
                                                                              "L1HF16Y01AB")
    assert (hw["bios_version"], hw["bios_date"]) == ("M3AKT4AA", "03/15/2023")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads 0400 files anyway")
def test_permission_denied_is_none(tmp_path: Path) -> None:
    path = write(tmp_path, "sys/class/dmi/id/product_serial", "PF3ABCDE")
    path.chmod(0)
    assert LinuxPlatform(root=tmp_path, ps=FakePsutil()).dmi()["product_serial"] is None


def test_placeholder_vendor_model_and_serial_are_dropped_from_the_inventory(tmp_path: Path) -> None:
    dmi = "sys/class/dmi/id"
    write(tmp_path, f"{dmi}/sys_vendor", "To be filled by O.E.M.")
    write(tmp_path, f"{dmi}/product_name", "Default string")
    write(tmp_path, f"{dmi}/product_serial", "System Serial Number")
    write(tmp_path, f"{dmi}/board_serial", "Default string")
    hw = LinuxPlatform(root=tmp_path, ps=FakePsutil(), run=RecordingRunner()).inventory()["hardware"]
    assert (hw["vendor"], hw["model"], hw["serial"]) == (None, None, None)
    assert hw["board_serial"] == "Default string"  # kept as firmware says: it is diagnostic


def test_os_cpu_and_block_disks(tmp_path: Path) -> None:
    write(tmp_path, "etc/os-release", 'NAME="Ubuntu"\nVERSION_ID="22.04"\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\nID=ubuntu')
    write(tmp_path, "proc/cpuinfo", "processor\t: 0\nvendor_id\t: GenuineIntel\n"
                                    "model name\t: Intel(R) Core(TM) i3-10100 CPU @ 3.60GHz\n")
    write(tmp_path, "sys/block/nvme0n1/size", str(500107862016 // 512))
    write(tmp_path, "sys/block/nvme0n1/device/model", "WDC PC SN530 SDBPNPZ-512G-1014   ")
    write(tmp_path, "sys/block/nvme0n1/queue/rotational", "0")
    write(tmp_path, "sys/block/sda/size", str(1000204886016 // 512))
    write(tmp_path, "sys/block/sda/queue/rotational", "1")
    write(tmp_path, "sys/block/sda/removable", "0")
    write(tmp_path, "sys/block/loop0/size", "1024")
    write(tmp_path, "sys/block/zram0/size", "8388608")
    write(tmp_path, "sys/block/sr0/size", "2097151")
    hw = LinuxPlatform(root=tmp_path, ps=FakePsutil(), run=RecordingRunner()).inventory()["hardware"]
    assert (hw["os_name"], hw["os_version"], hw["os_id"]) == ("Ubuntu 22.04.4 LTS", "22.04", "ubuntu")
    assert hw["cpu_model"] == "Intel(R) Core(TM) i3-10100 CPU @ 3.60GHz"
    assert hw["disks"] == [
        {"device": "nvme0n1", "size_bytes": 500107862016, "model": "WDC PC SN530 SDBPNPZ-512G-1014",
         "removable": False, "ssd": True},
        {"device": "sda", "size_bytes": 1000204886016, "model": None, "removable": False, "ssd": False},
    ]


def test_software_from_dpkg_skips_removed_packages_and_falls_back_to_rpm(tmp_path: Path) -> None:
    dpkg = CommandResult(0, "installed\tbash\t5.1-6ubuntu1\nconfig-files\told-thing\t1.0\n"
                            "installed\tlibreoffice-writer\t1:7.3.7-0ubuntu0.22.04.5\n")
    run = RecordingRunner({"dpkg-query": dpkg})
    software, total = LinuxPlatform(root=tmp_path, ps=FakePsutil(), run=run).software()
    assert software == [{"name": "bash", "version": "5.1-6ubuntu1"},
                        {"name": "libreoffice-writer", "version": "1:7.3.7-0ubuntu0.22.04.5"}]
    assert total == 2
    assert run.calls[0][:2] == ["dpkg-query", "-W"]

    rpm = CommandResult(0, "bash\t5.2.15-5.fc39\ngpg-pubkey\t18b8e74c-62f2920f\nfirefox\t121.0-1.fc39\n")
    run = RecordingRunner({"rpm": rpm})
    software, _ = LinuxPlatform(root=tmp_path, ps=FakePsutil(), run=run).software()
    assert [s["name"] for s in software] == ["bash", "firefox"]
    assert [c[0] for c in run.calls] == ["dpkg-query", "rpm"]

    assert LinuxPlatform(root=tmp_path, ps=FakePsutil(), run=RecordingRunner()).software() == ([], 0)


def test_software_is_cut_to_fit_one_payload(tmp_path: Path) -> None:
    lines = "".join(f"installed\tlib-package-with-a-long-name-{i:05d}\t{i}.0.0-1ubuntu0.22.04.1\n"
                    for i in range(6000))
    platform = LinuxPlatform(root=tmp_path, ps=FakePsutil(), run=RecordingRunner({"dpkg-query": CommandResult(0,
                                                                                                         lines)}))
    inventory = platform.inventory()
    assert inventory["hardware"]["software_count"] == 6000
    assert inventory["hardware"]["software_truncated"] is True
    payload = Inventory(session=1, seq=1, ts=time.time(), hash="0123456789abcdef", **inventory)
    assert len(encode(payload)) <= MAX_PAYLOAD_BYTES


# ---- fake trees: displays, touch, battery ----------------------------------------------------------


def test_displays_are_connected_drm_connectors(tmp_path: Path) -> None:
    drm = "sys/class/drm"
    write(tmp_path, f"{drm}/card0-eDP-1/status", "connected")
    write(tmp_path, f"{drm}/card0-HDMI-A-1/status", "connected")
    write(tmp_path, f"{drm}/card0-DP-1/status", "disconnected")
    write(tmp_path, f"{drm}/card0/dev", "226:0")
    write(tmp_path, f"{drm}/renderD128/dev", "226:128")
    write(tmp_path, f"{drm}/version", "drm 1.1.0 20060810")
    platform = LinuxPlatform(root=tmp_path, ps=FakePsutil())
    assert [d.name for d in platform.displays() or []] == ["HDMI-A-1", "eDP-1"]
    assert platform.live_facts([])["displays"] == 2

    for connector in ("card0-eDP-1", "card0-HDMI-A-1"):
        write(tmp_path, f"{drm}/{connector}/status", "disconnected")
    assert platform.displays() == []
    assert platform.live_facts([])["displays"] == 0  # display.missing raises on a smart board


def test_no_drm_at_all_is_unknown(tmp_path: Path) -> None:
    assert LinuxPlatform(root=tmp_path, ps=FakePsutil()).displays() is None


def test_touch_screen_of_a_smart_board(tmp_path: Path) -> None:
    text = (LINUX / "input_devices_smartboard.txt").read_text()
    write(tmp_path, "proc/bus/input/devices", text)
    platform = LinuxPlatform(root=tmp_path, ps=FakePsutil())
    touch = platform.touch_devices()
    assert [(t.name, t.id) for t in touch or []] == [("ILITEK ILITEK-TP", "222a:0001")]
    assert platform.live_facts([])["touch"] == 1


def test_desktop_without_touch_screen_has_none(tmp_path: Path) -> None:
    # A touchpad, a mouse and a VM's absolute "tablet" are not touch screens.
    write(tmp_path, "proc/bus/input/devices", (LINUX / "input_devices_desktop.txt").read_text())
    platform = LinuxPlatform(root=tmp_path, ps=FakePsutil())
    assert platform.touch_devices() == []
    assert platform.live_facts([])["touch"] == 0


def test_old_touch_frame_without_direct_property_is_found_by_name() -> None:
    touch = parse_input_devices((LINUX / "input_devices_egalax.txt").read_text())
    assert [t.name for t in touch] == ["eGalax Inc. USB TouchController"]


def test_unreadable_input_devices_is_unknown(tmp_path: Path) -> None:
    assert LinuxPlatform(root=tmp_path, ps=FakePsutil()).touch_devices() is None


def _battery(root: Path, name: str, **files: str) -> None:
    for key, value in files.items():
        write(root, f"sys/class/power_supply/{name}/{key}", value)


def test_worn_battery_health_from_energy(tmp_path: Path) -> None:
    _battery(tmp_path, "BAT0", type="Battery", present="1", status="Discharging", capacity="64",
             energy_full="38000000", energy_full_design="50000000", energy_now="24320000")
    _battery(tmp_path, "AC", type="Mains", online="0")
    _battery(tmp_path, "hidpp_battery_0", type="Battery", scope="Device", capacity="5", status="Discharging")
    battery = LinuxPlatform(root=tmp_path, ps=FakePsutil()).battery()
    assert battery is not None
    assert (battery.percent, battery.plugged, battery.health_pct) == (64.0, False, 76.0)
    facts = LinuxPlatform(root=tmp_path, ps=FakePsutil()).live_facts([])
    assert (facts["battery_health_pct"], facts["battery_percent"], facts["battery_plugged"]) == (76.0, 64.0, False)


def test_battery_health_from_charge_and_two_packs(tmp_path: Path) -> None:
    _battery(tmp_path, "BAT0", type="Battery", status="Charging", capacity="50",
             charge_full="2100000", charge_full_design="4400000")
    _battery(tmp_path, "BAT1", type="Battery", status="Full", capacity="100",
             charge_full="1900000", charge_full_design="2000000")
    battery = LinuxPlatform(root=tmp_path, ps=FakePsutil()).battery()
    assert battery is not None
    assert battery.health_pct == pytest.approx(100 * 4000000 / 6400000, abs=0.05)
    assert (battery.percent, battery.plugged) == (75.0, True)


def test_no_battery(tmp_path: Path) -> None:
    assert LinuxPlatform(root=tmp_path, ps=FakePsutil()).battery() is None
    _battery(tmp_path, "AC", type="Mains", online="1")
    platform = LinuxPlatform(root=tmp_path, ps=FakePsutil())
    assert platform.battery() is None
    assert platform.live_facts([])["battery_health_pct"] is None


def test_battery_without_design_capacity_has_unknown_health(tmp_path: Path) -> None:
    _battery(tmp_path, "BAT0", type="Battery", status="Unknown", capacity="80")
    battery = LinuxPlatform(root=tmp_path, ps=FakePsutil()).battery()
    assert battery is not None
    assert (battery.percent, battery.plugged, battery.health_pct) == (80.0, None, None)


# ---- services ------------------------------------------------------------------------------------


def _systemctl(load: str, active: str, sub: str) -> CommandResult:
    return CommandResult(0, f"LoadState={load}\nActiveState={active}\nSubState={sub}\n")


@pytest.mark.parametrize(("answer", "expected"), [
    (_systemctl("loaded", "active", "running"), True),
    (_systemctl("loaded", "reloading", "reload"), True),
    (_systemctl("loaded", "failed", "failed"), False),
    (_systemctl("loaded", "inactive", "dead"), False),
    (_systemctl("loaded", "activating", "auto-restart"), False),
    (_systemctl("loaded", "activating", "start"), True),
])
def test_service_state_from_systemd(tmp_path: Path, answer: CommandResult, expected: bool) -> None:
    run = RecordingRunner({"systemctl": answer})
    assert LinuxPlatform(root=tmp_path, ps=FakePsutil(), run=run).service_running("cups") is expected
    assert run.calls == [["systemctl", "show", "--property=LoadState,ActiveState,SubState", "--", "cups.service"]]


def test_unknown_unit_or_no_systemd_falls_back_to_processes(tmp_path: Path) -> None:
    not_found = RecordingRunner({"systemctl": _systemctl("not-found", "inactive", "dead")})
    ps = FakePsutil(processes=["myViewBoard"])
    assert LinuxPlatform(root=tmp_path, ps=ps, run=not_found).service_running("myViewBoard") is True
    assert LinuxPlatform(root=tmp_path, ps=ps, run=not_found).service_running("zoom") is False
    no_systemd = RecordingRunner({"systemctl": CommandResult(1, "", "System has not been booted with systemd")})
    assert LinuxPlatform(root=tmp_path, ps=ps, run=no_systemd).service_running("myviewboard") is True


# ---- identity ------------------------------------------------------------------------------------


def _nic(root: Path, name: str, mac: str, device: str | None, assign: str = "0") -> None:
    write(root, f"sys/class/net/{name}/address", mac)
    write(root, f"sys/class/net/{name}/addr_assign_type", assign)
    if device is not None:
        target = root / "sys/devices" / device
        target.mkdir(parents=True, exist_ok=True)
        (root / f"sys/class/net/{name}/device").symlink_to(target)


def test_identity_sources_from_a_fake_tree(tmp_path: Path) -> None:
    write(tmp_path, "etc/machine-id", "4f1c2d3e5a6b7c8d9e0f1a2b3c4d5e6f")
    dmi = "sys/class/dmi/id"
    write(tmp_path, f"{dmi}/sys_vendor", "HP")
    write(tmp_path, f"{dmi}/product_name", "HP ProDesk 400 G9 SFF")
    write(tmp_path, f"{dmi}/product_serial", "4CE2301XYZ")
    write(tmp_path, f"{dmi}/board_serial", "PXVJK0ABC1234Z")
    write(tmp_path, f"{dmi}/product_uuid", "a1b2c3d4-0000-4e5f-8a9b-0c1d2e3f4a5b")
    _nic(tmp_path, "enp1s0", "7C:57:58:12:34:56", "pci0000:00/0000:00:1c.0/0000:01:00.0")
    _nic(tmp_path, "wlp2s0", "a4:c3:f0:aa:bb:cc", "pci0000:00/0000:00:1c.4/0000:02:00.0")
    _nic(tmp_path, "wlp2s0mac", "a6:c3:f0:aa:bb:cd", "pci0000:00/0000:00:1c.4/0000:02:00.1")  # locally administered
    _nic(tmp_path, "enx000ec6aabbcc", "00:0e:c6:aa:bb:cc", "pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0")
    _nic(tmp_path, "wlan1", "00:11:22:33:44:55", "pci0000:00/0000:00:1d.0/0000:03:00.0", assign="3")
    _nic(tmp_path, "docker0", "02:42:ac:11:00:01", None)
    _nic(tmp_path, "veth1a2b3c", "5e:2b:11:22:33:44", None)
    _nic(tmp_path, "lo", "00:00:00:00:00:00", None)
    sources = LinuxPlatform(root=tmp_path, ps=FakePsutil(), hostname=lambda: "lab1-pc07").identity_sources()
    assert sources.hostname == "lab1-pc07"
    assert (sources.vendor, sources.product_serial, sources.board_serial) == ("HP", "4CE2301XYZ", "PXVJK0ABC1234Z")
    assert sources.product_uuid == "a1b2c3d4-0000-4e5f-8a9b-0c1d2e3f4a5b"
    assert sources.machine_id == "4f1c2d3e5a6b7c8d9e0f1a2b3c4d5e6f"
    assert sources.macs == ("7c:57:58:12:34:56", "a4:c3:f0:aa:bb:cc")
    assert sources.as_dict()["macs"] == ["7c:57:58:12:34:56", "a4:c3:f0:aa:bb:cc"]
