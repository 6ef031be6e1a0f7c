"""deploy/k8s: every manifest validates (strictly) against recent Kubernetes schemas, the probes hit routes
the app really serves, the settings are ones the controller accepts, and the pieces reference each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry

from controller.api.app import create_app
from controller.config import Settings
from controller.store import db
from tests.helpers import serve_app

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
VERSIONS = ("1.29.0", "1.31.0")


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for _, d in _documents() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    containers = doc["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_manifests_are_plain_and_namespace_free() -> None:
    kinds = sorted(d["kind"] for _, d in _documents())
    assert kinds == ["ConfigMap", "ConfigMap", "Job", "Secret", "Service", "Service", "StatefulSet"]
    assert all("namespace" not in d["metadata"] for _, d in _documents())


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_validate(version: str) -> None:
    for name, doc in _documents():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {exc}")


def test_validation_rejects_a_misspelt_field() -> None:
    """The check above has teeth: a typo that kubectl would silently drop is an error."""
    doc = _one("StatefulSet")
    container = _container(doc)
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)


@pytest.mark.integration
def test_probes_hit_routes_the_app_serves(tmp_path: Path) -> None:
    """Over real HTTP, as the kubelet asks: liveness answers 200 with the broker down; readiness reflects the
    store and the broker session."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    db.upgrade(url)
    connected = {"mqtt": False}
    app = create_app(Settings(data_dir=tmp_path, database_url=url, metrics_token="t" * 32), db.make_engine(url),
                     CollectorRegistry(), ingest_ready=lambda: connected["mqtt"])
    container = _container(_one("StatefulSet"))
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    with serve_app(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = container[probe]["httpGet"]
            assert get["port"] in port_names, f"{probe} names no container port"
            assert port_names[get["port"]] == 8080
        live = container["livenessProbe"]["httpGet"]["path"]
        ready = container["readinessProbe"]["httpGet"]["path"]
        assert client.get(live).status_code == 200
        assert client.get(ready).status_code == 503  # the broker session is down: take the pod out of the Service
        connected["mqtt"] = True
        assert client.get(ready).status_code == 200
        assert client.get("/no-such-probe").status_code == 404  # the probes above are not answered by a catch-all


def test_statefulset_gives_each_replica_a_stable_client_id() -> None:
    sts = _one("StatefulSet")
    assert sts["spec"]["replicas"] == 3
    env = {e["name"]: e for e in _container(sts)["env"]}
    assert env["CLASSFLEET_MQTT_CLIENT_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    headless = _one("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for _, svc in [d for d in _documents() if d[1]["kind"] == "Service"]:
        assert svc["spec"]["selector"].items() <= labels.items()


@pytest.mark.parametrize("kind", ["StatefulSet", "Job"])
def test_pods_run_non_root_with_a_read_only_root(kind: str) -> None:
    doc = _one(kind)
    pod = doc["spec"]["template"]["spec"]
    container = _container(doc)
    uid = int(re.search(r"^USER (\d+)", (ROOT / "deploy" / "Dockerfile").read_text(), re.M).group(1))  # type: ignore
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid
    sec = container["securityContext"]
    assert sec["readOnlyRootFilesystem"] is True and sec["allowPrivilegeEscalation"] is False
    assert sec["capabilities"]["drop"] == ["ALL"]
    assert "limits" in container["resources"] and "requests" in container["resources"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", "/var/lib/classfleet"} <= mounts  # the only places the controller writes


def test_config_and_secret_are_settings_the_controller_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key is a real CLASSFLEET_* setting (or libpq's PGPASSWORD) and the values load."""
    config = _one("ConfigMap", "classfleet-config")["data"]
    secret = _one("Secret", "classfleet-secrets")["stringData"]
    assert all(v.startswith("EXAMPLE-CHANGE-ME") for v in secret.values()), "the example Secret holds real values"
    fields = {f"CLASSFLEET_{name.upper()}" for name in Settings.model_fields}
    unknown = set(config) - fields | {k for k in secret if k != "PGPASSWORD"} - fields
    assert not unknown, f"not controller settings: {unknown}"
    for key in list(fields):
        monkeypatch.delenv(key, raising=False)
    for key, value in {**config, **secret}.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.mqtt_url and settings.mqtt_parts[3] is True  # TLS to the broker
    assert settings.database_url and "@" in settings.database_url and ":" not in settings.database_url.split("@")[0][
        len("postgresql+psycopg://"):], "no password in the URL: libpq reads PGPASSWORD"
    assert settings.mqtt_shared_subscription is True
    ca_mount = next(m for m in _container(_one("StatefulSet"))["volumeMounts"] if m["name"] == "mqtt-ca")
    assert str(settings.mqtt_ca_file) == f"{ca_mount['mountPath']}/ca.crt"
    assert "ca.crt" in _one("ConfigMap", "classfleet-mqtt-ca")["data"]


@pytest.mark.parametrize("kind", ["StatefulSet", "Job"])
def test_pods_reference_the_config_and_secret(kind: str) -> None:
    refs = _container(_one(kind))["envFrom"]
    assert {"configMapRef": {"name": "classfleet-config"}} in refs
    assert {"secretRef": {"name": "classfleet-secrets"}} in refs


def test_job_runs_the_migration_command() -> None:
    args = _container(_one("Job"))["args"]
    assert args[0] == "classfleet"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "classfleet" in scripts
    from typer.testing import CliRunner

    from controller.cli import app

    result = CliRunner().invoke(app, [*args[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "schema" in result.output.lower()
