"""A trial whose hyperparameters change while it runs (PBT) keeps its starting params in MLflow
and gets the schedule beside them: ``config/<name>`` metrics and the current configuration."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from mlflow.tracking import MlflowClient
from support import local_tracking

from dmlsweep.tracking import MlflowTracking


def _tracking(tmp_path: Path) -> MlflowTracking:
    return local_tracking(tmp_path, name="pbt-history", max_epochs=6)


def _epoch(tracking: MlflowTracking, trial: SimpleNamespace, step: int) -> None:
    result = {"training_iteration": step, "val/score": float(step)}
    tracking.on_trial_result(step, [], trial, result)


def test_changed_hyperparameters_are_charted_beside_the_starting_params(tmp_path: Path) -> None:
    tracking = _tracking(tmp_path)
    trial = SimpleNamespace(trial_id="t0", config={"x": 0.5, "y": -0.2, "kind": "a", "seed": 0})
    tracking.on_trial_start(0, [], trial)
    _epoch(tracking, trial, 1)
    _epoch(tracking, trial, 2)
    trial.config = {"x": 0.6, "y": -0.2, "kind": "b", "seed": 0}  # an exploit at epoch 2
    _epoch(tracking, trial, 2)  # restarted from another trial's epoch-1 checkpoint
    _epoch(tracking, trial, 3)
    trial.config = {"x": 0.6, "y": 0.1, "kind": "b", "seed": 0}
    _epoch(tracking, trial, 4)
    tracking.flush()

    client = MlflowClient(tracking.tracking_uri)
    run = client.get_run(tracking.run_of("t0") or "")
    assert run.data.params["x"] == "0.5" and run.data.params["kind"] == "a"  # as it started

    def chart(key: str) -> list[tuple[int, float]]:
        history = client.get_metric_history(run.info.run_id, f"config/{key}")
        return sorted((m.step, m.value) for m in history)

    assert chart("x") == [(0, 0.5), (2, 0.6), (4, 0.6)]
    assert chart("y") == [(0, -0.2), (4, 0.1)]  # charted from when it first moved
    assert chart("seed") == []  # never moved: not charted
    assert json.loads(run.data.tags["dmlsweep.config"]) == trial.config
    assert run.data.tags["dmlsweep.config_changes"] == "2"


def test_a_trial_whose_hyperparameters_never_change_gets_no_schedule(tmp_path: Path) -> None:
    tracking = _tracking(tmp_path)
    trial = SimpleNamespace(trial_id="t1", config={"x": 0.5})
    tracking.on_trial_start(0, [], trial)
    for step in (1, 2, 3):
        _epoch(tracking, trial, step)
    tracking.flush()
    client = MlflowClient(tracking.tracking_uri)
    run = client.get_run(tracking.run_of("t1") or "")
    assert client.get_metric_history(run.info.run_id, "config/x") == []
    assert "dmlsweep.config" not in run.data.tags
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/score")] == [1, 2, 3]
