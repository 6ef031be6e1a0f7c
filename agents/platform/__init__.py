"""The machine the agent runs on, behind one interface: Linux (sysfs, procfs, dpkg) or Windows (WMI, registry).

``current_platform()`` picks the implementation; both satisfy ``Platform`` (and the agent
core's ``FactSource``), so the core, the detectors and the commands never ask which OS it is.
"""

from __future__ import annotations

import sys
from typing import Any

from .base import (
    Battery,
    CommandResult,
    Display,
    IdentitySources,
    Platform,
    PlatformError,
    PsutilPlatform,
    Runner,
    TouchDevice,
    run_command,
)


def current_platform(**kwargs: Any) -> Platform:
    """The implementation for this OS (keyword arguments go to its constructor, e.g. ``ps`` or ``root``)."""
    if sys.platform == "win32":
        from .windows import WindowsPlatform

        return WindowsPlatform(**kwargs)
    if sys.platform.startswith("linux"):
        from .linux import LinuxPlatform

        return LinuxPlatform(**kwargs)
    return PsutilPlatform(**kwargs)  # macOS and the BSDs: what psutil knows, firmware facts unknown


__all__ = [
    "Battery",
    "CommandResult",
    "Display",
    "IdentitySources",
    "Platform",
    "PlatformError",
    "PsutilPlatform",
    "Runner",
    "TouchDevice",
    "current_platform",
    "run_command",
]
