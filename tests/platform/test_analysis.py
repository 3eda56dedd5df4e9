"""A finished sweep's Optuna study analysed and logged to a real MLflow store; the study opened
in a real optuna-dashboard."""

from __future__ import annotations

import json
import math
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from support import VENV_BIN, free_port

from dmlsweep.analysis import INACTIVE, _complete_study, dashboard_command, log_study_analysis

# lr matters a lot; "noise(unused)" not at all (its name also needs a safe metric name);
# momentum exists only for sgd, beta2 only for adam (branches no trial holds both of);
# batch has one choice; "absent" is searched but never sampled.
SEARCHED = ["lr", "noise(unused)", "opt", "momentum", "beta2", "batch", "absent"]
VARYING = {"lr", "noise(unused)", "opt", "momentum", "beta2"}
PLOTS = ("optimization_history", "parallel_coordinate", "slice", "param_importances")


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[MlflowClient, str]:
    tmp = tmp_path_factory.mktemp("mlflow")
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    return client, client.create_experiment("sweeps", artifact_location=(tmp / "a").as_uri())


def _new_run(store: tuple[MlflowClient, str]) -> str:
    client, experiment = store
    return client.create_run(experiment).info.run_id


def _sweep_study(
    storage: str, *, n_trials: int = 24, n_complete: int | None = None, name: str = "sweep"
) -> optuna.Study:
    """A minimised study; every 3rd trial PRUNED with a wild last value set by the unused
    parameter, every 7th FAIL. (Were the 8 pruned trials of the 24 counted, beta2 would rank
    first and lr get 0.25.)"""
    study = optuna.create_study(
        study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        study.set_metric_names(["val/loss"])
    completed = 0
    for i in range(n_trials):
        trial = study.ask()
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        noise = trial.suggest_float("noise(unused)", 0.0, 1.0)
        trial.suggest_categorical("batch", [64])
        if trial.suggest_categorical("opt", ["sgd", "adam"]) == "sgd":
            trial.suggest_float("momentum", 0.0, 0.99)
        else:
            trial.suggest_float("beta2", 0.9, 0.999)
        if i % 3 == 2:
            trial.report(1e3 * noise, step=1)
            study.tell(trial, state=TrialState.PRUNED)
        elif i % 7 == 6 or (n_complete is not None and completed >= n_complete):
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, (math.log10(lr) + 2.5) ** 2)
            completed += 1
    return study


def _artifacts(client: MlflowClient, run_id: str) -> set[str]:
    return {Path(f.path).name for f in client.list_artifacts(run_id, "analysis")}


def test_importance_and_plots_logged_to_the_parent_run(
    tmp_path: Path, mlflow_store: tuple[MlflowClient, str]
) -> None:
    client = mlflow_store[0]
    study = _sweep_study(f"sqlite:///{tmp_path / 'optuna.db'}")
    run_id = _new_run(mlflow_store)

    importance = log_study_analysis(study=study, client=client, run_id=run_id, params=SEARCHED)

    assert set(importance) == VARYING
    assert sum(importance.values()) == pytest.approx(1.0, abs=1e-9)
    assert all(v >= 0.0 for v in importance.values())
    assert max(importance, key=importance.__getitem__) == "lr"
    assert importance["lr"] > 2 * importance["noise(unused)"]

    assert _artifacts(client, run_id) == (
        {"importance.json"} | {f"{p}.html" for p in PLOTS} | {f"{p}.png" for p in PLOTS}
    )
    local = Path(client.download_artifacts(run_id, "analysis", str(tmp_path / "dl")))
    assert json.loads((local / "importance.json").read_text()) == pytest.approx(importance)
    for plot in PLOTS:
        png = (local / f"{plot}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000, plot
        html = (local / f"{plot}.html").read_text()
        assert "cdn.plot.ly" in html and len(html) < 1_000_000, plot  # plotly.js not inlined
    assert "momentum" in (local / "slice.html").read_text()

    metrics = client.get_run(run_id).data.metrics
    assert metrics == pytest.approx(
        {
            "importance/lr": importance["lr"],
            "importance/noise_unused_": importance["noise(unused)"],
            "importance/opt": importance["opt"],
            "importance/momentum": importance["momentum"],
            "importance/beta2": importance["beta2"],
        }
    )


def test_fanova_sees_log_scales_and_inactive_values() -> None:
    """The copy fANOVA reads: log10 of a log-scaled number, a value of its own for an inactive
    conditional parameter (one range-width below it, or a category), ranges spanning a change."""
    dist = optuna.distributions
    study = optuna.create_study()
    sgd = {
        "momentum": dist.FloatDistribution(0.0, 0.9),
        "nesterov": dist.CategoricalDistribution([True, False]),
    }
    for lr, conditional in [
        (1e-4, {"momentum": 0.5, "nesterov": True}),
        (1e-2, {}),
        (1e-1, {"momentum": 0.0, "nesterov": False}),
    ]:
        distributions = {"lr": dist.FloatDistribution(1e-4, 1e-1, log=True)} | (
            {**sgd, "momentum": dist.FloatDistribution(0.0, 0.99)} if lr == 1e-1 else sgd
        )
        params = {"lr": lr} | conditional
        study.add_trial(
            optuna.trial.create_trial(
                value=1.0, params=params, distributions={k: distributions[k] for k in params}
            )
        )

    copy = _complete_study(study.trials, ["lr", "momentum", "nesterov"], direction=study.direction)

    assert [t.params["lr"] for t in copy.trials] == pytest.approx([-4.0, -2.0, -1.0])
    assert [t.params["momentum"] for t in copy.trials] == pytest.approx([0.5, -0.99, 0.0])
    assert [t.params["nesterov"] for t in copy.trials] == [True, INACTIVE, False]
    assert copy.trials[0].distributions == {
        "lr": dist.FloatDistribution(-4.0, -1.0),
        "momentum": dist.FloatDistribution(-0.99, 0.99),
        "nesterov": dist.CategoricalDistribution([True, False, INACTIVE]),
    }


@pytest.mark.parametrize("n_complete", [0, 1])
def test_too_few_complete_trials_logs_why(
    tmp_path: Path, mlflow_store: tuple[MlflowClient, str], n_complete: int
) -> None:
    client = mlflow_store[0]
    study = _sweep_study(f"sqlite:///{tmp_path / 'optuna.db'}", n_trials=6, n_complete=n_complete)
    run_id = _new_run(mlflow_store)

    assert log_study_analysis(study=study, client=client, run_id=run_id, params=SEARCHED) == {}

    assert _artifacts(client, run_id) == {
        "README.txt",
        "optimization_history.html",
        "optimization_history.png",
    }
    readme = Path(client.download_artifacts(run_id, "analysis/README.txt", str(tmp_path)))
    assert f"Only {n_complete} of the study's 6 trials completed" in readme.read_text()
    assert not client.get_run(run_id).data.metrics


def test_no_varying_parameter_logs_why(
    tmp_path: Path, mlflow_store: tuple[MlflowClient, str]
) -> None:
    client = mlflow_store[0]
    study = _sweep_study(f"sqlite:///{tmp_path / 'optuna.db'}", n_trials=6)
    run_id = _new_run(mlflow_store)

    assert (
        log_study_analysis(study=study, client=client, run_id=run_id, params=["batch", "absent"])
        == {}
    )

    readme = Path(client.download_artifacts(run_id, "analysis/README.txt", str(tmp_path)))
    assert "None of the searched parameters ['batch', 'absent']" in readme.read_text()
    assert "importance.json" not in _artifacts(client, run_id)


def test_bad_arguments_are_named(mlflow_store: tuple[MlflowClient, str]) -> None:
    client = mlflow_store[0]
    with pytest.raises(TypeError, match="not the string 'lr'"):
        log_study_analysis(study=optuna.create_study(), client=client, run_id="r", params="lr")
    with pytest.raises(ValueError, match="2 objectives"):
        log_study_analysis(
            study=optuna.create_study(directions=["minimize", "maximize"]),
            client=client,
            run_id="r",
            params=["lr"],
        )


def test_dashboard_command_masks_the_password() -> None:
    command = dashboard_command("postgresql://sweeper:s3cret@db:5432/optuna")
    assert command == "optuna-dashboard 'postgresql://sweeper:***@db:5432/optuna'"
    assert dashboard_command("sqlite:////runs/my sweep/optuna.db") == (
        "optuna-dashboard 'sqlite:////runs/my sweep/optuna.db'"
    )


def test_optuna_dashboard_lists_the_study(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    _sweep_study(storage, n_trials=3, name="my-sweep")
    port = free_port()
    server = subprocess.Popen(
        [str(VENV_BIN / "optuna-dashboard"), storage, "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/studies", timeout=5
                ) as response:
                    studies = json.load(response)["study_summaries"]
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "optuna-dashboard did not answer in 60 s"
                time.sleep(0.3)
        assert [s["study_name"] for s in studies] == ["my-sweep"]
    finally:
        server.terminate()
        server.wait(timeout=10)
