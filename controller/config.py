"""Controller settings: ``CLASSFLEET_*`` environment variables, then an optional TOML file.

Built once in the app factory or the CLI and passed down; never at import time.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource


def default_data_dir() -> Path:
    """Where the controller keeps its SQLite file and the private broker's state."""
    xdg = os.environ.get("XDG_DATA_HOME")
    return Path(xdg) / "classfleet" if xdg else Path.home() / ".local" / "share" / "classfleet"


# Typical draw while on, in watts, of the kinds the after-hours energy report covers (docs/energy.md).
NOMINAL_POWER_W: dict[str, float] = {"pc": 120.0, "laptop": 45.0, "smart_board": 250.0, "projector": 280.0,
                                     "air_conditioner": 1100.0}


class ConfigError(SystemExit):
    """A setting with a bad value; stops start-up with a message naming the setting."""


class Settings(BaseSettings):
    """Everything the controller can be told. Secrets are ``SecretStr`` and never logged."""

    model_config = SettingsConfigDict(env_prefix="CLASSFLEET_", extra="forbid", validate_default=True)

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = Field(default=None, description="default: SQLite file in data_dir")
    mqtt_url: str | None = Field(default=None, description="mqtt://user@host:port; none: private Mosquitto")
    mqtt_password: SecretStr | None = None
    mqtt_ca_file: Path | None = Field(default=None, description="CA certificate for mqtts:// (a private CA)")
    public_mqtt_url: str | None = Field(default=None, description="broker URL handed to enrolling agents")
    mqtt_client_id: str = Field(default_factory=lambda: f"classfleet-controller-{socket.gethostname()}"[:64])
    mqtt_shared_subscription: bool = False
    cluster_lease_ttl_s: float = Field(default=15.0, ge=2, le=600, description="a replica's leases (membership, "
                                       "singleton tasks) run this long after its last renewal: the takeover bound "
                                       "when it dies")
    cluster_renew_s: float = Field(default=5.0, ge=0.5, le=300, description="how often a replica renews its "
                                   "leases and re-reads the members (at most half the lease TTL)")
    mqtt_session_expiry_s: int = Field(default=7 * 24 * 3600, gt=0)
    mqtt_port: int = Field(default=1883, ge=0, le=65535, description="private broker's port (0: any free)")
    mosquitto_binary: str = "mosquitto"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    ingest_batch_max: int = Field(default=500, ge=1, le=10_000)
    ingest_batch_interval_ms: int = Field(default=50, ge=1, le=10_000)
    ingest_queue_max: int = Field(default=10_000, ge=1, le=1_000_000, description="received messages waiting for "
                                  "the store; above this QoS 0 messages are shed (QoS 1 is bounded by the broker "
                                  "through Receive Maximum and never shed)")
    ingest_device_rate_per_s: float = Field(default=10.0, ge=0, description="messages a second one device may send "
                                            "once its burst is spent (0: no per-device limit)")
    ingest_device_burst: int = Field(default=20_000, ge=1, description="messages one device may send at once "
                                     "(room for a week of spooled heartbeats replayed after an outage)")
    offline_after_s: float = Field(default=180.0, gt=0, description="no message for this long: offline")
    offline_grace_s: float = Field(default=300.0, ge=0, description="offline this long before agent.offline")
    clock_skew_max_s: float = Field(default=120.0, gt=0, description="heartbeat clock skew that raises time.skew")
    flap_window_s: float = Field(default=600.0, gt=0, description="raise/clear within this window is flapping")
    flap_threshold: int = Field(default=3, ge=1, description="raises within the window that mark a flapping fault")
    history_retention_days: int = Field(default=90, ge=1)
    auth: bool = Field(default=True, description="require a login or an API token (off only for the demo)")
    secret_key: SecretStr | None = Field(default=None, description="signs console sessions; default: generated "
                                         "once and kept in the data directory")
    metrics_cache_s: float = Field(default=15.0, ge=0, description="serve one /metrics rendering for this long "
                                   "and render the next one ahead while scraped (0: render every scrape)")
    metrics_public: bool = Field(default=False, description="serve /metrics without a token even with auth on "
                                 "(only on an internal address)")
    metrics_token: SecretStr | None = Field(default=None, description="bearer token required on /metrics")
    proxy_client_header: str | None = Field(default=None, description="a reverse proxy's client-address header "
                                            "(e.g. X-Forwarded-For), believed only from trusted_proxies")
    trusted_proxies: list[str] = Field(default=["127.0.0.1/32", "::1/128"], description="addresses or networks "
                                       "of the reverse proxies whose proxy_client_header is believed")
    snmp_interval_s: float = Field(default=60.0, ge=0, description="switch polls every N s (0: SNMP poller off)")
    snmp_workers: int = Field(default=0, ge=0, le=64, description="0: poll in a thread; N: in N worker processes")
    snmp_trap_port: int | None = Field(default=None, ge=1, le=65535, description="receive traps (e.g. 10162)")
    snmp_trap_host: str = "0.0.0.0"
    smtp_host: str | None = Field(default=None, description="mail server for notifications (none: no email)")
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "classfleet@localhost"
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    notify_batch_delay_s: float = Field(default=30.0, ge=0, description="wait for a burst before notifying")
    pjlink_interval_s: float = Field(default=60.0, ge=0, description="projector polls every N s (0: PJLink off)")
    onvif_interval_s: float = Field(default=60.0, ge=0, description="camera checks every N s (0: ONVIF poller off)")
    onvif_events: bool = Field(default=False, description="watch cameras' PullPoint events (tamper)")
    energy_nominal_w: dict[str, float] = Field(
        default_factory=lambda: dict(NOMINAL_POWER_W),
        description="watts assumed per device kind when nothing measured (docs/energy.md); given kinds override "
                    'the defaults, e.g. {"air_conditioner": 1500}')
    energy_poll_gap_s: float = Field(default=900.0, gt=0, le=86400, description="a projector's or plug's polled "
                                     "state holds until its next poll, at most this long")
    plug_command_timeout_s: float = Field(default=60.0, gt=0, le=3600, description="a plug command is failed when "
                                          "the plug has not reported the requested state this long after it was sent")
    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit arguments, then the environment, then the TOML file named by CLASSFLEET_CONFIG."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get("CLASSFLEET_CONFIG")
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)))
        return tuple(sources)

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("expected mqtt://[user@]host[:port] or mqtts://…")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        import ipaddress

        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @field_validator("energy_nominal_w")
    @classmethod
    def _check_nominal(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(NOMINAL_POWER_W))
        if unknown:
            raise ValueError(f"unknown device kind(s) {', '.join(unknown)}; known: {', '.join(NOMINAL_POWER_W)}")
        if any(not 0 <= w <= 20_000 for w in value.values()):
            raise ValueError("watts must be between 0 and 20000")
        return {**NOMINAL_POWER_W, **value}

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("one of DEBUG, INFO, WARNING, ERROR")
        return value.upper()

    @model_validator(mode="after")
    def _check_cluster(self) -> Settings:
        if self.cluster_renew_s * 2 > self.cluster_lease_ttl_s:
            raise ValueError("cluster_renew_s must be at most half of cluster_lease_ttl_s")
        return self

    @model_validator(mode="after")
    def _check_database(self) -> Settings:
        url = self.database_url
        if url and not url.startswith(("sqlite", "postgresql")):
            raise ValueError("database_url: only sqlite:/// and postgresql+psycopg:// URLs are supported")
        return self

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or a SQLite file in the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'classfleet.db'}"

    @property
    def mqtt_parts(self) -> tuple[str, int, str | None, bool]:
        """(host, port, username, tls) of the external broker."""
        assert self.mqtt_url is not None
        parts = urlsplit(self.mqtt_url)
        tls = parts.scheme == "mqtts"
        return parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), parts.username, tls


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning a validation error into one clear message per bad setting."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            lines.append(f"  CLASSFLEET_{name.upper()}: {err['msg']}")
        raise ConfigError("classfleet: invalid configuration\n" + "\n".join(lines)) from None


def fault_policy(settings: Settings) -> Any:
    """The faults engine's tunables from the settings."""
    import datetime as dt

    from .faults import FaultPolicy

    return FaultPolicy(flap_window=dt.timedelta(seconds=settings.flap_window_s), flap_threshold=settings.flap_threshold,
                       offline_after=dt.timedelta(seconds=settings.offline_after_s),
                       offline_grace=dt.timedelta(seconds=settings.offline_grace_s),
                       clock_skew_max_s=settings.clock_skew_max_s)
