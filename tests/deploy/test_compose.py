"""deploy/compose.yaml: Debian's docker-compose (no engine needed) accepts it with the example env and
refuses it without the required settings; every file it mounts exists; the controllers' settings load;
Prometheus's config passes promtool; Grafana's provisioning matches the mounts; and the image's
entrypoint and the secrets script do what the compose file relies on."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
EXAMPLE_ENV = DEPLOY / "compose.env.example"
OPERATOR_MADE = (DEPLOY / "secrets", DEPLOY / "tls" / "out")  # made on the host, never in the repository
CONTROLLERS = ("controller-1", "controller-2", "controller-3")


def _compose() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        pytest.fail("docker-compose is not installed: apt-get install -y docker-compose (.ci/install-test-deps)")
    return path


def compose_config(env_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``docker-compose -f deploy/compose.yaml config`` with an env file (no engine is contacted)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLASSFLEET_", "COMPOSE_", "DOCKER_"))}
    return subprocess.run([_compose(), "-f", str(DEPLOY / "compose.yaml"), "--env-file", str(env_file), *extra,
                           "config"], capture_output=True, text=True, timeout=120, check=False, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    done = compose_config(EXAMPLE_ENV)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def _env_lines(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_config_validates_with_the_example_env(config: dict[str, Any]) -> None:
    assert set(config["services"]) == {"postgres", "migrate", "broker-acl", "mosquitto", "prometheus", "grafana",
                                       *CONTROLLERS}


@pytest.mark.parametrize("missing", sorted(_env_lines(EXAMPLE_ENV)))
def test_required_settings_are_refused_when_missing(missing: str, tmp_path: Path) -> None:
    """No default stands in for a site's own names and paths: each required one stops compose with a message."""
    env = tmp_path / "env"
    env.write_text("".join(f"{k}={v}\n" for k, v in _env_lines(EXAMPLE_ENV).items() if k != missing))
    done = compose_config(env)
    assert done.returncode != 0
    assert missing in done.stderr and "deploy/.env" in done.stderr, done.stderr


def test_no_secret_is_written_in_the_compose_file(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        for key, value in service.get("environment", {}).items():
            if re.search(r"PASSWORD|TOKEN|SECRET", key):
                assert key.endswith("_FILE") and str(value).startswith("/run/secrets/"), f"{name}: {key} in clear"
        for key, value in service.get("environment", {}).items():
            assert ":" not in str(value).split("@")[0].split("//")[-1] or "@" not in str(value), \
                f"{name}: {key} holds a URL with a password"
    for name, secret in config["secrets"].items():
        assert Path(secret["file"]).parent == DEPLOY / "secrets", name


def test_every_mounted_file_exists(config: dict[str, Any]) -> None:
    """Bind mounts from the repository point at real files; the rest are volumes or operator-made files."""
    checked = 0
    for name, service in config["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if not source.startswith("/"):
                assert source in config["volumes"], f"{name}: {source} is neither a path nor a declared volume"
                continue
            path = Path(source)
            if any(path.is_relative_to(made) for made in OPERATOR_MADE):
                continue
            assert path.is_relative_to(ROOT) and path.exists(), f"{name} mounts {source}, which does not exist"
            checked += 1
        if "build" in service:
            assert (Path(service["build"]["context"]) / service["build"]["dockerfile"]).is_file()
    assert checked >= 6


def test_migration_runs_before_the_controllers_and_the_broker(config: dict[str, Any]) -> None:
    services = config["services"]
    assert services["migrate"]["command"] == ["classfleet", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["broker-acl"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["mosquitto"]["depends_on"]["broker-acl"]["condition"] == "service_completed_successfully"
    for name in CONTROLLERS:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["healthcheck"]["test"][0] == "CMD"
    assert "healthcheck" in services["postgres"]


def test_controller_settings_load(config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Each replica's environment (plus its secret files) is a configuration the controller accepts, with a
    stable client id of its own, TLS to the broker, shared subscriptions, and the pollers on every replica (they
    shard the schools between them, controller.cluster)."""
    ids, pollers = set(), []
    for name in CONTROLLERS:
        service = config["services"][name]
        for key in [k for k in os.environ if k.startswith("CLASSFLEET_")]:
            monkeypatch.delenv(key)
        for key, value in service["environment"].items():
            monkeypatch.setenv(key, str(value))
        for secret in service["secrets"]:
            if secret["source"].startswith("CLASSFLEET_"):
                monkeypatch.setenv(secret["source"], "x" * 64)
        settings = Settings()
        assert settings.mqtt_parts[3] is True and settings.mqtt_shared_subscription
        assert settings.mqtt_parts[0] == _env_lines(EXAMPLE_ENV)["CLASSFLEET_BROKER_NAME"]
        assert settings.mqtt_parts[2] == "classfleet-controller"  # the account broker-acl writes
        assert settings.metrics_token is not None and settings.secret_key is not None
        ids.add(settings.mqtt_client_id)
        if settings.snmp_interval_s or settings.pjlink_interval_s or settings.onvif_interval_s:
            pollers.append(name)
        mounts = [v.split(":")[1] for v in service["volumes"]]
        assert str(settings.mqtt_ca_file) in mounts
    assert len(ids) == len(CONTROLLERS) and pollers == list(CONTROLLERS)
    mosquitto = config["services"]["mosquitto"]
    assert _env_lines(EXAMPLE_ENV)["CLASSFLEET_BROKER_NAME"] in mosquitto["networks"]["default"]["aliases"]


def test_replicas_are_behind_a_profile(config: dict[str, Any]) -> None:
    assert "profiles" not in config["services"]["controller-1"]
    for name in CONTROLLERS[1:]:
        assert config["services"][name]["profiles"] == ["replicas"]


def _mosquitto_settings(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            values[key] = value.strip()
    return values


def test_mosquitto_keeps_the_no_loss_settings(config: dict[str, Any]) -> None:
    reference = _mosquitto_settings(DEPLOY / "mosquitto" / "classfleet.conf")
    compose = _mosquitto_settings(DEPLOY / "compose" / "mosquitto.conf")
    for key in ("per_listener_settings", "allow_anonymous", "persistence", "autosave_interval", "max_queued_messages",
                "max_queued_bytes", "max_inflight_messages", "persistent_client_expiration"):
        assert compose[key] == reference[key], key
    targets = {v.split(":")[1] for v in config["services"]["mosquitto"]["volumes"]}
    for key in ("cafile", "certfile", "keyfile"):
        assert compose[key] in targets, f"{key} {compose[key]} is not mounted"
    for key in ("password_file", "acl_file"):
        assert str(Path(compose[key]).parent) in targets
    assert compose["listener"] == "8883"
    acl_out = config["services"]["broker-acl"]["command"][-1]
    assert f"broker-auth:{acl_out}:rw" in config["services"]["broker-acl"]["volumes"]


def test_prometheus_config_passes_promtool(config: dict[str, Any], tmp_path: Path) -> None:
    """The compose Prometheus config (differs from deploy/prometheus/prometheus.yml) with its mounts laid out."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: apt-get install -y prometheus (.ci/install-test-deps does this)")
    service = config["services"]["prometheus"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"] if v.startswith("/")}
    prom = yaml.safe_load(Path(mounts["/etc/prometheus/prometheus.yml"]).read_text())
    rule_files = [mounts[p] for p in prom["rule_files"]]
    assert rule_files == [str(ROOT / "dashboards" / "alerts.yml")]
    job = prom["scrape_configs"][0]
    assert job["job_name"] == "classfleet"  # the alert rules select it
    token_path = job["authorization"]["credentials_file"]
    assert token_path == "/run/secrets/" + service["secrets"][0]["source"] == "/run/secrets/CLASSFLEET_METRICS_TOKEN"
    token = tmp_path / "token"
    token.write_text("x" * 32)
    prom["rule_files"] = rule_files
    job["authorization"]["credentials_file"] = str(token)
    rewritten = tmp_path / "prometheus.yml"
    rewritten.write_text(yaml.safe_dump(prom))
    done = subprocess.run([promtool, "check", "config", str(rewritten)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    targets = job["static_configs"][0]["targets"]
    assert targets == ["controller-1:8080"]
    replicas = job["dns_sd_configs"][0]["names"][0]
    for name in CONTROLLERS[1:]:
        assert replicas in config["services"][name]["networks"]["default"]["aliases"]


def test_grafana_provisioning_matches_the_mounts(config: dict[str, Any]) -> None:
    service = config["services"]["grafana"]
    mounts = {v.split(":")[1]: Path(v.split(":")[0]) for v in service["volumes"] if v.startswith("/")}
    providers = yaml.safe_load((ROOT / "dashboards" / "provisioning" / "dashboards.yml").read_text())["providers"]
    dashboards_dir = mounts[providers[0]["options"]["path"]]
    assert len(list(dashboards_dir.glob("*.json"))) >= 6
    datasource = yaml.safe_load((ROOT / "dashboards" / "provisioning" / "datasources.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert any(t.startswith("/etc/grafana/provisioning/datasources/") for t in mounts)
    assert any(t.startswith("/etc/grafana/provisioning/dashboards/") for t in mounts)
    assert service["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"


def test_make_secrets_writes_each_secret_once(tmp_path: Path) -> None:
    out = tmp_path / "secrets"
    subprocess.run(["bash", str(DEPLOY / "make-secrets.sh"), str(out)], check=True, timeout=60, capture_output=True)
    compose_secrets = {Path(s["file"]).name for s in yaml.safe_load(
        compose_config(EXAMPLE_ENV).stdout)["secrets"].values()}
    assert {p.name for p in out.iterdir()} == compose_secrets
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    first = {p.name: p.read_text() for p in out.iterdir()}
    assert all(len(v.strip()) == 64 for v in first.values()) and len(set(first.values())) == len(first)
    subprocess.run(["bash", str(DEPLOY / "make-secrets.sh"), str(out)], check=True, timeout=60, capture_output=True)
    assert {p.name: p.read_text() for p in out.iterdir()} == first  # never overwritten


def test_entrypoint_turns_secret_files_into_settings(tmp_path: Path) -> None:
    secrets = tmp_path / "run-secrets"
    secrets.mkdir()
    (secrets / "CLASSFLEET_METRICS_TOKEN").write_text("tok-123\n")
    (secrets / "PGPASSWORD").write_text("pg pass")
    (secrets / "CLASSFLEET_MQTT_PASSWORD").write_text("from-file")
    (secrets / "grafana_admin_password").write_text("not for the controller")
    (secrets / "CLASSFLEET_BAD-NAME").write_text("ignored")
    env = {"PATH": os.environ["PATH"], "CLASSFLEET_SECRETS_DIR": str(secrets), "CLASSFLEET_MQTT_PASSWORD": "explicit"}
    done = subprocess.run(["sh", str(DEPLOY / "docker-entrypoint.sh"), "env"], capture_output=True, text=True,
                          env=env, timeout=30, check=True)
    seen = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert seen["CLASSFLEET_METRICS_TOKEN"] == "tok-123"  # trailing newline dropped
    assert seen["PGPASSWORD"] == "pg pass"
    assert seen["CLASSFLEET_MQTT_PASSWORD"] == "explicit"  # a variable set explicitly wins
    assert "grafana_admin_password" not in seen and not any("BAD" in k for k in seen)


def test_dockerfile_matches_the_app_and_the_cli() -> None:
    """The image installs the controller extra, runs non-root, and checks /healthz (served: see test_k8s)."""
    text = (DEPLOY / "Dockerfile").read_text()
    assert '".[controller]"' in text
    user = re.search(r"^USER (\d+):(\d+)$", text, re.M)
    assert user and int(user.group(1)) != 0
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    assert "/healthz" in re.search(r"^HEALTHCHECK .*(?:\n  .*)*", text, re.M).group(0)  # type: ignore[union-attr]
    assert re.search(r'^CMD \["classfleet", "controller"\]$', text, re.M)
    assert re.search(r'^ENTRYPOINT \["classfleet-entrypoint"\]$', text, re.M)
    assert "deploy/docker-entrypoint.sh /usr/local/bin/classfleet-entrypoint" in text
