"""The final-evaluation command loads a trial's model from MLflow and logs test metrics to it."""

from __future__ import annotations

from pathlib import Path

import mlflow
import mlflow.pytorch
import pytest
from mlflow.tracking import MlflowClient

from dmlsweep.errors import DmlsweepError
from dmlsweep.evaluate import evaluate_run
from trainables.mathm import objective


def test_evaluate_logs_test_metrics_to_the_run(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "a").as_uri())
    config = {"max_epochs": 1, "seed": 0, "embedding_size": 32, "data_root": ""}  # "" stays ""
    run = client.create_run(experiment, tags={"dmlsweep.objective": "mathm"})
    for key, value in config.items():
        client.log_param(run.info.run_id, key, value)
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_id=run.info.run_id):
        mlflow.pytorch.log_model(
            objective.build_model(config),
            name="model",
            serialization_format="pickle",
            pip_requirements=["torch"],
        )
    metrics = evaluate_run(run.info.run_id, tracking_uri=uri)
    logged = client.get_run(run.info.run_id).data.metrics
    for key in ("test/map_all", "test/map_all_per_class", "test/prec_100", "test/binary_map_all"):
        assert key in metrics
        assert logged[key] == pytest.approx(metrics[key])
        assert 0.0 <= logged[key] <= 1.0


def test_run_without_model_fails_clearly(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("e"), tags={"dmlsweep.objective": "mathm"})
    with pytest.raises(DmlsweepError, match="no logged model"):
        evaluate_run(run.info.run_id, tracking_uri=uri)
