"""docker-compose.yml, the Dockerfiles and the KubeRay manifests, checked without Docker or
Kubernetes: Debian's ``docker-compose config`` on the compose file, and a schema check of what
each manifest must hold (see infra/README.md, "What was validated")."""

from __future__ import annotations

import configparser
import importlib.metadata
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
K8S = REPO_ROOT / "infra" / "k8s"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|BACKEND_STORE_URI|OPTUNA_STORAGE")
# scheme://user:password@host with a literal password (not a ${VAR} or $(VAR) reference)
URL_WITH_PASSWORD = re.compile(r"[a-z0-9+]+://[^/\s:@$]+:(?![$])[^@\s/]+@")


def _compose(
    *args: str, cwd: Path = REPO_ROOT, env_file: Path = ENV_EXAMPLE
) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary, (
        "docker-compose not found: run infra/local/install-test-deps.sh (Debian docker-compose)"
    )
    return subprocess.run(
        [binary, "--env-file", str(env_file), "-f", str(COMPOSE), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file resolved with the .env.example values."""
    result = _compose("config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _load(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def _one(name: str, kind: str) -> dict[str, Any]:
    docs = [doc for doc in _load(name) if doc["kind"] == kind]
    assert len(docs) == 1, f"{name}: expected one {kind}"
    return docs[0]


def _containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    assert pod_spec["containers"], "a pod template without containers"
    return pod_spec["containers"]


# ----------------------------------------------------------------------------- docker-compose


def test_compose_config_is_valid() -> None:
    result = _compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = _compose("config", "-q", cwd=tmp_path, env_file=empty)
    assert result.returncode != 0
    assert "in .env" in result.stderr  # the ${VAR:?set VAR in .env} message names the variable


def test_compose_services_health_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {
        "postgres",
        "minio",
        "minio-init",
        "mlflow",
        "ray-head",
        "ray-worker",
        "launcher",
    }
    for name in ("postgres", "minio", "mlflow", "ray-head"):
        assert services[name]["healthcheck"]["test"], name
    assert "pg_isready -h 127.0.0.1" in " ".join(services["postgres"]["healthcheck"]["test"])
    depends = {name: service.get("depends_on", {}) for name, service in services.items()}
    assert depends["minio-init"] == {"minio": {"condition": "service_healthy"}}
    assert depends["mlflow"] == {
        "postgres": {"condition": "service_healthy"},
        "minio-init": {"condition": "service_completed_successfully"},
    }
    assert depends["ray-head"]["mlflow"]["condition"] == "service_healthy"
    assert depends["ray-worker"]["ray-head"]["condition"] == "service_healthy"
    for needed in ("ray-head", "postgres", "mlflow"):
        assert depends["launcher"][needed]["condition"] == "service_healthy"
    mounts = [str(v) for v in services["postgres"]["volumes"]]  # docker-compose 1.x: strings
    assert any("infra/postgres/init-databases.sh:/docker-entrypoint-initdb.d/" in m for m in mounts)


def test_compose_publishes_only_the_uis_on_loopback(compose: dict[str, Any]) -> None:
    published = {name: service.get("ports", []) for name, service in compose["services"].items()}
    assert {name for name, ports in published.items() if ports} == {"mlflow", "ray-head"}
    assert published["mlflow"] == ["127.0.0.1:5000:5000/tcp"]
    assert published["ray-head"] == ["127.0.0.1:8265:8265/tcp"]


def test_compose_mlflow_server(compose: dict[str, Any]) -> None:
    mlflow = compose["services"]["mlflow"]
    assert mlflow["build"]["dockerfile"] == "infra/mlflow/Dockerfile"
    command = mlflow["command"]
    assert command[:2] == ["mlflow", "server"]
    assert {
        "--app-name=basic-auth",
        "--serve-artifacts",
        "--artifacts-destination=s3://dmlsweep/mlartifacts",
        "--host=0.0.0.0",
    } <= set(command)
    env = mlflow["environment"]
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")
    assert env["MLFLOW_BACKEND_STORE_URI"].endswith("@postgres:5432/mlflow")
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == "/etc/mlflow/basic_auth.ini"
    assert "mlflow:5000" in env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")  # the cluster's Host


def test_compose_ray_cluster_and_launcher(compose: dict[str, Any]) -> None:
    services = compose["services"]
    head, worker, launcher = services["ray-head"], services["ray-worker"], services["launcher"]
    assert head["image"] == worker["image"] == launcher["image"]
    assert head["build"]["dockerfile"] == "infra/docker/platform.Dockerfile"
    assert {"--head", "--num-gpus=0", "--ray-client-server-port=10001"} <= set(head["command"])
    assert "--address=ray-head:6379" in worker["command"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    for service in (head, worker, launcher):
        assert service["environment"]["RAY_AUTH_MODE"] == "token"
        assert service["environment"]["RAY_AUTH_TOKEN"]
    argv = [*launcher["entrypoint"], *launcher["command"]]
    assert argv[:2] == ["python", "sweeps/launch.py"]
    assert "--space ahsml" in " ".join(argv)
    assert {"--address=ray://ray-head:10001", "--tracking-uri=http://mlflow:5000"} <= set(argv)
    storage = next(a for a in argv if a.startswith("--storage="))
    assert storage.startswith("--storage=postgresql+psycopg2://")
    assert storage.endswith("@postgres:5432/optuna")


def test_compose_has_no_secret_literal() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    blocks = [raw.get("x-platform-env", {})] + [
        service.get("environment", {}) for service in raw["services"].values()
    ]
    checked = 0
    for block in blocks:
        for key, value in block.items():
            if SECRET_NAME.search(key) and key != "RAY_AUTH_MODE":
                assert "${" in str(value), f"{key} must come from .env, not a literal"
                checked += 1
    assert checked >= 10
    assert not URL_WITH_PASSWORD.search(COMPOSE.read_text())


def test_env_example_holds_placeholders_only() -> None:
    values = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    secrets = {k: v for k, v in values.items() if re.search("PASSWORD|SECRET|TOKEN", k)}
    assert len(secrets) >= 6
    assert all(v.startswith("change-me") for v in secrets.values()), secrets
    raw = yaml.safe_load(COMPOSE.read_text())
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    assert used - {"DMLSWEEP_VERSION", "MLFLOW_PUBLIC_HOST"} <= set(values), "undocumented"
    assert raw["services"]


def test_env_is_never_committed_nor_copied_into_images() -> None:
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()
    assert ".env" in (REPO_ROOT / ".dockerignore").read_text().split()


# ----------------------------------------------------------------------------- Dockerfiles


def test_platform_image_installs_the_package() -> None:
    text = (REPO_ROOT / "infra" / "docker" / "platform.Dockerfile").read_text()
    ray_version = importlib.metadata.version("ray")
    assert f"rayproject/ray:{ray_version}-py311-gpu" in text  # the base matches the Ray pin
    assert re.search(r"pip install --no-cache-dir --no-deps \.", text)
    assert " -e " not in text and "--editable" not in text and "VOLUME" not in text
    for source in ("platform", "trainables", "sweeps"):
        assert re.search(rf"COPY .*\b{source} \./{source}", text), source


def test_mlflow_image_and_auth_config() -> None:
    text = (REPO_ROOT / "infra" / "mlflow" / "Dockerfile").read_text()
    version = re.search(r"ARG MLFLOW_VERSION=(\S+)", text)
    assert version and version.group(1).split(".")[0] == importlib.metadata.version("mlflow")[0]
    assert '"mlflow[auth]==${MLFLOW_VERSION}" psycopg2-binary boto3' in text
    assert "COPY infra/mlflow/basic_auth.ini /etc/mlflow/basic_auth.ini" in text
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "infra" / "mlflow" / "basic_auth.ini")
    section = config["mlflow"]
    assert section["default_permission"] == "READ"
    assert section["database_uri"].startswith("sqlite:////var/lib/mlflow-auth/")
    assert "admin_password" not in section  # the admin comes from the environment


# ----------------------------------------------------------------------------- Kubernetes


def test_every_manifest_parses_with_api_version_kind_and_name() -> None:
    kinds = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in _load(path.name):
            assert {
                "apiVersion",
                "kind",
                "metadata",
            }.issubset(doc), path.name
            assert doc["metadata"].get("name") or doc["metadata"].get("generateName")
            kinds.setdefault(doc["kind"], []).append(doc["apiVersion"])
    assert kinds["RayCluster"] == ["ray.io/v1"] and kinds["RayJob"] == ["ray.io/v1"]
    assert kinds["Deployment"] == ["apps/v1"] and kinds["StatefulSet"] == ["apps/v1"]
    assert "Secret" not in kinds  # secrets are made with kubectl, never committed


def test_raycluster() -> None:
    cluster = _one("raycluster.yaml", "RayCluster")
    spec = cluster["spec"]
    assert spec["rayVersion"] == importlib.metadata.version("ray")
    assert spec["enableInTreeAutoscaling"] is True
    head_params = spec["headGroupSpec"]["rayStartParams"]
    assert head_params["num-gpus"] == "0" and head_params["num-cpus"] == "0"
    (head,) = _containers(spec["headGroupSpec"]["template"]["spec"])
    assert "nvidia.com/gpu" not in head["resources"]["limits"]
    assert {p["containerPort"] for p in head["ports"]} >= {6379, 8265, 10001}
    (group,) = spec["workerGroupSpecs"]
    assert group["groupName"] and isinstance(group["rayStartParams"], dict)
    assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    assert group["maxReplicas"] > group["minReplicas"]  # room to autoscale
    worker_pod = group["template"]["spec"]
    (worker,) = _containers(worker_pod)
    assert int(worker["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert any(t["key"] == "nvidia.com/gpu" for t in worker_pod["tolerations"])
    assert head["image"] == worker["image"]
    for container in (head, worker):
        assert set(container["resources"]) == {"requests", "limits"}
    for env in (head["env"], worker["env"], spec["autoscalerOptions"]["env"]):
        by_name = {e["name"]: e for e in env}
        assert by_name["RAY_AUTH_MODE"]["value"] == "token"
        assert by_name["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
            "name": "dmlsweep-ray-auth",
            "key": "auth_token",
        }
    names = {e["name"] for e in head["env"]}
    assert {
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "DMLSWEEP_OPTUNA_STORAGE",
        "DMLSWEEP_S3_BUCKET",
        "AWS_ACCESS_KEY_ID",
    } <= names


def test_rayjob_runs_the_ahsml_sweep_on_the_cluster() -> None:
    job = _one("rayjob.yaml", "RayJob")
    cluster = _one("raycluster.yaml", "RayCluster")
    spec = job["spec"]
    assert spec["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    entrypoint = spec["entrypoint"]
    assert entrypoint.startswith("python ")
    assert "sweeps/launch.py --space ahsml" in entrypoint
    assert "--address auto" in entrypoint and "--tracking-uri http://mlflow:5000" in entrypoint
    # No shell syntax, no secret: KubeRay's submitter would interpret it in its own pod.
    assert not re.search(r"[$;&|`]", entrypoint)
    (submitter,) = _containers(spec["submitterPodTemplate"]["spec"])
    (head,) = _containers(cluster["spec"]["headGroupSpec"]["template"]["spec"])
    assert submitter["image"] == head["image"]
    assert {e["name"] for e in submitter["env"]} >= {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"}


def test_mlflow_and_postgres_services_match_the_uris() -> None:
    assert _one("mlflow.yaml", "Service")["metadata"]["name"] == "mlflow"
    assert _one("postgres.yaml", "Service")["metadata"]["name"] == "postgres"
    (mlflow,) = _containers(_one("mlflow.yaml", "Deployment")["spec"]["template"]["spec"])
    assert {
        "--app-name=basic-auth",
        "--serve-artifacts",
        "--artifacts-destination=s3://$(DMLSWEEP_S3_BUCKET)/mlartifacts",
    } <= set(mlflow["args"])
    assert mlflow["readinessProbe"]["httpGet"]["path"] == "/health"
    postgres_set = _one("postgres.yaml", "StatefulSet")
    (postgres,) = _containers(postgres_set["spec"]["template"]["spec"])
    assert postgres["image"] == "postgres:15"
    volumes = postgres_set["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "init",
        "configMap": {"name": "dmlsweep-postgres-init", "defaultMode": 0o755},
    } in volumes


def _env_entries(node: Any) -> list[dict[str, Any]]:
    """Every container env entry anywhere in a manifest."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, list):
                found += value
            else:
                found += _env_entries(value)
    elif isinstance(node, list):
        for item in node:
            found += _env_entries(item)
    return found


def test_k8s_secrets_only_through_secret_refs_and_documented() -> None:
    used: set[tuple[str, str]] = set()
    for path in sorted(K8S.glob("*.yaml")):
        assert not URL_WITH_PASSWORD.search(path.read_text()), path.name
        for entry in (e for doc in _load(path.name) for e in _env_entries(doc)):
            if SECRET_NAME.search(entry["name"]) and entry["name"] != "RAY_AUTH_MODE":
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                assert ref, f"{path.name}: {entry['name']} must come from a Secret"
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                used.add((ref["name"], ref["key"]))
    # The README's `kubectl create secret` commands create exactly the keys the manifests use.
    readme = (REPO_ROOT / "infra" / "README.md").read_text()
    documented = {
        ("dmlsweep-secrets", key)
        for key in re.findall(
            r"--from-literal=([a-z0-9-]+)=", readme.split("generic dmlsweep-ray-auth")[0]
        )
    }
    documented.add(("dmlsweep-ray-auth", "auth_token"))
    assert "generic dmlsweep-ray-auth --from-literal=auth_token=" in readme
    assert used == documented
