"""Run a planned sweep: a Ray Tune ``Tuner`` per segment, searched by Optuna, scheduled by
ASHA (or the plan's scheduler), tracked in MLflow.

Example::

    from dmlsweep.sweep import SweepRequest, plan_sweep, run_sweep
    outcome = run_sweep(plan_sweep(SweepRequest(space="baseline", num_samples=8)))
    print(outcome.best_config)
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmlsweep import schema
from dmlsweep.databases import open_optuna_storage, prepare_sqlite_tracking
from dmlsweep.errors import DmlsweepError
from dmlsweep.relocation import artifact_root, rebase_artifacts
from dmlsweep.secrets import redact
from dmlsweep.sweep import cluster, interrupt, locks, outcome
from dmlsweep.sweep.plan import Segment, SweepPlan

if TYPE_CHECKING:
    import optuna

    from dmlsweep.optuna_storage import SoleWriterStorage
    from dmlsweep.tracking import MlflowTracking


def run_sweep(plan: SweepPlan) -> outcome.SweepOutcome:
    """Run (or continue) the planned sweep; a resumed sweep that has nothing left to run is
    read back, and nothing is written."""
    storage = cluster.tune_storage(plan.runs_dir)
    paths = [cluster.experiment_path(storage, s.experiment) for s in plan.segments]
    # Tune's saved state of each segment: finished, unfinished, or never started (None)
    done: list[bool | None] = [None] * len(paths)
    if plan.resume:
        done = [_finished(path, storage) for path in paths]
        if done[0] is None:
            raise DmlsweepError(
                f"sweep {plan.name!r} has no Ray Tune experiment state at {paths[0]} (was it "
                "started with another --runs-dir or bucket?); it cannot be resumed"
            )
        _check_study(plan)
        if all(done):
            return _read_back(plan, storage, paths)
    # Trials write checkpoints to the bucket with the S3 keys of this environment: Tune's
    # filesystem carries none.
    env = cluster.s3_keys() if "storage_filesystem" in storage else {}
    if plan.address:  # a cluster's resources are known once joined: before anything is written
        cluster.probe_ray_address(plan.address)
        cluster.init_ray(plan.address, env=env)
        cluster.check_cluster_resources(plan)
    try:
        plan.runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DmlsweepError(f"--runs-dir {plan.runs_dir} cannot be made: {exc}") from exc
    with locks.sole_driver(plan.runs_dir, plan.name):
        return _run(plan, storage, paths, done, env)


def _run(
    plan: SweepPlan,
    storage: dict[str, Any],
    paths: list[str],
    done: list[bool | None],
    env: dict[str, str],
) -> outcome.SweepOutcome:
    with ThreadPoolExecutor(max_workers=1) as pool:
        # A local Ray takes seconds to start (its resources are this machine's, checked by the
        # plan): open the stores meanwhile.
        opened = pool.submit(_open_stores, plan)
        cluster.init_ray(plan.address, env=env)
        study_storage = opened.result()

    tracking = _tracking(plan)
    with locks.store_setup(plan.runs_dir):  # the experiment, made once
        try:
            parent_run_id = tracking.start_parent()
        except DmlsweepError:
            raise
        except Exception as exc:
            raise DmlsweepError(
                f"cannot reach the MLflow tracking store {redact(plan.tracking_uri)}: {exc}"
            ) from exc
    if plan.resume:  # the plan as it now stands (an extension adds a segment)
        tracking.client.set_tag(parent_run_id, schema.PLAN, plan.to_json())
    print(
        f"sweep {plan.name}{' (resumed)' if plan.resume else ''}: {plan.num_samples} trials of "
        f"{plan.objective}, metric {plan.space.metric} ({plan.space.mode}), up to "
        f"{plan.max_epochs} epochs each, {plan.strategy.describe()}",
        flush=True,
    )
    print(
        f"  tracking: {redact(plan.tracking_uri)}  experiment {plan.experiment}  parent run "
        f"{parent_run_id}",
        flush=True,
    )
    # Trials spend seconds before their first result: meanwhile, import what the sweep's end
    # needs (model logging, the analysis plots) instead of after the last trial.
    threading.Thread(target=_import_end_of_sweep, name="dmlsweep-imports", daemon=True).start()

    from dmlsweep.tune_records import tune_environment

    results: list[Any] = []
    resume_hint = f"continue with: python sweeps/launch.py --resume {plan.name}"
    with interrupt.stop_on_signals(resume_hint, time_budget=plan.time_budget), tune_environment():
        for index, (segment, path) in enumerate(zip(plan.segments, paths, strict=True)):
            state = done[index]
            if state or interrupt.requested():  # finished, or not to be started: read, not run
                if state is not None:
                    results += _results(path, storage)
                continue
            if state is None:
                tuner = _new_tuner(plan, segment, index, storage, study_storage, tracking)
            else:
                tuner = _restored_tuner(plan, path, storage)
            fitted = tuner.fit()
            results += [fitted[i] for i in range(len(fitted))]  # ResultGrid: not iterable-typed
            if interrupt.requested():
                break
    interrupted = interrupt.requested()
    if study_storage is not None and not interrupted:
        outcome.fail_lost_optuna_trials(study_storage, study_name=plan.name)
        outcome.log_analysis(
            study_storage, plan=plan, client=tracking.client, parent_run_id=parent_run_id
        )
    rows, ranked = outcome.trial_rows(plan, results, tracking.run_of)
    summaries = {}
    complete = [r for r in rows if r["state"] == "COMPLETE" and r[plan.space.metric] is not None]
    if plan.reproductions and complete and not interrupted:
        summaries = outcome.reproduce(
            [result.config for result in ranked[: min(plan.reproduce_top, len(complete))]],
            plan=plan,
            tune_storage=storage,
            tracking=tracking,
        )
    if interrupted:
        why = "its time budget is spent" if interrupt.budget_spent() else "it was stopped"
        print(f"dmlsweep: the sweep is not finished, {why}; {resume_hint}", flush=True)
    return outcome.SweepOutcome(
        name=plan.name,
        space=plan.space,
        tracking_uri=plan.tracking_uri,
        experiment=plan.experiment,
        parent_run_id=parent_run_id,
        study_name=plan.name if plan.storage_url else None,
        storage=plan.storage_url,
        trials=rows,
        best_config=outcome.best_config(plan, rows, ranked),
        reproductions=summaries,
        interrupted=interrupted,
        budget_spent=interrupt.budget_spent(),
    )


def _check_study(plan: SweepPlan) -> None:
    """A resumed sweep's Optuna study must be where the plan says: else the resume would start
    an empty study that Tune's saved searcher cannot report to. Nothing is written."""
    if plan.storage_url is None:
        return
    if plan.storage_url.startswith("sqlite:///"):
        path = Path(plan.storage_url.removeprefix("sqlite:///"))
        names: list[str] = []
        if path.is_file():
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                with contextlib.suppress(sqlite3.Error):  # no schema: no study
                    names = [n for (n,) in db.execute("SELECT study_name FROM studies")]
    else:
        import optuna

        names = optuna.get_all_study_names(open_optuna_storage(plan.storage_url))
    if plan.name not in names:
        raise DmlsweepError(
            f"sweep {plan.name!r} cannot be resumed: its Optuna study is missing from "
            f"{redact(plan.storage_url)} (its Ray state and MLflow runs are there); restore the "
            "study database, or pass the one it is in with --storage"
        )


def _tracking(plan: SweepPlan) -> MlflowTracking:
    from dmlsweep.strategies import strategy_params
    from dmlsweep.tracking import MlflowTracking, SweepRecord, find_sweep_run

    plan_json = plan.to_json()
    if len(plan_json) > 8000:  # MLflow's longest tag value
        raise DmlsweepError(
            f"the sweep's plan is {len(plan_json)} characters, more than an MLflow tag holds "
            "(8000): shorten the space file's comments or description"
        )
    record = SweepRecord(
        name=plan.name,
        experiment=plan.experiment,
        objective=plan.objective,
        metric=plan.space.metric,
        mode=plan.space.mode,
        max_epochs=plan.budget,
        space_file=plan.space.path,
        params={
            **{f"{schema.SETTING}{k}": v for k, v in plan.settings.items()},
            f"{schema.SWEEP}objective": plan.objective,
            schema.SWEEP_METRIC: plan.space.metric,
            schema.SWEEP_MODE: plan.space.mode,
            f"{schema.SWEEP}max_epochs": plan.max_epochs,
            f"{schema.SWEEP}folds": plan.folds,
            f"{schema.SWEEP}seed": plan.seed,
            **strategy_params(plan.strategy, seed=plan.seed),
            f"{schema.SWEEP}max_retries": plan.max_retries,
            f"{schema.SWEEP}cpus_per_trial": plan.cpus_per_trial,
            f"{schema.SWEEP}gpus_per_trial": plan.gpus_per_trial,
            **(
                {
                    f"{schema.OPTUNA}study_name": plan.name,
                    f"{schema.OPTUNA}storage": redact(plan.storage_url),
                }
                if plan.storage_url
                else {}
            ),
        },
        tags={
            schema.SPACE: plan.space.name,
            schema.OBJECTIVE: plan.objective,
            schema.GIT_COMMIT: _git_commit(),
            schema.PLAN: plan_json,
            f"{schema.SWEEP}num_samples": str(plan.num_samples),
            **({schema.OPTUNA_STUDY: plan.name} if plan.storage_url else {}),
        },
    )
    parent = find_sweep_run(plan.tracking_uri, plan.name).info.run_id if plan.resume else None
    return MlflowTracking(
        tracking_uri=plan.tracking_uri,
        record=record,
        models_top_k=plan.models_top_k,
        # A local store keeps its artifacts beside it; a server decides (and proxies) its own.
        artifact_location=artifact_root(plan.runs_dir) if plan.local_tracking else None,
        log_model=partial(outcome.log_trial_model, objective_name=plan.objective),
        parent_run_id=parent,
    )


def _trainable(plan: SweepPlan) -> Any:
    from ray import tune

    from trainables.cross_validation import make_trainable
    from trainables.registry import load_objective
    from trainables.reporting import refusing_retries
    from trainables.timeout import with_timeout

    trainable = refusing_retries(
        with_timeout(make_trainable(load_objective(plan.objective), plan.folds), plan.trial_timeout)
    )
    return tune.with_resources(trainable, {"cpu": plan.cpus_per_trial, "gpu": plan.gpus_per_trial})


def _new_tuner(
    plan: SweepPlan,
    segment: Segment,
    index: int,
    storage: dict[str, Any],
    study_storage: SoleWriterStorage | None,
    tracking: MlflowTracking,
) -> Any:
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from dmlsweep.optuna_search import PruneAwareOptunaSearch
    from dmlsweep.progress import ConsoleProgress
    from dmlsweep.strategies import build_sampler, build_scheduler, tune_domains
    from dmlsweep.tune_records import tune_loggers

    search_alg: Any = None
    param_space = None
    space = plan.space
    if plan.strategy.uses_optuna:
        first = index == 0
        search_alg = PruneAwareOptunaSearch(
            space=partial(trial_config, space=space, constants=plan.constants()),
            metric=space.metric,
            mode=space.mode,
            points_to_evaluate=[space.defaults()] if first and space.defaults() else None,
            # an extension's sampler does not repeat the first segment's random draws
            sampler=build_sampler(plan.strategy, seed=plan.seed + 1000 * index),
            study_name=plan.name,
            storage=study_storage,
            max_epochs=plan.budget,
        )
        if plan.max_concurrent:
            search_alg = ConcurrencyLimiter(search_alg, max_concurrent=plan.max_concurrent)
    else:
        param_space = {**plan.constants(), **tune_domains(space)}
    progress = ConsoleProgress(
        metric=space.metric,
        mode=space.mode,
        max_epochs=plan.budget,
        num_samples=segment.num_samples,
    )
    return tune.Tuner(
        _trainable(plan),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=space.metric,
            mode=space.mode,
            search_alg=search_alg,
            scheduler=build_scheduler(plan.strategy, space=space, max_epochs=plan.budget),
            num_samples=segment.num_samples,
            max_concurrent_trials=None if plan.strategy.uses_optuna else plan.max_concurrent,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=segment.experiment,
            **storage,
            verbose=0,
            callbacks=[tracking, progress, *tune_loggers()],
            # PBT restarts a trial from another's checkpoint, which must outlive the
            # owner's next few epochs; otherwise only the latest one is ever read.
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=1 if plan.strategy.uses_optuna else 4
            ),
            failure_config=tune.FailureConfig(max_failures=plan.max_retries),
        ),
    )


def _restored_tuner(plan: SweepPlan, path: str, storage: dict[str, Any]) -> Any:
    from ray import tune

    return tune.Tuner.restore(
        path,
        _trainable(plan),
        resume_unfinished=True,
        resume_errored=False,
        restart_errored=False,
        storage_filesystem=storage.get("storage_filesystem"),
    )


def trial_config(trial: optuna.Trial, *, space: Any, constants: dict[str, Any]) -> dict[str, Any]:
    """Define-by-run space for OptunaSearch: sample the parameters, return the constants."""
    return {**space.sample(trial), **constants}


def _finished(path: str, storage: dict[str, Any]) -> bool | None:
    """Whether Tune's saved state of the experiment at ``path`` has every trial ended (None:
    there is no such experiment)."""
    from ray import tune
    from ray.tune.experiment import Trial

    if not tune.Tuner.can_restore(path, storage_filesystem=storage.get("storage_filesystem")):
        return None
    analysis = tune.ExperimentAnalysis(path, storage_filesystem=storage.get("storage_filesystem"))
    return all(t.status in (Trial.TERMINATED, Trial.ERROR) for t in analysis.trials)


def _results(path: str, storage: dict[str, Any]) -> list[Any]:
    from ray import tune

    analysis = tune.ExperimentAnalysis(path, storage_filesystem=storage.get("storage_filesystem"))
    grid = tune.ResultGrid(analysis)
    return [grid[i] for i in range(len(grid))]


def _read_back(plan: SweepPlan, storage: dict[str, Any], paths: list[str]) -> outcome.SweepOutcome:
    """A finished sweep, resumed: its outcome as recorded; nothing is run or written."""
    from dmlsweep.tracking import find_sweep_run, trial_runs

    parent = find_sweep_run(plan.tracking_uri, plan.name)
    runs = trial_runs(plan.tracking_uri, parent)
    results = [r for path in paths for r in _results(path, storage)]
    rows, ranked = outcome.trial_rows(plan, results, runs.get)
    print(f"sweep {plan.name} is finished: nothing to resume (its records are unchanged)")
    return outcome.SweepOutcome(
        name=plan.name,
        space=plan.space,
        tracking_uri=plan.tracking_uri,
        experiment=plan.experiment,
        parent_run_id=parent.info.run_id,
        study_name=plan.name if plan.storage_url else None,
        storage=plan.storage_url,
        trials=rows,
        best_config=outcome.best_config(plan, rows, ranked),
    )


def _import_end_of_sweep() -> None:
    import mlflow.pytorch  # noqa: F401  # model logging

    import trainables.dml.backbones  # noqa: F401  # the networks the models are rebuilt with
    from dmlsweep.analysis import plotting_modules

    plotting_modules()


def _open_stores(plan: SweepPlan) -> SoleWriterStorage | None:
    """Open the Optuna storage (``None``: no study) and MLflow's store: on a new runs directory
    both create their schema, seconds of work that needs no Ray, one driver at a time."""
    from mlflow.tracking import MlflowClient

    with locks.store_setup(plan.runs_dir):
        prepare_sqlite_tracking(plan.tracking_uri)
        own_store = plan.runs_dir / "mlflow.db"
        if plan.resume and plan.tracking_uri == f"sqlite:///{own_store}" and own_store.is_file():
            moved_from = rebase_artifacts(
                own_store, experiment=plan.experiment, runs_dir=plan.runs_dir
            )
            if moved_from:
                print(
                    f"the runs dir was moved or copied: MLflow's artifact paths rebased from "
                    f"{moved_from} onto {artifact_root(plan.runs_dir)}",
                    flush=True,
                )
        # MLflow keeps the store for the tracking to reuse; a failure is reported by its start.
        with contextlib.suppress(Exception):
            MlflowClient(plan.tracking_uri)
        return open_optuna_storage(plan.storage_url) if plan.storage_url else None


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(cluster.REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(cluster.REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


__all__ = ["run_sweep", "trial_config"]
