"""A real sweep of the CLI against the production services: its trials in MLflow's PostgreSQL,
the best models and Tune's state and checkpoints in the S3 bucket, the study in Optuna's
PostgreSQL, and each store agreeing with the others. Nothing is mocked; the sweep runs once
(the session fixture ``stack_sweep``) and is shared with the MLflow UI test."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

import pytest
import torch
import yaml
from services.stack import ServiceStack

if TYPE_CHECKING:
    from services.conftest import StackSweep

pytestmark = [pytest.mark.services, pytest.mark.ray]

STATUS_OF_STATE = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


def _tags(service_stack: ServiceStack, run_id: str) -> dict[str, str]:
    rows = service_stack.query("mlflow", "SELECT key, value FROM tags WHERE run_uuid = %s", run_id)
    return dict(rows)


def _params(service_stack: ServiceStack, run_id: str) -> dict[str, str]:
    rows = service_stack.query(
        "mlflow", "SELECT key, value FROM params WHERE run_uuid = %s", run_id
    )
    return dict(rows)


def _sweep_runs(service_stack: ServiceStack, sweep: StackSweep) -> tuple[tuple, list[tuple]]:
    """The parent run and its children as ``(run_uuid, name, status, experiment_id)`` rows."""
    parents = service_stack.query(
        "mlflow",
        "SELECT r.run_uuid, r.name, r.status, r.experiment_id FROM runs r "
        "JOIN experiments e ON e.experiment_id = r.experiment_id "
        "JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'dmlsweep.role' "
        "WHERE e.name = %s AND r.name = %s AND t.value = 'sweep'",
        sweep.experiment,
        sweep.name,
    )
    assert len(parents) == 1, parents
    children = service_stack.query(
        "mlflow",
        "SELECT r.run_uuid, r.name, r.status, r.experiment_id FROM runs r "
        "JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'mlflow.parentRunId' "
        "WHERE t.value = %s ORDER BY r.name",
        parents[0][0],
    )
    return parents[0], children


def test_trials_are_child_runs_in_postgres(
    service_stack: ServiceStack, stack_sweep: StackSweep
) -> None:
    parent, children = _sweep_runs(service_stack, stack_sweep)
    parent_id, _, parent_status, experiment_id = parent
    assert parent_status == "FINISHED"
    assert len(children) == stack_sweep.num_samples
    parent_tags = _tags(service_stack, parent_id)
    assert parent_tags["optuna.study_name"] == stack_sweep.name
    assert parent_tags["dmlsweep.best_run_id"] in {c[0] for c in children}
    assert parent_tags["sweep/num_samples"] == str(stack_sweep.num_samples)  # a tag: it grows
    for run_id, name, status, child_experiment in children:
        tags = _tags(service_stack, run_id)
        assert child_experiment == experiment_id
        assert tags["dmlsweep.role"] == "trial"
        assert name == f"{stack_sweep.name}-{tags['dmlsweep.trial_id']}"
        assert status == STATUS_OF_STATE[tags["dmlsweep.state"]] in ("FINISHED", "KILLED")
        params = _params(service_stack, run_id)
        assert {"curvature", "tau", "lr", "embedding_size"} <= params.keys()
        assert 1e-3 <= float(params["curvature"]) <= 1.0
        history = service_stack.query(
            "mlflow",
            "SELECT step, value FROM metrics WHERE run_uuid = %s AND key = 'val/map_at_r' "
            "ORDER BY step",
            run_id,
        )
        steps = [step for step, _ in history]
        # A finished trial ran every epoch; ASHA stopped a killed one earlier.
        assert steps == list(range(1, len(steps) + 1)), steps
        assert (len(steps) == stack_sweep.max_epochs) == (status == "FINISHED")
        assert all(0.0 <= value <= 1.0 for _, value in history)
    assert "FINISHED" in {c[2] for c in children}
    assert f"sweep {stack_sweep.name} finished" in stack_sweep.stdout


def test_secrets_stay_out_of_the_console(
    service_stack: ServiceStack, stack_sweep: StackSweep
) -> None:
    output = stack_sweep.stdout + stack_sweep.stderr
    assert service_stack.stack.postgres.password not in output
    assert str(service_stack.storage.secret_access_key) not in output


def _logged_models(service_stack: ServiceStack, run_ids: list[str]) -> dict[str, tuple[str, str]]:
    """source run id -> (model id, artifact location) of the models logged by these runs."""
    rows = service_stack.query(
        "mlflow",
        "SELECT source_run_id, model_id, artifact_location FROM logged_models "
        "WHERE source_run_id = ANY(%s)",
        run_ids,
    )
    return {run_id: (model_id, location) for run_id, model_id, location in rows}


def _artifact_key(service_stack: ServiceStack, location: str, path: str) -> str:
    # The server proxies mlflow-artifacts:/<rest> to s3://bucket/<artifacts prefix>/<rest>.
    scheme = "mlflow-artifacts:/"
    assert location.startswith(scheme), location
    return f"{service_stack.artifacts_prefix}/{location[len(scheme) :].strip('/')}/{path}"


def _tune_trial_dirs(service_stack: ServiceStack, sweep: StackSweep) -> dict[str, list[str]]:
    """Tune trial id -> the keys of its directory under ``ray/<sweep>/``."""
    prefix = f"ray/{sweep.name}/"
    trials: dict[str, list[str]] = {}
    for key in service_stack.bucket_keys(prefix):
        directory = key[len(prefix) :].split("/", 1)[0]
        if directory.startswith("train_") and "/" in key[len(prefix) :]:
            trials.setdefault(directory.split("_")[1], []).append(key)
    return trials


def test_best_models_are_read_back_from_the_bucket(
    service_stack: ServiceStack, stack_sweep: StackSweep
) -> None:
    parent, children = _sweep_runs(service_stack, stack_sweep)
    finished = [c[0] for c in children if c[2] == "FINISHED"]
    models = _logged_models(service_stack, [c[0] for c in children])
    # The CLI logs the models of the 3 best finished trials (--log-models default), no others.
    assert set(models) <= set(finished)
    assert len(models) == min(3, len(finished))
    best_run = _tags(service_stack, parent[0])["dmlsweep.best_run_id"]
    model_id, location = models[best_run]

    names = {
        key.rsplit("/artifacts/", 1)[1]
        for key in service_stack.bucket_keys(_artifact_key(service_stack, location, ""))
    }
    assert {"MLmodel", "data/model.pth", "requirements.txt"} <= names
    mlmodel = yaml.safe_load(
        service_stack.read_object(_artifact_key(service_stack, location, "MLmodel"))
    )
    assert mlmodel["run_id"] == best_run and mlmodel["model_id"] == model_id
    assert "pytorch" in mlmodel["flavors"]

    # The pickled network (our own classes: trusted) embeds digits into the Poincare ball.
    weights = service_stack.read_object(_artifact_key(service_stack, location, "data/model.pth"))
    model = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=False)
    params = _params(service_stack, best_run)
    with torch.no_grad():
        embedding = model(torch.rand(5, 1, 8, 8))
    assert embedding.shape == (5, int(params["embedding_size"]))
    radius = float(model.hyperbolic.ball.c) ** -0.5
    assert torch.isfinite(embedding).all() and bool((embedding.norm(dim=1) < radius).all())

    # It is the network of the trial's last Tune checkpoint, itself in the bucket.
    trial_id = _tags(service_stack, best_run)["dmlsweep.trial_id"]
    (state_key,) = [
        k for k in _tune_trial_dirs(service_stack, stack_sweep)[trial_id] if k.endswith("/state.pt")
    ]
    state = torch.load(io.BytesIO(service_stack.read_object(state_key)), weights_only=False)
    logged = model.state_dict()
    assert logged.keys() == state["model"].keys()
    assert all(torch.equal(logged[k], state["model"][k]) for k in logged)


def test_tune_state_and_checkpoints_are_in_the_bucket(
    service_stack: ServiceStack, stack_sweep: StackSweep
) -> None:
    prefix = f"ray/{stack_sweep.name}/"
    top = {
        key[len(prefix) :]
        for key in service_stack.bucket_keys(prefix)
        if "/" not in key[len(prefix) :]
    }
    assert "tuner.pkl" in top
    assert any(name.startswith("experiment_state") and name.endswith(".json") for name in top)

    _, children = _sweep_runs(service_stack, stack_sweep)
    runs = {_tags(service_stack, c[0])["dmlsweep.trial_id"]: c for c in children}
    trials = _tune_trial_dirs(service_stack, stack_sweep)
    assert trials.keys() == runs.keys()  # one Tune directory per MLflow child run
    for trial_id, keys in trials.items():
        run_id, _, status, _ = runs[trial_id]
        files = {key.rsplit("/", 1)[1] for key in keys}
        assert {"result.json", "params.json"} <= files
        # One checkpoint kept (num_to_keep=1): the last epoch's, 0-based.
        checkpoints = {key.split("/")[-2] for key in keys if key.endswith("/state.pt")}
        epochs = len(
            service_stack.query(
                "mlflow",
                "SELECT step FROM metrics WHERE run_uuid = %s AND key = 'val/map_at_r'",
                run_id,
            )
        )
        assert checkpoints == {f"checkpoint_{epochs - 1:06d}"}, (trial_id, status, keys)
        # Tune's results in the bucket agree with MLflow's metrics.
        (result_key,) = [key for key in keys if key.endswith("/result.json")]
        results = [json.loads(line) for line in service_stack.read_object(result_key).splitlines()]
        last = service_stack.query(
            "mlflow",
            "SELECT value FROM metrics WHERE run_uuid = %s AND key = 'val/map_at_r' "
            "ORDER BY step DESC LIMIT 1",
            run_id,
        )
        assert len(results) == epochs
        assert results[-1]["val/map_at_r"] == pytest.approx(last[0][0], abs=1e-12)
        params = json.loads(service_stack.read_object(f"{keys[0].rsplit('/', 1)[0]}/params.json"))
        assert str(params["curvature"]) == _params(service_stack, run_id)["curvature"]
    # Nothing of Tune's stayed on the driver's disk.
    assert not (stack_sweep.workdir / "dmlsweep-runs" / "ray").exists()


def test_optuna_study_in_postgres_has_every_trial(
    service_stack: ServiceStack, stack_sweep: StackSweep
) -> None:
    import optuna

    rows = service_stack.query(
        "optuna",
        "SELECT t.state FROM trials t JOIN studies s ON s.study_id = t.study_id "
        "WHERE s.study_name = %s",
        stack_sweep.name,
    )
    assert len(rows) == stack_sweep.num_samples
    study = optuna.load_study(study_name=stack_sweep.name, storage=service_stack.optuna_storage)
    assert len(study.trials) == stack_sweep.num_samples
    assert sorted(state for (state,) in rows) == sorted(t.state.name for t in study.trials)
    parent, children = _sweep_runs(service_stack, stack_sweep)
    # Same outcomes and same sampled values in Optuna and in MLflow.
    states = sorted(STATUS_OF_STATE[t.state.name] for t in study.trials)
    assert states == sorted(c[2] for c in children)
    for name in ("curvature", "tau"):
        assert sorted(str(t.params[name]) for t in study.trials) == sorted(
            _params(service_stack, c[0])[name] for c in children
        )
    # Optuna's best trial is the one the sweep reported best.
    best_run = _tags(service_stack, parent[0])["dmlsweep.best_run_id"]
    best_params = _params(service_stack, best_run)
    assert str(study.best_trial.params["tau"]) == best_params["tau"]
    ((best_metric,),) = service_stack.query(
        "mlflow",
        "SELECT value FROM latest_metrics WHERE run_uuid = %s AND key = 'best/val/map_at_r'",
        parent[0],
    )
    assert study.best_value == pytest.approx(best_metric, abs=1e-12)
