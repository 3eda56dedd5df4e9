"""Run a sweep: a Ray Tune ``Tuner`` searched by Optuna, scheduled by ASHA, tracked in MLflow.

Example::

    from dmlsweep.runner import SweepOptions, run_sweep
    outcome = run_sweep(SweepOptions(space="baseline", num_samples=8))
    print(outcome.best_config)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from dmlsweep.databases import open_optuna_storage, prepare_sqlite_tracking
from dmlsweep.errors import DmlsweepError, ResourceError, SpaceError
from dmlsweep.reproductions import Summary
from dmlsweep.secrets import mask
from dmlsweep.spaces import SearchSpace, load_space
from dmlsweep.strategies import (
    build_sampler,
    build_scheduler,
    resolve_strategy,
    strategy_params,
    tune_domains,
)

if TYPE_CHECKING:
    import optuna
    from ray.tune.experiment import Trial

    from dmlsweep.optuna_storage import SoleWriterStorage

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
    searcher: str | None = None  # None: the space file's, else tpe (dmlsweep.strategies)
    scheduler: str | None = None  # None: the space file's, else asha
    grace_period: int | None = None  # None: the space file's, else 1
    reduction_factor: int | None = None  # None: the space file's, else 2
    max_retries: int = 2  # a trial whose worker died restarts from its checkpoint this often
    models_top_k: int = 3
    runs_dir: Path = Path("dmlsweep-runs")
    extra_settings: dict[str, Any] = field(default_factory=dict)  # overrides of space settings
    resume: bool = False  # continue the sweep ``name`` whose driver died
    reproductions: int = 0  # > 0: re-train the top configurations this often, test them
    reproduce_top: int = 1  # how many of the best configurations to reproduce


# What a resumed sweep takes from the sweep it continues (never a URL: those may hold secrets
# and come from the environment again).
RESUMED_OPTIONS = (
    "space",
    "num_samples",
    "max_epochs",
    "cpus_per_trial",
    "gpus_per_trial",
    "max_concurrent",
    "seed",
    "searcher",
    "scheduler",
    "grace_period",
    "reduction_factor",
    "max_retries",
    "models_top_k",
    "extra_settings",
    "reproductions",
    "reproduce_top",
)


@dataclass(frozen=True)
class SweepOutcome:
    name: str
    space: SearchSpace
    tracking_uri: str
    experiment: str
    parent_run_id: str
    study_name: str | None  # None: population-based training has no Optuna study
    storage: str | None
    trials: list[dict[str, Any]]  # one row per trial: id, state, metric, run_id, params
    best_config: dict[str, Any] | None
    # configuration rank (1 = best) -> test metric -> mean / std / 95% CI over fresh seeds
    reproductions: dict[int, dict[str, Summary]] = field(default_factory=dict)


def resolve_space(options: SweepOptions) -> tuple[SearchSpace, int]:
    """Load and validate the space and the epoch budget; raises before anything starts.
    The budget is ``--max-epochs``, else ``--set max_epochs=``, else the space's setting."""
    from trainables.registry import OBJECTIVES

    space = load_space(options.space, known_objectives=list(OBJECTIVES))
    max_epochs: Any
    if options.max_epochs is not None:
        max_epochs, source = options.max_epochs, "--max-epochs"
    elif "max_epochs" in options.extra_settings:
        max_epochs, source = options.extra_settings["max_epochs"], "--set max_epochs"
    else:
        max_epochs, source = space.settings.get("max_epochs"), f"{space.path}: settings.max_epochs"
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
        raise SpaceError(f"{source}: needs a positive integer number of epochs, got {max_epochs!r}")
    return space, max_epochs


def prepare_settings(space: SearchSpace, options: SweepOptions) -> dict[str, Any]:
    """The fixed settings of every trial: the space's, overridden by ``--set``, with
    ``${VAR}`` values taken from the environment, checked against the objective's config
    (names and types) and by the objective (e.g. that a benchmark's data directory exists)
    before anything starts."""
    from trainables.registry import load_objective

    searched = {param.name for param in space.parameters}
    both = sorted(searched & set(options.extra_settings))
    if both:
        raise DmlsweepError(
            f"--set {', '.join(both)}: searched by {space.path}, so it cannot also be fixed "
            "(both searched and fixed); remove it from the space's parameters to fix it"
        )
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
    _check_config_names(
        space,
        objective,
        settings=settings,
        overridden=set(options.extra_settings),
        searched=searched,
    )
    if hasattr(objective, "validate_settings"):
        try:
            objective.validate_settings(settings)
        except (OSError, ValueError) as exc:
            raise DmlsweepError(f"{space.path}: {exc}") from exc
    return settings


def _check_config_names(
    space: SearchSpace,
    objective: ModuleType,
    *,
    settings: dict[str, Any],
    overridden: set[str],
    searched: set[str],
) -> None:
    """A misspelt setting or parameter would otherwise fail every trial (or be ignored):
    refuse it here, naming where it came from and what the objective accepts."""
    import dataclasses

    from trainables.config import PLATFORM_KEYS, ConfigError, from_flat

    allowed = {f.name for f in dataclasses.fields(objective.CONFIG)}
    for names, where in (
        (overridden, "--set"),
        (set(space.settings), f"{space.path}: settings"),
        (searched, f"{space.path}: parameters"),
    ):
        unknown = sorted(names - allowed - PLATFORM_KEYS)
        if unknown:
            raise DmlsweepError(
                f"{where}: {', '.join(unknown)} not known to objective {space.objective!r}; "
                f"it accepts: {', '.join(sorted(allowed))}"
            )
    try:
        from_flat(objective.CONFIG, settings)
    except ConfigError as exc:
        raise DmlsweepError(f"{space.path} / --set: {exc}") from exc


def trial_config(
    trial: optuna.Trial, *, space: SearchSpace, constants: dict[str, Any]
) -> dict[str, Any]:
    """Define-by-run space for OptunaSearch: sample the parameters, return the constants."""
    return {**space.sample(trial), **constants}


def run_sweep(options: SweepOptions) -> SweepOutcome:
    """Run a new sweep, or continue one (``options.resume``); every check that can fail on
    bad input runs before anything is written."""
    runs_dir = options.runs_dir.resolve()
    tracking_uri = options.tracking_uri or f"sqlite:///{runs_dir / 'mlflow.db'}"
    if options.resume:
        options, parent_run_id = _resumed_options(options, tracking_uri=tracking_uri)
    space, max_epochs = resolve_space(options)
    strategy = resolve_strategy(
        space,
        searcher=options.searcher,
        scheduler=options.scheduler,
        grace_period=options.grace_period,
        reduction_factor=options.reduction_factor,
    )
    if options.num_samples < 1:
        raise DmlsweepError(f"--num-samples must be >= 1, got {options.num_samples}")
    if options.max_retries < 0:
        raise DmlsweepError(f"--max-retries must be >= 0, got {options.max_retries}")
    settings = prepare_settings(space, options)
    folds = int(settings.get("folds", 1))
    if folds > 1 and not strategy.uses_optuna:
        raise DmlsweepError(
            "cross-validation (settings.folds > 1) cannot run under population-"
            "based training: a trial's folds are not one training run"
        )
    # What schedulers count: epochs, or with cross-validation the folds done (one report each).
    budget = folds if folds > 1 else max_epochs
    if options.reproductions and options.reproductions < 2:
        raise DmlsweepError(
            f"--reproductions needs at least 2 runs (for a confidence interval), got "
            f"{options.reproductions}"
        )
    name = options.name or f"{space.name}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    storage_url = options.storage or f"sqlite:///{runs_dir / 'optuna.db'}"
    tune_storage = _tune_storage(runs_dir)
    experiment_path = _experiment_path(tune_storage, name)
    if options.resume and not _can_restore(experiment_path, tune_storage):
        raise DmlsweepError(
            f"sweep {name!r} has no Ray Tune experiment state at {experiment_path} "
            "(was it started with another --runs-dir or bucket?); it cannot be resumed"
        )
    if options.address:
        _probe_ray_address(options.address)
    runs_dir.mkdir(parents=True, exist_ok=True)
    # A local store keeps its artifacts beside it; a server decides (and proxies) its own.
    artifact_location = None if options.tracking_uri else (runs_dir / "mlartifacts").as_uri()
    prepare_sqlite_tracking(tracking_uri)
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The driver mostly waits while Ray starts: open the stores meanwhile.
        opened = pool.submit(
            _open_stores, tracking_uri, storage_url if strategy.uses_optuna else None
        )
        # Trials write checkpoints to the bucket with the S3 keys of this environment: Tune's
        # filesystem carries none.
        _init_ray(options.address, env=_s3_keys() if "storage_filesystem" in tune_storage else {})
        _check_resources(options)
        storage = opened.result()

    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from dmlsweep.optuna_search import PruneAwareOptunaSearch
    from dmlsweep.progress import ConsoleProgress
    from dmlsweep.tracking import MlflowTracking, SweepRecord
    from dmlsweep.tune_records import tune_environment, tune_loggers
    from trainables.registry import load_objective

    objective = load_objective(space.objective)
    constants = {
        **settings,
        "objective": space.objective,
        "max_epochs": max_epochs,
        "seed": options.seed,
    }
    experiment = f"dmlsweep-{space.name}"
    record = SweepRecord(
        name=name,
        experiment=experiment,
        objective=space.objective,
        metric=space.metric,
        mode=space.mode,
        max_epochs=budget,
        space_file=space.path,
        params={
            **{f"setting/{k}": v for k, v in settings.items()},
            "sweep/objective": space.objective,
            "sweep/metric": f"{space.metric} ({space.mode})",
            "sweep/num_samples": options.num_samples,
            "sweep/max_epochs": max_epochs,
            "sweep/folds": folds,
            "sweep/seed": options.seed,
            **strategy_params(strategy, seed=options.seed),
            "sweep/max_retries": options.max_retries,
            "sweep/cpus_per_trial": options.cpus_per_trial,
            "sweep/gpus_per_trial": options.gpus_per_trial,
            **(
                {"optuna/study_name": name, "optuna/storage": mask(storage_url)}
                if strategy.uses_optuna
                else {}
            ),
        },
        tags={
            "dmlsweep.space": space.name,
            "dmlsweep.objective": space.objective,
            "git.commit": _git_commit(),
            "dmlsweep.options": json.dumps(_resumable(options), default=str),
            **({"optuna.study_name": name} if strategy.uses_optuna else {}),
        },
    )
    tracking = MlflowTracking(
        tracking_uri=tracking_uri,
        record=record,
        models_top_k=options.models_top_k,
        artifact_location=artifact_location,
        log_model=partial(_log_trial_model, objective_name=space.objective),
        parent_run_id=parent_run_id if options.resume else None,
    )
    try:
        parent_run_id = tracking.start_parent()
    except DmlsweepError:
        raise
    except Exception as exc:
        raise DmlsweepError(
            f"cannot reach the MLflow tracking store {mask(tracking_uri)}: {exc}"
        ) from exc
    print(
        f"sweep {name}{' (resumed)' if options.resume else ''}: {options.num_samples} trials "
        f"of {space.objective}, metric {space.metric} ({space.mode}), up to {max_epochs} epochs "
        f"each, {strategy.describe()}",
        flush=True,
    )
    print(
        f"  tracking: {mask(tracking_uri)}  experiment {experiment}  parent run {parent_run_id}",
        flush=True,
    )

    resources = {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial}
    trainable = tune.with_resources(make_trainable(objective, folds), resources)
    if options.resume:
        tuner = tune.Tuner.restore(
            experiment_path,
            trainable,
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=False,
            storage_filesystem=tune_storage.get("storage_filesystem"),
        )
    else:
        search_alg: Any = None
        param_space = None
        if strategy.uses_optuna:
            search_alg = PruneAwareOptunaSearch(
                space=partial(trial_config, space=space, constants=constants),
                metric=space.metric,
                mode=space.mode,
                points_to_evaluate=[space.defaults()] if space.defaults() else None,
                sampler=build_sampler(strategy, seed=options.seed),
                study_name=name,
                storage=storage,
                max_epochs=budget,
            )
            if options.max_concurrent:
                search_alg = ConcurrencyLimiter(search_alg, max_concurrent=options.max_concurrent)
        else:
            param_space = {**constants, **tune_domains(space)}
        progress = ConsoleProgress(
            metric=space.metric,
            mode=space.mode,
            max_epochs=budget,
            num_samples=options.num_samples,
        )
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                metric=space.metric,
                mode=space.mode,
                search_alg=search_alg,
                scheduler=build_scheduler(strategy, space=space, max_epochs=budget),
                num_samples=options.num_samples,
                max_concurrent_trials=None if strategy.uses_optuna else options.max_concurrent,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=name,
                **tune_storage,
                verbose=0,
                callbacks=[tracking, progress, *tune_loggers()],
                # PBT restarts a trial from another's checkpoint, which must outlive the
                # owner's next few epochs; otherwise only the latest one is ever read.
                checkpoint_config=tune.CheckpointConfig(
                    num_to_keep=1 if strategy.uses_optuna else 4
                ),
                failure_config=tune.FailureConfig(max_failures=options.max_retries),
            ),
        )
    # Trials spend seconds before their first result: meanwhile, import what the sweep's end
    # needs (model logging, the analysis plots) instead of after the last trial.
    threading.Thread(target=_import_end_of_sweep, name="dmlsweep-imports", daemon=True).start()
    with tune_environment():  # a resumed sweep has its loggers pickled
        fitted = tuner.fit()
    results: list[Any] = [fitted[i] for i in range(len(fitted))]  # ResultGrid: not typed iterable
    if storage is not None:
        _fail_lost_optuna_trials(storage, study_name=name)
        _log_analysis(storage, study_name=name, space=space, tracking=tracking)

    rows = []
    for trial_result in results:
        trial_id = trial_result.metrics.get("trial_id") if trial_result.metrics else None
        rows.append(
            {
                "trial": trial_id,
                "state": _row_state(trial_result, budget),
                space.metric: (trial_result.metrics or {}).get(space.metric),
                "epochs": (trial_result.metrics or {}).get("training_iteration"),
                "run_id": tracking.run_of(trial_id or ""),
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
    summaries: dict[int, dict[str, Summary]] = {}
    if options.reproductions and complete:
        summaries = _reproduce(
            [_result_of(results, row["trial"]).config for row in complete[: options.reproduce_top]],
            options=options,
            name=name,
            tune_storage=tune_storage,
            tracking=tracking,
        )
    return SweepOutcome(
        name=name,
        space=space,
        tracking_uri=tracking_uri,
        experiment=experiment,
        parent_run_id=parent_run_id,
        study_name=name if strategy.uses_optuna else None,
        storage=storage_url if strategy.uses_optuna else None,
        trials=rows,
        best_config=best,
        reproductions=summaries,
    )


def _import_end_of_sweep() -> None:
    import mlflow.pytorch  # noqa: F401  # model logging

    import trainables.dml.backbones  # noqa: F401  # the networks the models are rebuilt with
    from dmlsweep.analysis import plotting_modules

    plotting_modules()


def _open_stores(tracking_uri: str, storage_url: str | None) -> SoleWriterStorage | None:
    """Open the Optuna storage (``None``: no study) and MLflow's store: on a new runs directory
    both create their schema, seconds of work that needs no Ray."""
    from mlflow.tracking import MlflowClient

    # MLflow keeps the store for the tracking to reuse; a failure is reported by its start.
    with contextlib.suppress(Exception):
        MlflowClient(tracking_uri)
    return open_optuna_storage(storage_url) if storage_url else None


def make_trainable(objective: ModuleType, folds: int) -> Any:
    """The function Tune runs: the objective's ``train`` (one report per epoch), or with
    ``folds > 1`` its class-disjoint cross-validation (one report per fold)."""
    from trainables.cross_validation import make_trainable as cross_validated

    return cross_validated(objective, folds)


def _result_of(results: Any, trial_id: str) -> Any:
    return next(r for r in results if r.metrics.get("trial_id") == trial_id)


def _log_analysis(storage: Any, *, study_name: str, space: SearchSpace, tracking: Any) -> None:
    """Importance and plots on the parent run; a failure here costs a warning, not the sweep."""
    import optuna

    from dmlsweep.analysis import dashboard_command, log_study_analysis

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
        importance = log_study_analysis(
            study=study,
            client=tracking.client,
            run_id=tracking.parent_run_id,
            params=[p.name for p in space.parameters],
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


def _reproduce(
    configs: list[dict[str, Any]],
    *,
    options: SweepOptions,
    name: str,
    tune_storage: dict[str, Any],
    tracking: Any,
) -> dict[int, dict[str, Summary]]:
    from dmlsweep.reproductions import log_reproductions, reproduction_table, run_reproductions

    # A reproduction trains on all the training classes: no cross-validation folds.
    configs = [{**config, "folds": 1} if "folds" in config else dict(config) for config in configs]
    print(
        f"reproducing the best {len(configs)} configuration(s) {options.reproductions} times "
        "each with fresh seeds, evaluated on the test classes",
        flush=True,
    )
    reproductions = run_reproductions(
        configs=configs,
        n=options.reproductions,
        search_seed=options.seed,
        name=name,
        resources={"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial},
        tune_storage=tune_storage,
        max_retries=options.max_retries,
    )
    summaries = log_reproductions(
        client=tracking.client,
        experiment_id=tracking.experiment_id,
        parent_run_id=tracking.parent_run_id,
        sweep_name=name,
        reproductions=reproductions,
        configs=configs,
    )
    print(reproduction_table(summaries), flush=True)
    return summaries


def _resumable(options: SweepOptions) -> dict[str, Any]:
    return {key: getattr(options, key) for key in RESUMED_OPTIONS}


def _resumed_options(options: SweepOptions, *, tracking_uri: str) -> tuple[SweepOptions, str]:
    """The options of the sweep ``options.name`` as it was started, with this invocation's
    URLs and directories; and its MLflow parent run."""
    from dmlsweep.tracking import find_sweep_run

    if not options.name:
        raise DmlsweepError("--resume needs the name of the sweep to continue")
    local_store = Path(tracking_uri.removeprefix("sqlite:///"))
    if tracking_uri.startswith("sqlite:///") and not local_store.exists():
        # Opening it would create an empty store in a mistyped --runs-dir.
        raise DmlsweepError(
            f"no sweep named {options.name!r} to resume: there is no MLflow store at "
            f"{local_store} (is --runs-dir the one the sweep was started with?)"
        )
    run = find_sweep_run(tracking_uri, options.name)
    stored = json.loads(run.data.tags.get("dmlsweep.options", "{}"))
    if not stored:
        raise DmlsweepError(
            f"sweep {options.name!r} (run {run.info.run_id}) records no options; it was not "
            "started by this version of dmlsweep and cannot be resumed"
        )
    stored["extra_settings"] = stored.get("extra_settings") or {}
    return replace(options, **stored), run.info.run_id


def _experiment_path(tune_storage: dict[str, Any], name: str) -> str:
    return f"{tune_storage['storage_path'].rstrip('/')}/{name}"


def _can_restore(path: str, tune_storage: dict[str, Any]) -> bool:
    from ray import tune

    return bool(
        tune.Tuner.can_restore(path, storage_filesystem=tune_storage.get("storage_filesystem"))
    )


def _fail_lost_optuna_trials(storage: optuna.storages.BaseStorage, *, study_name: str) -> None:
    """No Optuna trial outlives its sweep as RUNNING: one asked for just before a driver died
    (and never known to the resumed Tune state) is told FAIL, marked as lost."""
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name=study_name, storage=storage)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_user_attr(trial._trial_id, "dmlsweep.lost", "the sweep's driver died")
        storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)


def _s3_keys() -> dict[str, str]:
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    return {name: os.environ[name] for name in names if os.environ.get(name)}


def _tune_storage(runs_dir: Path) -> dict[str, Any]:
    """Where Tune keeps results and checkpoints: the S3 bucket of ``DMLSWEEP_S3_BUCKET`` when
    set (so every node of a cluster, and a resumed driver, sees them), else under runs_dir."""
    if not os.environ.get("DMLSWEEP_S3_BUCKET", "").strip():
        return {"storage_path": str(runs_dir / "ray")}
    from dmlsweep.remote_storage import RemoteStorage

    remote = RemoteStorage.from_env()
    remote.check_access()
    return {
        "storage_path": remote.storage_path("ray"),
        # Keys come from each process's environment (see _init_ray), never from the pickle.
        "storage_filesystem": remote.pyarrow_filesystem(with_keys=False),
    }


def _row_state(trial_result: Any, max_epochs: int) -> str:
    from dmlsweep.optuna_search import final_state

    return final_state(
        trial_result.metrics, error=trial_result.error is not None, max_epochs=max_epochs
    ).name


def _init_ray(address: str | None, *, env: dict[str, str]) -> None:
    """Join (or start) Ray; ``env`` is added to every worker's environment."""
    import ray

    if ray.is_initialized():
        return
    # Trials import the objectives; make the checkout importable in workers even when the
    # package is not installed in their environment.
    runtime_env = {
        "env_vars": {
            "PYTHONPATH": os.pathsep.join(
                [str(REPO_ROOT), str(REPO_ROOT / "platform"), os.environ.get("PYTHONPATH", "")]
            ),
            **env,
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


def _probe_ray_address(address: str, *, timeout: float = 5.0) -> None:
    """Refuse an address nobody listens on: ``ray.init`` would retry it for minutes."""
    if address == "auto":
        return  # Ray reads the running cluster's address from its own session files
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise DmlsweepError(
            f"--address must be HOST:PORT, ray://HOST:PORT or auto, got {address!r}"
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise DmlsweepError(f"cannot connect to Ray at {address}: {exc}") from exc


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
