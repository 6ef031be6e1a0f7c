"""Test doubles for the platform layer: a psutil stand-in, a Windows reader replaying recorded outputs, a runner."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from agents.platform.base import CommandResult
from agents.platform.windows import UNINSTALL, CimQuery, parse_cim_json

DATA = Path(__file__).parent / "data"
WINDOWS = DATA / "windows"


class FakePsutil:
    """Just enough of psutil for a machine that is not this one (Windows figures on a Linux CI)."""

    AF_LINK = -1  # psutil's value on Windows

    def __init__(self, *, battery: Any = None, services: dict[str, str] | None = None,
                 processes: Sequence[str] = (), boot: float = 1_732_838_400.0) -> None:
        self._battery = battery
        self._services = services or {}
        self._processes = processes
        self._boot = boot

    def cpu_percent(self, interval: float | None = None) -> float:
        """A fixed load."""
        return 12.5

    def virtual_memory(self) -> Any:
        """8 GiB, 61.2% used."""
        return SimpleNamespace(total=8 * 1024**3, percent=61.2)

    def boot_time(self) -> float:
        """A fixed boot."""
        return self._boot

    def cpu_count(self, logical: bool = True) -> int:
        """4 cores, 8 threads."""
        return 8 if logical else 4

    def disk_partitions(self, all: bool = False) -> list[Any]:  # noqa: A002 - psutil's name
        """C:, a DVD drive and a USB stick (both skipped: not this machine's disks to fill)."""
        return [SimpleNamespace(device="C:\\", mountpoint="C:\\", fstype="NTFS", opts="rw,fixed"),
                SimpleNamespace(device="D:\\", mountpoint="D:\\", fstype="UDF", opts="ro,cdrom"),
                SimpleNamespace(device="E:\\", mountpoint="E:\\", fstype="FAT32", opts="rw,removable")]

    def disk_usage(self, path: str) -> Any:
        """A 256 GB system disk."""
        return SimpleNamespace(total=255_369_785_344, percent=47.3)

    def users(self) -> list[Any]:
        """One teacher logged in twice (console and a remote session) counts once."""
        return [SimpleNamespace(name="giaovien"), SimpleNamespace(name="giaovien")]

    def sensors_battery(self) -> Any:
        """The configured battery state, or None (a desktop)."""
        return self._battery

    def net_if_addrs(self) -> dict[str, list[Any]]:
        """Ethernet and a loopback pseudo-interface, as psutil names them on Windows."""
        return {
            "Ethernet": [SimpleNamespace(family=-1, address="B0-7B-25-1A-2C-3D"),
                         SimpleNamespace(family=2, address="10.20.1.57")],
            "Loopback Pseudo-Interface 1": [SimpleNamespace(family=2, address="127.0.0.1")],
        }

    def net_if_stats(self) -> dict[str, Any]:
        """Ethernet up at 1 Gb/s."""
        return {"Ethernet": SimpleNamespace(isup=True, speed=1000)}

    def win_service_get(self, name: str) -> Any:
        """A service with the configured status; unknown names raise like psutil.NoSuchProcess."""
        if name not in self._services:
            raise LookupError(name)
        status = self._services[name]
        return SimpleNamespace(status=lambda: status)

    def process_iter(self, attrs: list[str]) -> list[Any]:
        """The configured process names."""
        return [SimpleNamespace(info={"name": n, "exe": f"C:\\Program Files\\x\\{n}"}) for n in self._processes]


class RecordedReader:
    """Replays one machine's recorded ``Get-CimInstance ... | ConvertTo-Json`` and registry outputs."""

    def __init__(self, machine: str, overrides: dict[str, list[dict[str, Any]]] | None = None) -> None:
        self.folder = WINDOWS / machine
        self.overrides = overrides or {}
        self.cim_calls: list[tuple[str, ...]] = []

    def cim(self, queries: Sequence[CimQuery]) -> dict[str, list[dict[str, Any]]]:
        """Each class from its file; a class with no recording is one that could not be queried."""
        self.cim_calls.append(tuple(q.cls for q in queries))
        out = {}
        for q in queries:
            if q.cls in self.overrides:
                out[q.cls] = self.overrides[q.cls]
                continue
            path = self.folder / "cim" / f"{q.cls}.json"
            if path.exists():
                out[q.cls] = parse_cim_json(path.read_text(encoding="utf-8"))
        return out

    def registry_subkeys(self, hive: str, path: str, view: int = 64) -> list[dict[str, Any]]:
        """The recorded Uninstall listings."""
        assert path.endswith(UNINSTALL), path
        sid = path.split("\\", 1)[0]
        name = f"HKU_{sid}_Uninstall.json" if hive == "HKU" else f"{hive}{view}_Uninstall.json"
        file = self.folder / "registry" / name
        return parse_cim_json(file.read_text(encoding="utf-8")) if file.exists() else []

    def registry_value(self, hive: str, path: str, name: str, view: int = 64) -> Any:
        """The recorded single values."""
        values = json.loads((self.folder / "registry" / "values.json").read_text(encoding="utf-8"))
        return values.get(f"{hive}\\{path}\\{name}")

    def registry_key_names(self, hive: str, path: str) -> list[str]:
        """The recorded loaded user hives."""
        file = self.folder / "registry" / f"{hive}_keys.json"
        return json.loads(file.read_text(encoding="utf-8")) if file.exists() else []


class RecordingRunner:
    """A subprocess runner that answers from a table and remembers what was asked."""

    def __init__(self, answers: dict[str, CommandResult | None] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult | None:
        """The answer registered for the program name, else "not installed"."""
        self.calls.append(list(argv))
        return self.answers.get(argv[0])
