"""Run a sweep: a Ray Tune ``Tuner`` searched by Optuna, scheduled by ASHA, tracked in MLflow.

Example::

    from dmlsweep.runner import SweepOptions, run_sweep
    outcome = run_sweep(SweepOptions(space="baseline", num_samples=8))
    print(outcome.best_config)
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dmlsweep.databases import open_optuna_storage, prepare_sqlite_tracking
from dmlsweep.errors import DmlsweepError, ResourceError, SpaceError
from dmlsweep.secrets import mask
from dmlsweep.spaces import SearchSpace, load_space

if TYPE_CHECKING:
    import optuna
    from ray.tune.experiment import Trial

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SweepOptions:
    """Everything a sweep needs; the CLI builds it from flags, tests build it directly."""

    space: str
    num_samples: int = 20
    max_epochs: int | None = None  # None: the space's ``settings.max_epochs``
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None  # None: as many as the resources allow
    address: str | None = None  # None: start a local Ray
    tracking_uri: str | None = None  # None: SQLite under runs_dir
    storage: str | None = None  # Optuna storage URL; None: SQLite under runs_dir
    name: str | None = None  # None: <space>-<timestamp>
    seed: int = 0
    scheduler: Literal["asha", "fifo"] = "asha"
    grace_period: int = 1
    reduction_factor: int = 2
    models_top_k: int = 3
    runs_dir: Path = Path("dmlsweep-runs")
    extra_settings: dict[str, Any] = field(default_factory=dict)  # overrides of space settings


@dataclass(frozen=True)
class SweepOutcome:
    name: str
    space: SearchSpace
    tracking_uri: str
    experiment: str
    parent_run_id: str
    study_name: str
    storage: str
    trials: list[dict[str, Any]]  # one row per trial: id, state, metric, run_id, params
    best_config: dict[str, Any] | None


def resolve_space(options: SweepOptions) -> tuple[SearchSpace, int]:
    """Load and validate the space and the epoch budget; raises before anything starts."""
    from trainables.registry import OBJECTIVES

    space = load_space(options.space, known_objectives=list(OBJECTIVES))
    max_epochs = options.max_epochs or space.settings.get("max_epochs")
    if not isinstance(max_epochs, int) or max_epochs < 1:
        raise SpaceError(
            f"{space.path}: settings.max_epochs: needs a positive integer (or --max-epochs), "
            f"got {max_epochs!r}"
        )
    return space, max_epochs


def prepare_settings(space: SearchSpace, options: SweepOptions) -> dict[str, Any]:
    """The fixed settings of every trial: the space's, overridden by ``--set``, with
    ``${VAR}`` values taken from the environment, checked by the objective (e.g. that a
    benchmark's data directory exists) before anything starts."""
    from trainables.registry import load_objective

    settings = {**space.settings, **options.extra_settings}
    for key, value in settings.items():
        if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
            variable = value[2:-1]
            if not os.environ.get(variable):
                raise DmlsweepError(
                    f"{space.path}: settings.{key} comes from the environment variable "
                    f"{variable}, which is not set: export {variable}=... or pass "
                    f"--set {key}=..."
                )
            settings[key] = os.environ[variable]
    objective = load_objective(space.objective)
    if hasattr(objective, "validate_settings"):
        try:
            objective.validate_settings(settings)
        except (OSError, ValueError) as exc:
            raise DmlsweepError(f"{space.path}: {exc}") from exc
    return settings


def trial_config(
    trial: optuna.Trial, *, space: SearchSpace, constants: dict[str, Any]
) -> dict[str, Any]:
    """Define-by-run space for OptunaSearch: sample the parameters, return the constants."""
    return {**space.sample(trial), **constants}


def run_sweep(options: SweepOptions) -> SweepOutcome:
    space, max_epochs = resolve_space(options)
    if options.num_samples < 1:
        raise DmlsweepError(f"--num-samples must be >= 1, got {options.num_samples}")
    runs_dir = options.runs_dir.resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    name = options.name or f"{space.name}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    tracking_uri = options.tracking_uri or f"sqlite:///{runs_dir / 'mlflow.db'}"
    # A local store keeps its artifacts beside it; a server decides (and proxies) its own.
    artifact_location = None if options.tracking_uri else (runs_dir / "mlartifacts").as_uri()
    prepare_sqlite_tracking(tracking_uri)
    storage_url = options.storage or f"sqlite:///{runs_dir / 'optuna.db'}"

    settings = prepare_settings(space, options)
    _init_ray(options.address)
    _check_resources(options)

    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter

    from dmlsweep.optuna_search import PruneAwareOptunaSearch
    from dmlsweep.progress import ConsoleProgress
    from dmlsweep.tracking import MlflowTracking, SweepRecord
    from trainables.registry import load_objective

    objective = load_objective(space.objective)
    constants = {
        **settings,
        "objective": space.objective,
        "max_epochs": max_epochs,
        "seed": options.seed,
    }
    storage = open_optuna_storage(storage_url)

    searcher = PruneAwareOptunaSearch(
        space=partial(trial_config, space=space, constants=constants),
        metric=space.metric,
        mode=space.mode,
        points_to_evaluate=[space.defaults()] if space.defaults() else None,
        sampler=optuna.samplers.TPESampler(seed=options.seed),
        study_name=name,
        storage=storage,
        max_epochs=max_epochs,
    )
    search_alg = (
        ConcurrencyLimiter(searcher, max_concurrent=options.max_concurrent)
        if options.max_concurrent
        else searcher
    )
    scheduler = (
        ASHAScheduler(
            time_attr="training_iteration",
            max_t=max_epochs,
            grace_period=min(options.grace_period, max_epochs),
            reduction_factor=options.reduction_factor,
        )
        if options.scheduler == "asha"
        else FIFOScheduler()
    )

    experiment = f"dmlsweep-{space.name}"
    record = SweepRecord(
        name=name,
        experiment=experiment,
        objective=space.objective,
        metric=space.metric,
        mode=space.mode,
        max_epochs=max_epochs,
        space_file=space.path,
        params={
            **{f"setting/{k}": v for k, v in settings.items()},
            "sweep/objective": space.objective,
            "sweep/metric": f"{space.metric} ({space.mode})",
            "sweep/num_samples": options.num_samples,
            "sweep/max_epochs": max_epochs,
            "sweep/seed": options.seed,
            "sweep/searcher": f"optuna TPE (seed {options.seed})",
            "sweep/scheduler": options.scheduler,
            "sweep/grace_period": options.grace_period,
            "sweep/reduction_factor": options.reduction_factor,
            "sweep/cpus_per_trial": options.cpus_per_trial,
            "sweep/gpus_per_trial": options.gpus_per_trial,
            "optuna/study_name": name,
            "optuna/storage": mask(storage_url),
        },
        tags={
            "dmlsweep.space": space.name,
            "dmlsweep.objective": space.objective,
            "git.commit": _git_commit(),
            "optuna.study_name": name,
        },
    )
    tracking = MlflowTracking(
        tracking_uri=tracking_uri,
        record=record,
        models_top_k=options.models_top_k,
        artifact_location=artifact_location,
        log_model=partial(_log_trial_model, objective_name=space.objective),
    )
    try:
        parent_run_id = tracking.start_parent()
    except Exception as exc:
        raise DmlsweepError(
            f"cannot reach the MLflow tracking store {mask(tracking_uri)}: {exc}"
        ) from exc
    print(
        f"sweep {name}: {options.num_samples} trials of {space.objective}, "
        f"metric {space.metric} ({space.mode}), up to {max_epochs} epochs each",
        flush=True,
    )
    print(
        f"  tracking: {mask(tracking_uri)}  experiment {experiment}  parent run {parent_run_id}",
        flush=True,
    )

    progress = ConsoleProgress(
        metric=space.metric, mode=space.mode, max_epochs=max_epochs, num_samples=options.num_samples
    )
    resources = {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial}
    tuner = tune.Tuner(
        tune.with_resources(objective.train, resources),
        tune_config=tune.TuneConfig(
            metric=space.metric,
            mode=space.mode,
            search_alg=search_alg,
            scheduler=scheduler,
            num_samples=options.num_samples,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(runs_dir / "ray"),
            verbose=0,
            callbacks=[tracking, progress],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    results = tuner.fit()

    rows = []
    for trial_result in results:
        trial_id = trial_result.metrics.get("trial_id") if trial_result.metrics else None
        rows.append(
            {
                "trial": trial_id,
                "state": _row_state(trial_result, max_epochs),
                space.metric: (trial_result.metrics or {}).get(space.metric),
                "epochs": (trial_result.metrics or {}).get("training_iteration"),
                "run_id": tracking.trial_runs.get(trial_id or ""),
                **{p.name: trial_result.config.get(p.name) for p in space.parameters},
            }
        )
    complete = [r for r in rows if r["state"] == "COMPLETE" and r[space.metric] is not None]
    complete.sort(key=lambda r: r[space.metric], reverse=space.mode == "max")
    rows = complete + [r for r in rows if r not in complete]
    best = None
    if complete:
        best_result = next(r for r in results if r.metrics.get("trial_id") == complete[0]["trial"])
        best = {
            p.name: best_result.config[p.name]
            for p in space.parameters
            if p.name in best_result.config
        }
    return SweepOutcome(
        name=name,
        space=space,
        tracking_uri=tracking_uri,
        experiment=experiment,
        parent_run_id=parent_run_id,
        study_name=name,
        storage=storage_url,
        trials=rows,
        best_config=best,
    )


def _row_state(trial_result: Any, max_epochs: int) -> str:
    from dmlsweep.optuna_search import final_state

    return final_state(
        trial_result.metrics, error=trial_result.error is not None, max_epochs=max_epochs
    ).name


def _init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    # Trials import the objectives; make the checkout importable in workers even when the
    # package is not installed in their environment.
    runtime_env = {
        "env_vars": {
            "PYTHONPATH": os.pathsep.join(
                [str(REPO_ROOT), str(REPO_ROOT / "platform"), os.environ.get("PYTHONPATH", "")]
            )
        }
    }
    try:
        if address:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, runtime_env=runtime_env, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise DmlsweepError(
            f"cannot connect to Ray at {address or 'a new local instance'}: {exc}"
        ) from exc


def _check_resources(options: SweepOptions) -> None:
    import ray

    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
    if options.cpus_per_trial <= 0:
        raise ResourceError(f"--cpus-per-trial must be > 0, got {options.cpus_per_trial}")
    if options.gpus_per_trial < 0:
        raise ResourceError(f"--gpus-per-trial must be >= 0, got {options.gpus_per_trial}")
    if options.cpus_per_trial > cpus:
        raise ResourceError(
            f"each trial asks for {options.cpus_per_trial} CPUs but the Ray cluster has {cpus:g}"
        )
    if options.gpus_per_trial > gpus:
        raise ResourceError(
            f"each trial asks for {options.gpus_per_trial} GPUs but the Ray cluster has {gpus:g}"
            + (" (no GPU at all: drop --gpus-per-trial)" if gpus == 0 else "")
        )
    if options.gpus_per_trial > 1 and not float(options.gpus_per_trial).is_integer():
        raise ResourceError("fractional GPUs are allowed only below 1 (e.g. 0.25 to pack 4 trials)")


def _log_trial_model(trial: Trial, run_id: str, *, objective_name: str) -> None:
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
    if "model" in state:
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


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


__all__ = ["SweepOptions", "SweepOutcome", "run_sweep", "resolve_space"]
