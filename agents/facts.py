"""What the agent core needs from a machine (``FactSource``), and a simulated machine for the demo.

The real machines are in ``agents.platform`` (Linux and Windows); both return plain data shaped
like the wire contract's heartbeat and inventory payloads, so the core does not care which it has.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from typing import Any, Protocol


class FactSource(Protocol):
    """One machine as the agent sees it: live figures, inventory, and the few actions it may take."""

    def heartbeat(self) -> dict[str, Any]:
        """uptime_s, cpu_pct, mem_pct, disk (list of mount/total_bytes/used_pct), temp_c."""
        ...

    def live_facts(self, services: list[str]) -> dict[str, Any]:
        """Detector inputs beyond the heartbeat: battery_health_pct, displays, touch, services."""
        ...

    def inventory(self) -> dict[str, Any]:
        """{"hardware": {...}, "software": [...]}."""
        ...

    def power(self, action: str, delay_s: int, notice: str | None, dry_run: bool) -> str:
        """Reboot or shut down after ``delay_s`` (dry run: only say what would run)."""
        ...

    def notify(self, text: str, dry_run: bool) -> str:
        """Show a notice to the logged-in user (dry run: only say what would run)."""
        ...


def inventory_hash(inventory: dict[str, Any]) -> str:
    """A stable content hash: inventory is re-sent only when this changes."""
    return hashlib.sha256(json.dumps(inventory, sort_keys=True, default=str).encode()).hexdigest()[:32]


class SimulatedFacts:
    """A believable machine for the demo: figures drift, disks fill, some machines run hot."""

    VENDORS = (("Dell", "OptiPlex 3000"), ("HP", "ProDesk 400 G9"), ("Lenovo", "ThinkCentre M70s"),
               ("ViewSonic", "IFP7550 OPS"), ("Samsung", "Flip Pro OPS"), ("Asus", "ExpertBook B1"))

    def __init__(self, seed: int, profile: str = "pc") -> None:
        self._rng = random.Random(seed)
        self._seed = seed
        self._profile = profile
        self._boot = time.time() - self._rng.uniform(600, 8 * 3600)
        self._cpu = self._rng.uniform(5, 40)
        self._mem = self._rng.uniform(30, 70)
        # A few machines have nearly full disks or run hot, so the demo shows faults that come and go.
        self._disk = self._rng.choice([self._rng.uniform(40, 70)] * 8 + [self._rng.uniform(86, 93)])
        self._hot = self._rng.random() < 0.08
        self.actions: list[str] = []

    def heartbeat(self) -> dict[str, Any]:
        """A random walk around this machine's character."""
        rng = self._rng
        self._cpu = min(100.0, max(1.0, self._cpu + rng.uniform(-8, 8)))
        self._mem = min(99.0, max(10.0, self._mem + rng.uniform(-3, 3)))
        self._disk = min(99.5, max(5.0, self._disk + rng.uniform(-0.8, 0.9)))
        temp = rng.uniform(80, 95) if self._hot and rng.random() < 0.5 else rng.uniform(40, 65)
        return {
            "uptime_s": time.time() - self._boot,
            "cpu_pct": round(self._cpu, 1),
            "mem_pct": round(self._mem, 1),
            "disk": [{"mount": "C:\\" if self._seed % 3 else "/", "total_bytes": 256 * 1024**3,
                      "used_pct": round(self._disk, 1)}],
            "temp_c": round(temp, 1),
        }

    def live_facts(self, services: list[str]) -> dict[str, Any]:
        """Simulated machines have working displays and touch, and their services run."""
        return {"displays": 1, "touch": 1 if self._profile == "smart_board" else None,
                "services": {name: True for name in services}, "battery_health_pct": None}

    def power(self, action: str, delay_s: int, notice: str | None, dry_run: bool) -> str:
        """A simulated reboot restarts uptime; nothing else happens."""
        self.actions.append(f"{action} in {delay_s}s")
        if action == "reboot":
            self._boot = time.time()
        return f"simulated {action} in {delay_s}s"

    def notify(self, text: str, dry_run: bool) -> str:
        """Record the notice."""
        self.actions.append(f"notice: {text}")
        return "notice shown (simulated)"

    def inventory(self) -> dict[str, Any]:
        """Stable per-seed hardware facts."""
        vendor, model = self.VENDORS[self._seed % len(self.VENDORS)]
        return {
            "hardware": {"vendor": vendor, "model": model, "serial": f"SIM{self._seed:07d}",
                         "os": "Windows" if self._seed % 3 else "Linux", "ram_bytes": 8 * 1024**3},
            "software": [{"name": "Microsoft Office", "version": "16.0"}, {"name": "classfleet-agent"}],
        }
