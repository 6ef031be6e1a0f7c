"""Settings: environment, TOML file, secrets, and clear errors naming the bad setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import ConfigError, Settings, load_settings


def test_environment_and_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("CLASSFLEET_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CLASSFLEET_INGEST_BATCH_MAX", "250")
    s = load_settings()
    assert s.ingest_batch_max == 250
    assert s.effective_database_url == f"sqlite:///{tmp_path / 'classfleet.db'}"
    assert s.mqtt_url is None and s.host == "127.0.0.1"


def test_toml_file_under_environment(monkeypatch, tmp_path):
    cfg = tmp_path / "classfleet.toml"
    cfg.write_text('port = 9090\nmqtt_url = "mqtt://ctl@broker.local:1884"\nmetrics_token = "abc"\n')
    monkeypatch.setenv("CLASSFLEET_CONFIG", str(cfg))
    monkeypatch.setenv("CLASSFLEET_PORT", "9191")
    s = load_settings()
    assert s.port == 9191  # the environment wins over the file
    assert s.mqtt_parts == ("broker.local", 1884, "ctl", False)
    assert s.metrics_token is not None and s.metrics_token.get_secret_value() == "abc"
    assert "abc" not in repr(s)


@pytest.mark.parametrize(("env", "value", "named"), [
    ("CLASSFLEET_PORT", "eighty", "CLASSFLEET_PORT"),
    ("CLASSFLEET_MQTT_URL", "http://x", "CLASSFLEET_MQTT_URL"),
    ("CLASSFLEET_INGEST_BATCH_MAX", "0", "CLASSFLEET_INGEST_BATCH_MAX"),
    ("CLASSFLEET_LOG_LEVEL", "LOUD", "CLASSFLEET_LOG_LEVEL"),
    ("CLASSFLEET_PLUG_COMMAND_TIMEOUT_S", "0", "CLASSFLEET_PLUG_COMMAND_TIMEOUT_S"),
])
def test_bad_values_stop_start_up_naming_the_setting(monkeypatch, env, value, named):
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert named in str(err.value)


def test_unknown_database_scheme_is_refused():
    with pytest.raises(ConfigError, match="database_url"):
        load_settings(database_url="mysql://x")


def test_settings_are_built_on_demand_not_at_import():
    assert Settings(port=1).port == 1


def test_every_setting_is_documented_in_the_readme():
    """An operator finds every CLASSFLEET_* variable in the README's settings table."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    undocumented = [f"CLASSFLEET_{name.upper()}" for name in Settings.model_fields
                    if f"`CLASSFLEET_{name.upper()}`" not in readme]
    assert not undocumented
