"""The production services, for real: MLflow server on PostgreSQL with S3 artifacts proxied
through it, SeaweedFS enforcing its keys, Optuna on PostgreSQL, Ray Tune writing to S3, and
MLflow's basic-auth config from infra/. Nothing is mocked."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore
import botocore.config
import botocore.exceptions
import pytest
import torch
from services.stack import ServiceStack, start_mlflow_with_auth, stop_mlflow
from support import run_cli

from dmlsweep.remote_storage import RemoteStorage

pytestmark = pytest.mark.services


@pytest.fixture
def mlflow_client_without_s3_keys(
    service_stack: ServiceStack, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """MLflow pointed at the server, with no way for this process to reach S3 by itself."""
    import mlflow

    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "MLFLOW_S3_ENDPOINT_URL",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", service_stack.tracking_uri)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(service_stack.tracking_uri)
    yield mlflow
    mlflow.set_tracking_uri(previous)


def test_runs_land_in_postgres_and_artifacts_in_the_bucket(
    service_stack: ServiceStack, mlflow_client_without_s3_keys: Any
) -> None:
    mlflow = mlflow_client_without_s3_keys
    experiment = f"stack-{uuid.uuid4().hex[:8]}"
    mlflow.set_experiment(experiment)
    model = torch.nn.Linear(3, 2)
    with mlflow.start_run(run_name="sweep") as parent:
        for i, curvature in enumerate((0.1, 1.0)):
            with mlflow.start_run(run_name=f"trial-{i}", nested=True):
                mlflow.log_params({"curvature": curvature, "temperature": 0.2})
                for step, value in enumerate((0.5, 0.6 + i / 10)):
                    mlflow.log_metric("val/recall_at_1", value, step=step)
        mlflow.log_text("best curvature 1.0\n", "notes/summary.txt")
        # Explicit requirements: skips MLflow's slow inference of the environment.
        info = mlflow.pytorch.log_model(
            model, name="model", pip_requirements=["torch"], serialization_format="pickle"
        )
    exp_id = parent.info.experiment_id

    # The client never held S3 keys: its artifact URIs go through the server's proxy.
    assert parent.info.artifact_uri.startswith("mlflow-artifacts:")

    # PostgreSQL: the parent and its two trials, finished, trials pointing at the parent.
    runs = service_stack.query(
        "mlflow",
        "SELECT r.run_uuid, r.name, r.status, t.value FROM runs r LEFT JOIN tags t "
        "ON t.run_uuid = r.run_uuid AND t.key = 'mlflow.parentRunId' "
        "WHERE r.experiment_id = %s ORDER BY r.name",
        int(exp_id),
    )
    assert [(name, status) for _, name, status, _ in runs] == [
        ("sweep", "FINISHED"),
        ("trial-0", "FINISHED"),
        ("trial-1", "FINISHED"),
    ]
    assert [parent_id for _, _, _, parent_id in runs] == [
        None,
        parent.info.run_id,
        parent.info.run_id,
    ]
    params = service_stack.query(
        "mlflow",
        "SELECT p.value FROM params p JOIN runs r ON r.run_uuid = p.run_uuid "
        "WHERE r.experiment_id = %s AND p.key = 'curvature' ORDER BY r.name",
        int(exp_id),
    )
    assert params == [("0.1",), ("1.0",)]
    metrics = service_stack.query(
        "mlflow",
        "SELECT m.step, m.value FROM metrics m JOIN runs r "
        "ON r.run_uuid = m.run_uuid WHERE r.name = 'trial-1' "
        "AND r.experiment_id = %s ORDER BY m.step",
        int(exp_id),
    )
    assert metrics == [(0, 0.5), (1, pytest.approx(0.7))]

    # The bucket: the text artifact under the run, the model under the experiment's models.
    base = f"{service_stack.artifacts_prefix}/{exp_id}"
    body = service_stack.s3.get_object(
        Bucket=service_stack.storage.bucket,
        Key=f"{base}/{parent.info.run_id}/artifacts/notes/summary.txt",
    )["Body"].read()
    assert body == b"best curvature 1.0\n"
    model_keys = service_stack.bucket_keys(f"{base}/models/{info.model_id}/artifacts/")
    names = {key.rsplit("/artifacts/", 1)[1] for key in model_keys}
    assert {"MLmodel", "requirements.txt", "data/model.pth"} <= names
    mlmodel = (
        service_stack.s3.get_object(
            Bucket=service_stack.storage.bucket,
            Key=f"{base}/models/{info.model_id}/artifacts/MLmodel",
        )["Body"]
        .read()
        .decode()
    )
    assert "pytorch" in mlmodel
    # The weights read back (through the proxy) are the ones logged.
    loaded = mlflow.pytorch.load_model(info.model_uri)
    assert torch.equal(loaded.weight, model.weight) and torch.equal(loaded.bias, model.bias)


def test_wrong_s3_credentials_are_rejected(service_stack: ServiceStack) -> None:
    good = service_stack.storage
    bucket = good.bucket
    assert isinstance(good.boto3_client().list_objects_v2(Bucket=bucket)["KeyCount"], int)

    wrong_secret = RemoteStorage(
        endpoint_url=good.endpoint_url,
        bucket=bucket,
        access_key_id=good.access_key_id,
        secret_access_key="wrong",
    )
    with pytest.raises(botocore.exceptions.ClientError, match="SignatureDoesNotMatch"):
        wrong_secret.boto3_client().put_object(Bucket=bucket, Key="intruder.txt", Body=b"x")
    unknown_key = RemoteStorage(
        endpoint_url=good.endpoint_url,
        bucket=bucket,
        access_key_id="nobody",
        secret_access_key="wrong",
    )
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidAccessKeyId"):
        unknown_key.boto3_client().list_objects_v2(Bucket=bucket)
    anonymous = boto3.client(
        "s3",
        endpoint_url=good.endpoint_url,
        region_name=good.region,
        config=botocore.config.Config(signature_version=botocore.UNSIGNED),
    )
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        anonymous.get_object(Bucket=bucket, Key="anything")
    # pyarrow (Ray Tune's side) is refused the same way.
    with pytest.raises(OSError, match="(?i)signature|denied|403"):
        wrong_secret.pyarrow_filesystem().open_output_stream(f"{bucket}/intruder.txt").close()
    assert "intruder.txt" not in service_stack.bucket_keys("intruder")


def test_optuna_study_in_postgres(service_stack: ServiceStack) -> None:
    import optuna

    from dmlsweep.databases import open_optuna_storage

    name = f"stack-{uuid.uuid4().hex[:8]}"
    study = optuna.create_study(
        study_name=name,
        direction="maximize",
        storage=open_optuna_storage(service_stack.optuna_storage),
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    study.optimize(lambda t: -((t.suggest_float("curvature", 0.01, 1.0) - 0.3) ** 2), n_trials=3)
    # A fresh connection sees the study, as a second sweep process would.
    again = optuna.load_study(study_name=name, storage=service_stack.optuna_storage)
    assert len(again.trials) == 3 and again.best_value == study.best_value
    rows = service_stack.query(
        "optuna",
        "SELECT count(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
        "WHERE s.study_name = %s AND t.state = 'COMPLETE'",
        name,
    )
    assert rows == [(3,)]


@pytest.mark.ray
def test_tune_results_and_checkpoints_on_s3(service_stack: ServiceStack, ray_address: str) -> None:
    from ray import tune

    def trainable(config: dict[str, Any]) -> None:  # nested: pickled by value for the workers
        import json
        import tempfile

        from ray import tune

        for epoch in range(2):
            with tempfile.TemporaryDirectory() as tmp:
                Path(tmp, "state.json").write_text(json.dumps({"epoch": epoch, "x": config["x"]}))
                tune.report(
                    {"score": config["x"] * (epoch + 1)},
                    checkpoint=tune.Checkpoint.from_directory(tmp),
                )

    storage = service_stack.storage
    name = f"tune-{uuid.uuid4().hex[:8]}"
    tuner = tune.Tuner(
        trainable,
        param_space={"x": tune.grid_search([1.0, 2.0])},
        tune_config=tune.TuneConfig(metric="score", mode="max"),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage.storage_path("ray"),
            storage_filesystem=storage.pyarrow_filesystem(),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    results = tuner.fit()
    assert results.num_errors == 0 and results.get_best_result().metrics["score"] == 4.0
    keys = service_stack.bucket_keys(f"ray/{name}/")
    assert any(key.endswith("/state.json") and "/checkpoint_" in key for key in keys)
    assert any(key.endswith("/result.json") for key in keys)
    assert any(key.rsplit("/", 1)[1].startswith("experiment_state") for key in keys)
    # The best checkpoint is read back from the bucket.
    with results.get_best_result().checkpoint.as_directory() as directory:
        assert '"x": 2.0' in Path(directory, "state.json").read_text()


def test_basic_auth_config_from_infra(service_stack: ServiceStack, tmp_path: Path) -> None:
    """infra/mlflow/basic_auth.ini as compose uses it: anonymous and wrong passwords refused."""
    import requests

    password = uuid.uuid4().hex
    server = start_mlflow_with_auth(
        service_stack, workdir=tmp_path, name="mlflow-auth", user="admin", password=password
    )
    try:
        api = f"{server.url}/api/2.0/mlflow/experiments/search"
        body = {"max_results": 1}
        assert requests.post(api, json=body, timeout=10).status_code == 401
        assert requests.post(api, json=body, auth=("admin", "wrong"), timeout=10).status_code == 401
        response = requests.post(api, json=body, auth=("admin", password), timeout=10)
        assert response.status_code == 200, response.text
        assert requests.get(f"{server.url}/health", timeout=10).status_code == 200  # probes
    finally:
        stop_mlflow(server)
        shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"AWS_SECRET_ACCESS_KEY": "wrong-secret-0x5f"}, ["credentials were refused", "AWS_"]),
        ({"DMLSWEEP_S3_BUCKET": "no-such-bucket-dmlsweep"}, ["no bucket", "no-such-bucket"]),
    ],
    ids=["wrong-credentials", "missing-bucket"],
)
def test_sweep_with_unusable_s3_is_refused_before_anything_starts(
    service_stack: ServiceStack, tmp_path: Path, change: dict[str, str], words: list[str]
) -> None:
    """Tune's results go to the bucket: keys it refuses, or a bucket that is not there, stop
    the sweep at once with a message naming them (never the secret), and nothing is written."""
    storage = service_stack.storage
    env = {
        "DMLSWEEP_S3_BUCKET": storage.bucket,
        "DMLSWEEP_S3_ENDPOINT_URL": str(storage.endpoint_url),
        "AWS_ACCESS_KEY_ID": str(storage.access_key_id),
        "AWS_SECRET_ACCESS_KEY": str(storage.secret_access_key),
        **change,
    }
    runs_dir = tmp_path / "runs"
    proc = run_cli(
        "--space", "quadratic", "--num-samples", "1", "--runs-dir", str(runs_dir),
        cwd=tmp_path, env=env, timeout=120,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]
    for word in words:
        assert word in output, output[-3000:]
    assert "Traceback" not in output
    assert env["AWS_SECRET_ACCESS_KEY"] not in output
    assert not runs_dir.exists()
