"""Secrets stay where they belong: a real sweep of the CLI whose environment holds every
credential of the production services (the Optuna database password, the S3 secret key, an
MLflow basic-auth password) leaves none of them in anything it writes or prints: MLflow params,
tags, metric names, artifacts and logged models of the parent and child runs, Ray Tune's
files in the bucket, and the console. Where a URL is shown, its password is ``***``.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from mlflow.entities import ViewType
from services.stack import ServiceStack, start_mlflow_with_auth, stop_mlflow
from support import run_cli

from dmlsweep.secrets import redact

if TYPE_CHECKING:
    from services.conftest import StackSweep

pytestmark = [pytest.mark.services, pytest.mark.ray]

SWEEP = "secret-sweep"
MLFLOW_USER = "admin"


@dataclass(frozen=True)
class SecretSweep:
    secrets: dict[str, str]  # what must never appear -> the secret
    tracking_uri: str
    optuna_storage: str
    stdout: str
    stderr: str
    workdir: Path


@pytest.fixture(scope="module")
def secret_sweep(
    service_stack: ServiceStack, ray_address: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecretSweep]:
    """A quadratic sweep against an MLflow server with basic auth on (infra's config), Optuna
    on PostgreSQL and Tune's state in the bucket; every credential comes from the environment."""
    root = tmp_path_factory.mktemp("secrets")
    password = f"mlflow-pw-{uuid.uuid4().hex}"
    server = start_mlflow_with_auth(
        service_stack, workdir=root, name="mlflow-secrets", user=MLFLOW_USER, password=password
    )
    storage = service_stack.storage
    assert storage.access_key_id and storage.secret_access_key
    env = {
        "MLFLOW_TRACKING_URI": server.url,
        "MLFLOW_TRACKING_USERNAME": MLFLOW_USER,
        "MLFLOW_TRACKING_PASSWORD": password,
        "DMLSWEEP_OPTUNA_STORAGE": service_stack.optuna_storage,
        "DMLSWEEP_S3_BUCKET": storage.bucket,
        "DMLSWEEP_S3_ENDPOINT_URL": str(storage.endpoint_url),
        "AWS_ACCESS_KEY_ID": storage.access_key_id,
        "AWS_SECRET_ACCESS_KEY": storage.secret_access_key,
    }
    try:
        proc = run_cli(
            "--space", "quadratic", "--num-samples", "2", "--max-epochs", "2",
            "--log-models", "1", "--address", ray_address, "--name", SWEEP,
            cwd=root, env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        with pytest.MonkeyPatch.context() as mp:  # the test process reads through the auth
            for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
                mp.setenv(name, env[name])
            yield SecretSweep(
                secrets={
                    "the PostgreSQL password": service_stack.stack.postgres.password,
                    "the S3 secret key": storage.secret_access_key,
                    "the MLflow password": password,
                },
                tracking_uri=server.url,
                optuna_storage=service_stack.optuna_storage,
                stdout=proc.stdout,
                stderr=proc.stderr,
                workdir=root,
            )
    finally:
        stop_mlflow(server)
        shutil.rmtree(root / "downloads", ignore_errors=True)


def _leaks(blobs: dict[str, bytes], secrets: dict[str, str]) -> list[str]:
    return [
        f"{what} in {where}"
        for where, blob in blobs.items()
        for what, secret in secrets.items()
        if secret.encode() in blob
    ]


def _mlflow_records(sweep: SecretSweep) -> dict[str, bytes]:
    """Every param, tag, metric name, artifact and logged model of the sweep, as bytes."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(sweep.tracking_uri)
    experiment = client.get_experiment_by_name("dmlsweep-quadratic")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL)
    (parent,) = [
        r for r in runs if r.info.run_name == SWEEP and r.data.tags["dmlsweep.role"] == "sweep"
    ]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2
    blobs: dict[str, bytes] = {
        f"experiment {experiment.name} tags": repr(experiment.tags).encode(),
        f"experiment {experiment.name} artifact location": experiment.artifact_location.encode(),
    }
    downloads = sweep.workdir / "downloads"
    artifact_count = 0
    for run in (parent, *children):
        rid = run.info.run_id
        blobs[f"run {rid} params"] = repr(run.data.params).encode()
        blobs[f"run {rid} tags"] = repr(run.data.tags).encode()
        blobs[f"run {rid} metric names"] = repr(sorted(run.data.metrics)).encode()
        blobs[f"run {rid} name and artifact uri"] = f"{run.info}".encode()
        local = Path(client.download_artifacts(rid, "", str(downloads / rid)))
        for path in local.rglob("*"):
            if path.is_file():
                blobs[f"run {rid} artifact {path.relative_to(local)}"] = path.read_bytes()
                artifact_count += 1
    assert artifact_count >= 1  # at least the parent's space file
    return blobs


def test_no_secret_in_mlflow(secret_sweep: SecretSweep) -> None:
    blobs = _mlflow_records(secret_sweep)
    assert _leaks(blobs, secret_sweep.secrets) == []
    # The study's database is recorded with its password masked.
    (params,) = [v for k, v in blobs.items() if k.endswith(" params") and b"optuna/storage" in v]
    assert repr(redact(secret_sweep.optuna_storage)).encode() in params
    assert b":***@127.0.0.1" in params


def test_no_secret_in_the_console(secret_sweep: SecretSweep) -> None:
    output = {"stdout": secret_sweep.stdout.encode(), "stderr": secret_sweep.stderr.encode()}
    assert _leaks(output, secret_sweep.secrets) == []
    masked = redact(secret_sweep.optuna_storage)
    assert ":***@127.0.0.1" in masked
    assert f"Optuna study '{SWEEP}' in {masked}" in secret_sweep.stdout


def _bucket(service_stack: ServiceStack, prefix: str) -> dict[str, bytes]:
    bucket = service_stack.storage.bucket
    return {
        f"s3://{bucket}/{key}": service_stack.read_object(key)
        for key in service_stack.bucket_keys(prefix)
    }


def test_no_secret_in_mlflow_artifacts_and_models_in_the_bucket(
    secret_sweep: SecretSweep, stack_sweep: StackSweep, service_stack: ServiceStack
) -> None:
    """Every MLflow artifact and logged model in the bucket, read as bytes: this sweep's and
    those of the session's AHSML stack sweep (run with the same database and S3 secrets in its
    environment, and the one whose best trials log their networks)."""
    blobs = _bucket(service_stack, f"{service_stack.artifacts_prefix}/")
    assert any("/models/" in key and key.endswith("/MLmodel") for key in blobs)
    assert any(key.endswith("/space/quadratic.yaml") for key in blobs)  # this sweep's
    assert _leaks(blobs, secret_sweep.secrets) == []


def test_no_secret_in_tune_files_in_the_bucket(
    secret_sweep: SecretSweep, stack_sweep: StackSweep, service_stack: ServiceStack
) -> None:
    """Tune's experiment state, searcher state, results and checkpoints (readable by whoever
    can read the bucket) hold no credential: not of the database, nor of MLflow, nor of S3."""
    blobs = _bucket(service_stack, "ray/")
    for sweep in (SWEEP, stack_sweep.name):
        assert any(key.endswith(f"ray/{sweep}/tuner.pkl") for key in blobs), sweep
    assert _leaks(blobs, secret_sweep.secrets) == []
