"""Final evaluation of a tracked trial on its objective's test classes, logged back to MLflow.

    python -m dmlsweep.evaluate RUN_ID [--tracking-uri URI]

Reads the trial's objective (tag ``dmlsweep.objective``) and config (its parameters), loads
the PyTorch model logged for that run, calls the objective's ``evaluate_test(model, config)``
(the only place test classes are read) and logs the returned ``test/*`` metrics to the run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from dmlsweep import schema
from dmlsweep.errors import DmlsweepError
from dmlsweep.names import filter_value
from dmlsweep.secrets import redact


def evaluate_run(run_id: str, *, tracking_uri: str) -> dict[str, float]:
    import mlflow
    import mlflow.pytorch
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from trainables.registry import load_objective

    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    try:
        run = client.get_run(run_id)
    except Exception as exc:
        raise DmlsweepError(f"no MLflow run {run_id} at {redact(tracking_uri)}: {exc}") from exc
    objective_name = run.data.tags.get(schema.OBJECTIVE)
    if not objective_name:
        raise DmlsweepError(f"run {run_id} is not a dmlsweep trial (no dmlsweep.objective tag)")
    objective = load_objective(objective_name)
    if not hasattr(objective, "evaluate_test"):
        raise DmlsweepError(f"objective {objective_name!r} has no final evaluation")
    # Parameters are stored as text; YAML gives back their numbers and booleans.
    config: dict[str, Any] = {
        k: yaml.safe_load(v) if v != "" else "" for k, v in run.data.params.items()
    }
    models = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = {filter_value(run_id)}",
    )
    if not models:
        raise DmlsweepError(f"run {run_id} has no logged model (only the best trials get one)")
    model = mlflow.pytorch.load_model(models[0].model_uri, map_location="cpu")
    metrics = objective.evaluate_test(model, config)
    client.log_batch(run_id, metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()])
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    from dmlsweep.secrets import redact_console

    redact_console()
    parser = argparse.ArgumentParser(prog="python -m dmlsweep.evaluate", description=__doc__)
    parser.add_argument("run_id")
    parser.add_argument("--tracking-uri", default="sqlite:///dmlsweep-runs/mlflow.db")
    args = parser.parse_args(argv)
    try:
        metrics = evaluate_run(args.run_id, tracking_uri=args.tracking_uri)
    except DmlsweepError as exc:
        print(f"dmlsweep: error: {exc}", file=sys.stderr)
        return 2
    for key, value in sorted(metrics.items()):
        print(f"{key:32s} {value:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
