"""The agent's configuration: a TOML file (written by ``classfleet-agent enroll``, 0600), flags on top.

Thresholds and watched services can change while the agent runs: the file is re-read on
SIGHUP and by the ``run_check`` command; broker settings take effect at the next start.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from classfleet_wire.topics import ID_PATTERN

DEFAULT_CONFIG_PATH = Path(os.environ.get("CLASSFLEET_AGENT_CONFIG", "/etc/classfleet/agent.toml"))


class Thresholds(BaseModel):
    """Local fault thresholds; a fault clears ``hysteresis`` below (above, for battery) where it raised."""

    model_config = ConfigDict(extra="forbid")
    disk_low_pct: float = Field(default=90.0, gt=0, le=100)
    mem_high_pct: float = Field(default=95.0, gt=0, le=100)
    cpu_overheat_c: float = Field(default=85.0, gt=0, le=150)
    battery_worn_pct: float = Field(default=60.0, gt=0, le=100, description="raise when health falls below")
    hysteresis: float = Field(default=5.0, ge=0, le=50)


class AgentConfig(BaseModel):
    """Everything one agent needs; see README "Agent configuration" for each setting."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    school: str = Field(pattern=f"^{ID_PATTERN}$")
    device: str = Field(pattern=f"^{ID_PATTERN}$")
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None
    profile: Literal["pc", "laptop", "smart_board", "other"] = "pc"
    state_dir: Path | None = None  # None: in-memory spool and session (simulations only)
    heartbeat_interval_s: float = Field(default=60.0, gt=0)
    inventory_check_interval_s: float = Field(default=3600.0, gt=0)
    session_expiry_s: int = Field(default=7 * 24 * 3600, gt=0)
    inflight_window: int = Field(default=50, ge=1, le=1000, description="unacknowledged QoS 1 publishes")
    spool_max_rows: int = Field(default=100_000, ge=100)
    spool_max_age_s: float = Field(default=7 * 86400, gt=0)
    allow_power_commands: bool = True
    dry_run: bool = False
    thresholds: Thresholds = Field(default_factory=Thresholds)
    services: list[str] = Field(default_factory=list, max_length=50)
    config_path: Path | None = None

    @field_validator("services")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not v or len(v) > 128]
        if bad:
            raise ValueError(f"invalid service names: {bad}")
        return value


class AgentConfigError(ValueError):
    """A configuration file that cannot be used, with the setting named."""


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    """Accept the sectioned file layout ([broker], [agent], [spool], [thresholds])."""
    flat: dict[str, Any] = {k: v for k, v in data.items() if not isinstance(v, dict) or k == "thresholds"}
    broker = data.get("broker", {})
    if "url" in broker:
        parts = urlsplit(broker["url"])
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise AgentConfigError("broker.url: expected mqtt://[user@]host[:port]")
        flat.update(host=parts.hostname, port=parts.port or (8883 if parts.scheme == "mqtts" else 1883))
        if parts.username:
            flat["username"] = parts.username
    for key in ("username", "password", "tls_ca"):
        if key in broker:
            flat[key] = broker[key]
    flat.update(data.get("agent", {}))
    for key, value in data.get("spool", {}).items():
        flat[f"spool_{key}"] = value
    return flat


def load_config(path: Path, **overrides: Any) -> AgentConfig:
    """Read the TOML file; ``overrides`` (from flags) win. Errors name the setting."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise AgentConfigError(f"{path}: no such file (run 'classfleet-agent enroll' first)") from None
    except tomllib.TOMLDecodeError as exc:
        raise AgentConfigError(f"{path}: {exc}") from None
    values = {**_flatten(data), **{k: v for k, v in overrides.items() if v is not None}, "config_path": path}
    try:
        return AgentConfig(**values)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)]
        raise AgentConfigError(f"{path}: invalid settings\n" + "\n".join(lines)) from None


def write_config(path: Path, data: dict[str, Any]) -> None:
    """Write a config file readable by its owner only (it holds the MQTT password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    sections: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            sections[key] = value
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, section in sections.items():
        lines.append(f"\n[{name}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in section.items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
