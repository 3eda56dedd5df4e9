"""What a sweep ends with: its trials ranked, the lost ones closed, the study's analysis, the
best models logged, and the reproductions of the best configurations."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmlsweep import schema
from dmlsweep.reproductions import Summary
from dmlsweep.spaces import SearchSpace

if TYPE_CHECKING:
    import optuna
    from ray.tune.experiment import Trial

    from dmlsweep.sweep.plan import SweepPlan


@dataclass(frozen=True)
class SweepOutcome:
    name: str
    space: SearchSpace
    tracking_uri: str
    experiment: str
    parent_run_id: str
    study_name: str | None  # None: population-based training has no Optuna study
    storage: str | None
    trials: list[dict[str, Any]]  # a row per trial: id, state, metric, run_id, error, params
    best_config: dict[str, Any] | None
    # configuration rank (1 = best) -> test metric -> mean / std / 95% CI over fresh seeds
    reproductions: dict[int, dict[str, Summary]] = field(default_factory=dict)
    interrupted: bool = False  # stopped by Ctrl-C / SIGTERM: continue with --resume NAME
    budget_spent: bool = False  # the stop was --time-budget's


def trial_rows(
    plan: SweepPlan, results: list[Any], run_of: Any
) -> tuple[list[dict[str, Any]], list[Any]]:
    """One row per trial, the completed ones first, best first; and their results in the
    same order."""
    from dmlsweep.optuna_search import final_state
    from trainables.objective import NOT_RETRIED_KEY

    space = plan.space
    rows = []
    for result in results:
        metrics = result.metrics or {}
        epochs = metrics.get("training_iteration")
        if NOT_RETRIED_KEY in metrics and epochs:
            epochs -= 1  # the failure's own report is not an epoch
        trial_id = metrics.get("trial_id") or (result.config or {}).get("trial_id")
        rows.append(
            {
                "trial": trial_id,
                "state": final_state(
                    metrics, error=result.error is not None, max_epochs=plan.budget
                ).name,
                space.metric: metrics.get(space.metric),
                "epochs": epochs,
                "run_id": run_of(trial_id) if trial_id else None,
                "error": metrics.get(NOT_RETRIED_KEY) or _first_line(result.error),
                **{p.name: (result.config or {}).get(p.name) for p in space.parameters},
            }
        )
    sign = -1.0 if space.mode == "max" else 1.0

    def rank(i: int) -> tuple[bool, float]:
        value = rows[i][space.metric]
        complete = rows[i]["state"] == "COMPLETE" and value is not None
        return (not complete, sign * float(value) if complete else 0.0)  # type: ignore[arg-type]

    order = sorted(range(len(rows)), key=rank)
    return [rows[i] for i in order], [results[i] for i in order]


def _first_line(error: BaseException | None) -> str | None:
    if error is None:
        return None
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(error).__name__


def best_config(plan: SweepPlan, rows: list[dict[str, Any]], results: list[Any]) -> Any:
    if not rows or rows[0]["state"] != "COMPLETE" or rows[0][plan.space.metric] is None:
        return None
    config = results[0].config
    return {p.name: config[p.name] for p in plan.space.parameters if p.name in config}


def fail_lost_optuna_trials(storage: optuna.storages.BaseStorage, *, study_name: str) -> None:
    """No Optuna trial outlives its sweep as RUNNING: one asked for just before a driver died
    (and never known to the resumed Tune state) is told FAIL, marked as lost."""
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name=study_name, storage=storage)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_user_attr(trial._trial_id, schema.LOST, "the sweep's driver died")
        storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)


def log_analysis(storage: Any, *, plan: SweepPlan, client: Any, parent_run_id: str) -> None:
    """Importance and plots on the parent run; a failure here costs a warning, not the sweep."""
    import optuna

    from dmlsweep.analysis import dashboard_command, log_study_analysis

    try:
        study = optuna.load_study(study_name=plan.name, storage=storage)
        importance = log_study_analysis(
            study=study,
            client=client,
            run_id=parent_run_id,
            params=[p.name for p in plan.space.parameters],
        )
    except Exception as exc:
        print(f"dmlsweep: warning: the sweep analysis failed: {exc}", file=sys.stderr)
        return
    if importance:
        ranked = sorted(importance.items(), key=lambda kv: -kv[1])
        print(
            "hyperparameter importance: " + ", ".join(f"{k} {v:.2f}" for k, v in ranked), flush=True
        )
    print(f"  study dashboard: {dashboard_command(storage.url)}", flush=True)


def reproduce(
    configs: list[dict[str, Any]],
    *,
    plan: SweepPlan,
    tune_storage: dict[str, Any],
    tracking: Any,
) -> dict[int, dict[str, Summary]]:
    from dmlsweep.reproductions import log_reproductions, reproduction_table, run_reproductions

    # A reproduction trains on all the training classes: no cross-validation folds.
    configs = [{**config, "folds": 1} if "folds" in config else dict(config) for config in configs]
    print(
        f"reproducing the best {len(configs)} configuration(s) {plan.reproductions} times "
        "each with fresh seeds, evaluated on the test classes",
        flush=True,
    )
    reproductions = run_reproductions(
        configs=configs,
        n=plan.reproductions,
        search_seed=plan.seed,
        name=plan.name,
        resources={"cpu": plan.cpus_per_trial, "gpu": plan.gpus_per_trial},
        tune_storage=tune_storage,
        max_retries=plan.max_retries,
    )
    summaries = log_reproductions(
        client=tracking.client,
        experiment_id=tracking.experiment_id,
        parent_run_id=tracking.parent_run_id,
        sweep_name=plan.name,
        reproductions=reproductions,
        configs=configs,
    )
    print(reproduction_table(summaries), flush=True)
    return summaries


def log_trial_model(trial: Trial, run_id: str, *, objective_name: str) -> None:
    """Rebuild the trial's network, load its last checkpoint, log it as an MLflow PyTorch model."""
    if trial.checkpoint is None:
        return
    import mlflow
    import mlflow.pytorch
    import torch

    from trainables.registry import load_objective
    from trainables.reporting import load_state

    model = load_objective(objective_name).build_model(dict(trial.config))
    with trial.checkpoint.as_directory() as directory:
        state = load_state(Path(directory))
    if "model" not in state:
        return  # e.g. a cross-validated trial: its folds' networks are not the model
    model.load_state_dict(state["model"])
    model.eval()
    # MLflow warns on every pickled model; the pickle is ours, and the format is deliberate.
    logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
    with mlflow.start_run(run_id=run_id, nested=True):
        # Explicit requirements: MLflow's inference of them imports the world (seconds).
        mlflow.pytorch.log_model(
            model,
            name="model",
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            # A whole pickled module: no input example needed (the default 'pt2' traces).
            serialization_format="pickle",
        )
        mlflow.set_tag(schema.MODEL_LOGGED, "true")


__all__ = ["SweepOutcome", "best_config", "log_trial_model", "trial_rows"]
