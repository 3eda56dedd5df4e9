"""A real local sweep end to end: Ray Tune trials, Optuna study and MLflow runs tell one story."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from support import run_cli

pytestmark = pytest.mark.ray

STATUS_OF_STATE = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def sweep_records(runs_dir: Path, space: str) -> tuple[list, list, optuna.Study]:
    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"dmlsweep-{space}")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("dmlsweep.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("dmlsweep.role") == "trial"]
    # (reproductions are children too, with their own role: see test_reproductions_*)
    storage = f"sqlite:///{runs_dir / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    return parents, children, study


@pytest.fixture(scope="module")
def baseline_sweep(ray_address: str, tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("baseline-sweep")
    proc = run_cli(
        "--space",
        "baseline",
        "--num-samples",
        "8",
        "--address",
        ray_address,
        "--name",
        "e2e-baseline",
        "--reproductions",
        "2",
        cwd=workdir,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return workdir / "dmlsweep-runs", proc.stdout


def test_mlflow_holds_one_parent_and_one_child_per_trial(baseline_sweep) -> None:
    runs_dir, _ = baseline_sweep
    parents, children, _ = sweep_records(runs_dir, "baseline")
    assert len(parents) == 1
    assert len(children) == 8
    parent = parents[0]
    assert parent.info.run_name == "e2e-baseline"
    assert parent.info.status == "FINISHED"
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    assert parent.data.tags["optuna.study_name"] == "e2e-baseline"
    assert parent.data.tags["sweep/num_samples"] == "8"  # a tag: an extension changes it
    assert "best/val/map_at_r" in parent.data.metrics
    assert any(k.startswith("best/lr") for k in parent.data.params)
    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "space")] == [
        "space/baseline.yaml"
    ]


def test_child_runs_have_params_and_per_epoch_metrics(baseline_sweep) -> None:
    runs_dir, _ = baseline_sweep
    _, children, _ = sweep_records(runs_dir, "baseline")
    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    for child in children:
        for name in ("lr", "weight_decay", "embedding_size", "ms_alpha", "ms_beta", "ms_base"):
            assert name in child.data.params
        history = client.get_metric_history(child.info.run_id, "val/map_at_r")
        steps = [m.step for m in history]
        assert steps == list(range(1, len(steps) + 1)), steps
        assert all(0.0 <= m.value <= 1.0 for m in history)
        assert client.get_metric_history(child.info.run_id, "train/loss")


def test_statuses_agree_across_ray_optuna_and_mlflow(baseline_sweep) -> None:
    runs_dir, stdout = baseline_sweep
    _, children, study = sweep_records(runs_dir, "baseline")
    states = [t.state.name for t in study.trials]
    assert len(states) == 8 and "RUNNING" not in states
    assert "PRUNED" in states  # ASHA stopped someone: 8 trials, reduction factor 2
    assert "COMPLETE" in states
    assert sorted(STATUS_OF_STATE[s] for s in states) == sorted(c.info.status for c in children)
    for child in children:
        assert STATUS_OF_STATE[child.data.tags["dmlsweep.state"]] == child.info.status
        epochs = len(
            MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}").get_metric_history(
                child.info.run_id, "train/loss"
            )
        )
        assert (epochs == 6) == (child.info.status == "FINISHED")
    # Optuna's PRUNED trials carry their intermediate values.
    for trial in study.trials:
        if trial.state.name == "PRUNED":
            assert trial.intermediate_values
    assert f"{states.count('PRUNED')} pruned" in stdout


def test_best_trials_have_model_artifacts(baseline_sweep) -> None:
    import mlflow.pytorch
    import torch

    runs_dir, _ = baseline_sweep
    parents, children, _ = sweep_records(runs_dir, "baseline")
    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    finished = sorted(
        (c for c in children if c.info.status == "FINISHED"),
        key=lambda c: c.data.metrics["val/map_at_r"],
        reverse=True,
    )
    models = client.search_logged_models(experiment_ids=[parents[0].info.experiment_id])
    by_run = {m.source_run_id: m for m in models}
    best = finished[0]
    assert best.info.run_id in by_run
    assert parents[0].data.tags["dmlsweep.best_run_id"] == best.info.run_id
    mlflow.set_tracking_uri(f"sqlite:///{runs_dir / 'mlflow.db'}")
    model = mlflow.pytorch.load_model(by_run[best.info.run_id].model_uri)
    embedding = model(torch.zeros(3, 1, 8, 8))
    assert embedding.shape == (3, int(best.data.params["embedding_size"]))


def test_console_shows_progress_and_summary(baseline_sweep) -> None:
    _, stdout = baseline_sweep
    assert "8/8:" in stdout  # the last progress line
    assert "best val/map_at_r" in stdout
    assert "sweep e2e-baseline finished" in stdout
    assert "mlflow ui --backend-store-uri" in stdout


def test_analysis_artifacts_cover_the_searched_parameters(baseline_sweep) -> None:
    import json

    import mlflow

    runs_dir, stdout = baseline_sweep
    parents, _, study = sweep_records(runs_dir, "baseline")
    parent = parents[0].info.run_id
    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    names = {Path(a.path).name for a in client.list_artifacts(parent, "analysis")}
    for plot in ("optimization_history", "parallel_coordinate", "slice", "param_importances"):
        assert {f"{plot}.html", f"{plot}.png"} <= names
    path = mlflow.artifacts.download_artifacts(
        run_id=parent,
        artifact_path="analysis/importance.json",
        tracking_uri=f"sqlite:///{runs_dir / 'mlflow.db'}",
    )
    importance = json.loads(Path(path).read_text())
    searched = {p for t in study.trials if t.state.name == "COMPLETE" for p in t.params}
    assert set(importance) == searched
    assert sum(importance.values()) == pytest.approx(1.0)
    assert "hyperparameter importance:" in stdout and "optuna-dashboard" in stdout


def test_reproductions_summarise_fresh_seed_test_runs(baseline_sweep) -> None:
    import numpy as np
    import scipy.stats

    runs_dir, stdout = baseline_sweep
    parents, children, _ = sweep_records(runs_dir, "baseline")
    parent = parents[0]
    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    reps = client.search_runs([parent.info.experiment_id], "tags.`dmlsweep.role` = 'reproduction'")
    assert len(reps) == 2
    best = parent.data.tags["dmlsweep.best_run_id"]
    best_params = next(c for c in children if c.info.run_id == best).data.params
    search_seed = int(parent.data.params["sweep/seed"])
    assert {int(r.data.params["seed"]) for r in reps} == {search_seed + 1, search_seed + 2}
    for rep in reps:  # the best configuration, re-trained with another seed
        assert rep.data.params["lr"] == best_params["lr"]
    # where every trial and reproduction ran, as the device rule resolved it in its worker
    for run in [*children, *reps]:
        assert run.data.tags["dmlsweep.runtime.device"] == "cpu"
        assert run.data.tags["dmlsweep.runtime.gpu_ids"] == "none"  # Ray assigned no GPU
    values = np.array([r.data.metrics["test/map_at_r"] for r in reps])
    low, high = scipy.stats.t.interval(0.95, df=1, loc=values.mean(), scale=scipy.stats.sem(values))
    metrics = parent.data.metrics
    assert metrics["repro/test/map_at_r/mean"] == pytest.approx(values.mean())
    assert metrics["repro/test/map_at_r/ci95_low"] == pytest.approx(low)
    assert metrics["repro/test/map_at_r/ci95_high"] == pytest.approx(high)
    assert "test/map_at_r" in stdout and "(n=2)" in stdout
