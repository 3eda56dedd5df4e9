"""MLflow tracking of a sweep: one parent run per sweep, one nested child run per trial.

Everything is logged from the Ray driver through a Tune callback, so trials need no tracking
credentials and the child-run status is exactly what Ray decided: FINISHED (ran every epoch),
KILLED (stopped early by the scheduler: Optuna's PRUNED), FAILED (raised). MLflow calls run
on one background thread, so logging never blocks Tune's event loop. That thread gathers
for ``BATCH_SECONDS`` from the first event, then logs one batch per trial: each MLflow call
costs milliseconds of the driver's CPU whatever it carries, and a sweep of short trials would
otherwise spend more of it on tracking than on scheduling (a short trial's run takes three
calls: create; params, metrics and tags; end). Metrics reach MLflow about ``BATCH_SECONDS``
after Tune has them, later while the server is slow or down: a call that fails is retried
with backoff for ``retry_seconds``; one that MLflow refuses as invalid (such as a metric name
it does not allow) is not retried, and a refused batch is logged entry by entry so that only
the refused entries are lost (a refused metric name is not sent again). What could not be
tracked is named in a warning at the end (the metrics stay in Ray Tune's results).

Tune saves what is gathered but not yet logged with every snapshot of its experiment
(``get_state``): a resumed sweep logs it first, so a driver that dies loses nothing that Tune
itself kept. It adopts the child runs its trials already have, found by their
``dmlsweep.trial_id`` tag, so no trial is ever tracked twice.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from mlflow.utils.validation import (
    MAX_ENTITIES_PER_BATCH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_TAGS_PER_BATCH,
)
from optuna.trial import TrialState
from ray.tune import Callback
from ray.tune.experiment import Trial

from dmlsweep import schema
from dmlsweep.errors import DmlsweepError
from dmlsweep.names import filter_value
from dmlsweep.optuna_search import final_state
from dmlsweep.secrets import redact
from dmlsweep.sweep import interrupt
from trainables.objective import NOT_RETRIED_KEY

logger = logging.getLogger(__name__)

MLFLOW_STATUS = {
    TrialState.COMPLETE: "FINISHED",
    TrialState.PRUNED: "KILLED",
    TrialState.FAIL: "FAILED",
}
_PARAM_LIMIT = 6000  # MLflow's maximum parameter value length
BATCH_SECONDS = 1.0  # how long the logging thread gathers before it logs
# The tracking of each sweep this process drives, by name: a Tuner restored from a runs dir
# unpickles its callback, which takes its store from here.
_DRIVEN: dict[str, MlflowTracking] = {}
_REFUSALS = {"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "MALFORMED_REQUEST"}  # MLflow's codes


@dataclass(frozen=True)
class SweepRecord:
    """What the parent run records about the sweep itself."""

    name: str
    experiment: str
    objective: str
    metric: str
    mode: str
    max_epochs: int
    space_file: Path
    params: Mapping[str, Any]  # resolved settings, already free of secrets
    tags: Mapping[str, str] = field(default_factory=dict)


def metrics_of(result: Mapping[str, Any]) -> dict[str, float]:
    """The objective's own metrics: namespaced numeric keys such as ``train/loss``."""
    return {k: float(v) for k, v in result.items() if "/" in k and _is_number(v)}


def runtime_of(result: Mapping[str, Any]) -> dict[str, str]:
    """Where and how the trial computed: its ``runtime/*`` strings (device, GPU ids, AMP...)."""
    return {k: v for k, v in result.items() if k.startswith("runtime/") and isinstance(v, str)}


def runtime_tags(runtime: Mapping[str, str]) -> dict[str, str]:
    """The run tags of :func:`runtime_of`'s strings: ``dmlsweep.runtime.device``, ..."""
    return {f"dmlsweep.{k.replace('/', '.')}": v for k, v in runtime.items()}


class MlflowTracking(Callback):
    """Tune callback that mirrors a sweep into MLflow.

    ``log_model(trial, run_id)`` is called at the end for the ``models_top_k`` best completed
    trials; the runner supplies it (it knows how to rebuild an objective's network).
    """

    def __init__(
        self,
        *,
        tracking_uri: str,
        record: SweepRecord,
        models_top_k: int = 3,
        log_model: Callable[[Trial, str], None] | None = None,
        parent_run_id: str | None = None,
        artifact_location: str | None = None,
        retry_seconds: float = 600.0,
    ) -> None:
        self.retry_seconds = retry_seconds
        self.untracked: list[str] = []  # what could not be tracked even after retrying
        self.artifact_location = artifact_location
        self.tracking_uri = tracking_uri
        self.record = record
        self.models_top_k = models_top_k
        self._log_model = log_model
        self.parent_run_id = parent_run_id
        self.client = MlflowClient(tracking_uri)
        self.trial_runs: dict[str, str] = {}  # Tune trial id -> MLflow run id
        self._trial_nodes: dict[str, str] = {}  # Tune trial id -> Ray node id last seen
        self._trial_runtimes: dict[str, dict[str, str]] = {}  # trial id -> runtime/* last seen
        self._configs: dict[str, _ConfigHistory] = {}  # Tune trial id -> its hyperparameters
        self._refused_metrics: set[str] = set()  # names MLflow refused: not sent again
        self._start_logging_thread()
        _DRIVEN[record.name] = self

    _THREAD_STATE = ("_pool", "_pending", "_lock", "_batch", "_since", "_logging", "_log_now")

    def _start_logging_thread(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow")
        self._pending: list[Future[Any]] = []
        self._lock = threading.Lock()  # guards the batches between Tune's loop and the thread
        self._batch: dict[str, _TrialBatch] = {}  # Tune trial id -> what its run awaits
        self._since: float | None = None  # when _batch's first event came (None: empty)
        self._logging: dict[str, _TrialBatch] = {}  # taken by the thread, not yet logged
        self._log_now = threading.Event()  # flush(): stop gathering, log at once
        self._restored: list[tuple[str, _TrialBatch]] = []  # a dead driver's, to log first

    # Where the store is: this driver's, never the pickle's (a URL may hold a password; a runs
    # dir may have moved since).
    _STORE_STATE = ("tracking_uri", "artifact_location", "client", "parent_run_id")

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the Tuner: leave the thread and the store behind.
        state = self.__dict__.copy()
        for name in (*self._THREAD_STATE, *self._STORE_STATE):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A restored Tuner's callback: the trials' runs as it left them, the store of the
        tracking that this driver opened for the sweep."""
        name = state["record"].name
        live = _DRIVEN.get(name)
        if live is None:
            raise DmlsweepError(
                f"sweep {name!r}: its MLflow tracking is not open in this process; resume the "
                f"sweep with: python sweeps/launch.py --resume {name}"
            )
        self.__dict__.update(state)
        for attribute in self._STORE_STATE:
            setattr(self, attribute, getattr(live, attribute))
        self._start_logging_thread()

    # -- parent run -----------------------------------------------------------------------
    def start_parent(self) -> str:
        """Create (or reuse) the experiment and the sweep's parent run; synchronous, so a bad
        tracking URI fails before any trial starts."""
        import mlflow

        _check_reachable(self.tracking_uri)
        mlflow.set_tracking_uri(self.tracking_uri)  # the fluent API logs the best models
        experiment = self.client.get_experiment_by_name(self.record.experiment)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else self.client.create_experiment(
                self.record.experiment, artifact_location=self.artifact_location
            )
        )
        if self.parent_run_id is None:
            existing = _sweep_runs(self.client, self.record.name)
            if existing:
                raise DmlsweepError(
                    f"a sweep named {self.record.name!r} already exists (MLflow run "
                    f"{existing[0].info.run_id}); continue it with --resume "
                    f"{self.record.name}, or choose another --name"
                )
            run = self.client.create_run(
                experiment_id,
                run_name=self.record.name,
                tags={**self.record.tags, schema.ROLE: schema.SWEEP_ROLE},
            )
            self.parent_run_id = run.info.run_id
            self.client.log_batch(
                self.parent_run_id,
                params=[Param(k, _param_value(v)) for k, v in self.record.params.items()],
            )
            self.client.log_artifact(self.parent_run_id, str(self.record.space_file), "space")
        else:
            self.client.update_run(self.parent_run_id, status="RUNNING")
            parent = self.client.get_run(self.parent_run_id)
            if schema.STATE in parent.data.tags:  # interrupted before: running again
                self.client.delete_tag(self.parent_run_id, schema.STATE)
            self.client.set_tag(self.parent_run_id, schema.RESUMED, time.strftime("%FT%T"))
        self.experiment_id = experiment_id
        return self.parent_run_id

    # -- Tune hooks ---------------------------------------------------------------------------
    def setup(self, **info: Any) -> None:  # type: ignore[override]  # Tune passes keywords
        """Also runs when a resumed sweep starts: adopt the trials' existing child runs, then
        log what the dead driver had not (``set_state`` ran before)."""
        self.adopt_child_runs()
        restored, self._restored = self._restored, []
        with self._lock:
            for trial_id, batch in restored:
                self._batch_of(trial_id).add(batch)

    def get_state(self) -> dict[str, Any]:
        """Saved by Tune with every snapshot of its experiment: what MLflow has not got yet.
        Never empty (``{"unlogged": []}``): Tune would keep an older, staler file instead."""
        with self._lock:
            unlogged = [*self._logging.items(), *self._batch.items()]
        return {"unlogged": unlogged}

    def set_state(self, state: dict[str, Any]) -> None:
        self._restored = list(state.get("unlogged", []))

    def adopt_child_runs(self) -> None:
        if self.parent_run_id is None:
            return
        for run in self._child_runs():
            trial_id = run.data.tags.get(schema.TRIAL_ID)
            if trial_id:
                self.trial_runs.setdefault(trial_id, run.info.run_id)

    def run_of(self, trial_id: str) -> str | None:
        """The MLflow run of a Tune trial (waits for pending logging)."""
        self.flush()
        if trial_id not in self.trial_runs:
            self.adopt_child_runs()
        return self.trial_runs.get(trial_id) or None

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        if trial.trial_id in self.trial_runs:
            if self.trial_runs[trial.trial_id]:  # resumed after an interruption: running again
                with self._lock:
                    self._batch_of(trial.trial_id).status = "RUNNING"
            return
        self.trial_runs[trial.trial_id] = ""  # being created on the logging thread
        self._configs[trial.trial_id] = _ConfigHistory(dict(trial.config))
        with self._lock:
            batch = self._batch_of(trial.trial_id)
            batch.create = int(time.time() * 1000)  # the run starts when its trial does
            batch.params = [Param(k, _param_value(v)) for k, v in sorted(trial.config.items())]
            batch.what.append("its run")

    def _create_trial_run(self, trial_id: str, start_time: int) -> None:
        run = self.client.create_run(
            self.experiment_id,
            start_time=start_time,
            run_name=f"{self.record.name}-{trial_id}",
            tags={
                MLFLOW_PARENT_RUN_ID: self.parent_run_id,
                schema.ROLE: schema.TRIAL_ROLE,
                schema.TRIAL_ID: trial_id,
                schema.OBJECTIVE: self.record.objective,
            },
        )
        self.trial_runs[trial_id] = run.info.run_id

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any
    ) -> None:
        if trial.trial_id not in self.trial_runs or NOT_RETRIED_KEY in result:
            return  # a failure's report is not an epoch (its text ends the run)
        step = int(result.get("training_iteration", 0))
        now = int(time.time() * 1000)
        metrics = [
            Metric(k, v, now, step) for k, v in metrics_of(result).items() if math.isfinite(v)
        ]
        tags = []
        node = result.get("node_id")
        if node and self._trial_nodes.get(trial.trial_id) != node:
            # A trial rescheduled after a node loss shows where it ran last.
            self._trial_nodes[trial.trial_id] = node
            tags.append(RunTag(schema.NODE_ID, str(node)))
        runtime = runtime_of(result)
        if runtime and self._trial_runtimes.get(trial.trial_id) != runtime:
            # where and how the trial computes (device, GPU ids, AMP, workers), as it last ran
            self._trial_runtimes[trial.trial_id] = runtime
            tags += [RunTag(k, v) for k, v in runtime_tags(runtime).items()]
        config_metrics, config_tags = self._config_changes(trial, step=step, now=now)
        metrics += config_metrics
        tags += config_tags
        if metrics or tags:
            with self._lock:
                batch = self._batch_of(trial.trial_id)
                batch.metrics += metrics
                batch.tags.update((tag.key, tag.value) for tag in tags)
                batch.what.append(f"epoch {step}")

    def _config_changes(
        self, trial: Trial, *, step: int, now: int
    ) -> tuple[list[Metric], list[RunTag]]:
        """A trial's hyperparameters changed while it ran (PBT's explore step). The run's params
        keep the values it started with; the schedule goes beside them: a ``config/<name>``
        metric for each numeric value that moved (its starting value at step 0), and tags with
        the current configuration and the number of changes."""
        history = self._configs.get(trial.trial_id)
        if history is None or trial.config == history.latest:  # every result: no copy
            return [], []
        current = history.latest = dict(trial.config)
        history.changes += 1
        started = history.started
        metrics = []
        for key, value in sorted(current.items()):
            if not (_is_number(value) and _is_number(started.get(key))):
                continue
            if key not in history.moved and value != started[key]:
                history.moved.add(key)
                metrics.append(Metric(f"config/{key}", float(started[key]), now, 0))
            if key in history.moved:
                metrics.append(Metric(f"config/{key}", float(value), now, step))
        tags = [
            RunTag(schema.CONFIG, _param_value(json.dumps(current, default=str))),
            RunTag(schema.CONFIG_CHANGES, str(history.changes)),
        ]
        return metrics, tags

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        state = final_state(trial.last_result, error=False, max_epochs=self.record.max_epochs)
        self._end_trial(trial, state)

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._end_trial(trial, TrialState.FAIL)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self.finish(trials)

    # -- end of trials and sweep ----------------------------------------------------------------
    def _end_trial(self, trial: Trial, state: TrialState) -> None:
        if trial.trial_id not in self.trial_runs:
            return
        with self._lock:
            batch = self._batch_of(trial.trial_id)
            batch.tags[schema.STATE] = state.name
            if state is TrialState.FAIL:
                not_retried = (trial.last_result or {}).get(NOT_RETRIED_KEY)
                batch.tags[schema.ERROR] = (not_retried or _error_text(trial))[:5000]
                if trial.error_file:
                    batch.error_file = trial.error_file
            batch.status = MLFLOW_STATUS[state]
            batch.end_time = int(time.time() * 1000)  # the run ends when its trial does
            batch.what.append("its end")

    def ranked_trials(self, trials: list[Trial]) -> list[Trial]:
        """Completed trials, best first."""
        done = [
            t
            for t in trials
            if t.status == Trial.TERMINATED
            and final_state(t.last_result, error=False, max_epochs=self.record.max_epochs)
            is TrialState.COMPLETE
            and isinstance(t.last_result.get(self.record.metric), (int, float))
        ]
        return sorted(
            done,
            key=lambda t: t.last_result[self.record.metric],
            reverse=self.record.mode == "max",
        )

    def finish(self, trials: list[Trial]) -> None:
        """Wait for pending logging, log the best models and the sweep's outcome, close runs.
        A sweep stopped by a signal only closes its unfinished runs, as interrupted."""
        self.flush()
        if interrupt.requested():
            self._close_interrupted()
            return
        ranked = self.ranked_trials(trials)
        if self._log_model is not None:
            for trial in ranked[: self.models_top_k]:
                try:
                    run_id = self.trial_runs.get(trial.trial_id)
                    if not run_id:
                        raise DmlsweepError("the trial has no MLflow run")
                    if self.client.get_run(run_id).data.tags.get(schema.MODEL_LOGGED):
                        continue  # logged when its segment of the sweep ended
                    self._log_model(trial, run_id)
                except Exception:  # a missing model must not lose the sweep's record
                    logger.exception("could not log the model of trial %s", trial.trial_id)
        counts: dict[str, int] = {}
        for trial in trials:
            counts[trial.status] = counts.get(trial.status, 0) + 1
        metrics = [
            Metric(f"trials/{k.lower()}", v, int(time.time() * 1000), 0) for k, v in counts.items()
        ]
        params: list[Param] = []
        tags = [RunTag(schema.TRIALS, str(len(trials)))]
        if ranked:
            best = ranked[0]
            metrics.append(
                Metric(
                    f"best/{self.record.metric}",
                    float(best.last_result[self.record.metric]),
                    int(time.time() * 1000),
                    0,
                )
            )
            tags.append(RunTag(schema.BEST_TRIAL, best.trial_id))
            tags.append(RunTag(schema.BEST_RUN_ID, self.trial_runs.get(best.trial_id, "")))
            params = [
                Param(f"best/{k}", _param_value(v))
                for k, v in best.config.items()
                if f"best/{k}" not in self._logged_parent_params()
            ]
        self._fail_lost_runs(trials)
        assert self.parent_run_id is not None  # start_sweep ran
        self.client.log_batch(self.parent_run_id, metrics=metrics, params=params, tags=tags)
        self.client.set_terminated(self.parent_run_id, "FINISHED")
        self._pool.shutdown(wait=True)
        if self.untracked:
            print(
                f"dmlsweep: warning: {len(self.untracked)} tracking calls failed even after "
                f"retrying for {self.retry_seconds:g} s (first: {self.untracked[0]}); their "
                "metrics are only in Ray Tune's results",
                file=sys.stderr,
            )

    def _close_interrupted(self) -> None:
        """The runs of the trials still running, and the parent, end KILLED with
        ``dmlsweep.state`` INTERRUPTED: ``--resume NAME`` sets them running again."""
        interrupted = [RunTag(schema.STATE, "INTERRUPTED")]
        for run in self._child_runs(status="RUNNING"):
            self.client.log_batch(run.info.run_id, tags=interrupted)
            self.client.set_terminated(run.info.run_id, "KILLED")
        assert self.parent_run_id is not None  # start_parent ran
        self.client.log_batch(self.parent_run_id, tags=interrupted)
        self.client.set_terminated(self.parent_run_id, "KILLED")
        self._pool.shutdown(wait=True)

    def _child_runs(self, *, status: str | None = None) -> list[Any]:
        assert self.parent_run_id is not None  # start_parent ran
        query = f"tags.`{MLFLOW_PARENT_RUN_ID}` = {filter_value(self.parent_run_id)}"
        if status is not None:
            query += f" and attributes.status = {filter_value(status)}"
        return list(
            self.client.search_runs([self.experiment_id], filter_string=query, max_results=50000)
        )

    def _fail_lost_runs(self, trials: list[Trial]) -> None:
        """A child run still RUNNING whose trial Tune does not know (its driver died between
        creating the run and saving the trial) ends FAILED, marked as lost."""
        known = {t.trial_id for t in trials}
        for run in self._child_runs(status="RUNNING"):
            if run.data.tags.get(schema.TRIAL_ID) not in known:
                self.client.set_tag(run.info.run_id, schema.STATE, "FAIL")
                self.client.set_tag(run.info.run_id, schema.LOST, "the sweep's driver died")
                self.client.set_terminated(run.info.run_id, "FAILED")

    def flush(self) -> None:
        """Log everything gathered so far, now, and wait until it is logged."""
        self._log_now.set()
        try:
            for future in self._pending:
                try:
                    future.result()
                except Exception:
                    logger.exception("an MLflow call failed")
        finally:
            self._log_now.clear()
        self._pending.clear()

    def _logged_parent_params(self) -> set[str]:
        assert self.parent_run_id is not None
        return set(self.client.get_run(self.parent_run_id).data.params)

    def _batch_of(self, trial_id: str) -> _TrialBatch:
        """The trial's batch, with a drain of the batches queued on the logging thread; call
        with ``_lock`` held."""
        if self._since is None:
            self._since = time.monotonic()
            self._pending = [f for f in self._pending if not f.done() or f.exception()]
            self._pending.append(self._pool.submit(self._drain, self._since))
        return self._batch.setdefault(trial_id, _TrialBatch())

    def _drain(self, since: float) -> None:
        """On the logging thread: gather until ``BATCH_SECONDS`` after ``since`` (at once if
        flushed), then log each trial's batch."""
        self._log_now.wait(max(0.0, since + BATCH_SECONDS - time.monotonic()))
        with self._lock:
            batches, self._batch, self._since = self._batch, {}, None
            self._logging = dict(batches)
        try:
            for trial_id, batch in batches.items():
                self._log_batch(trial_id, batch)
                with self._lock:
                    del self._logging[trial_id]
        finally:
            with self._lock:
                self._logging = {}

    def _log_batch(self, trial_id: str, batch: _TrialBatch) -> None:
        what = f"{', '.join(batch.what)} of trial {trial_id}"
        if batch.create and not self.trial_runs.get(trial_id):  # a resumed one may have it
            created = self._retrying(self._create_trial_run, trial_id, batch.create, what=what)
            if created is not None:
                return  # named already
        run_id = self.trial_runs.get(trial_id)
        if not run_id:
            self._name_untracked(what, "the trial has no MLflow run")
            return
        tags = [RunTag(key, value) for key, value in batch.tags.items()]
        metrics = [m for m in batch.metrics if m.key not in self._refused_metrics]
        # MLflow's own split of a large batch would retry its parts that got through.
        for part in _within_limits(metrics, batch.params, tags):
            self._log_part(run_id, *part, what=what, deadline=time.monotonic() + self.retry_seconds)
        if batch.error_file:
            self._retrying(
                _log_file_if_exists, run_id, batch.error_file, client=self.client, what=what
            )
        if batch.status == "RUNNING":  # a resumed trial's run
            self._retrying(self.client.update_run, run_id, "RUNNING", what=what)
        elif batch.status:
            self._retrying(
                self.client.set_terminated, run_id, batch.status, batch.end_time, what=what
            )

    def _log_part(
        self,
        run_id: str,
        metrics: list[Metric],
        params: list[Param],
        tags: list[RunTag],
        *,
        what: str,
        deadline: float,
    ) -> None:
        """Log one part of a batch; if MLflow refuses it, each entry on its own, so that only
        the refused ones are lost (a refused metric name is not sent again). One deadline for
        the retries of all of it."""
        error = self._retrying(
            self.client.log_batch,
            run_id,
            metrics=metrics,
            params=params,
            tags=tags,
            what=what,
            deadline=deadline,
            name_failure=False,
        )
        if error is None:
            return
        if not _refused(error) or len(metrics) + len(params) + len(tags) == 1:
            if _refused(error) and metrics:
                self._refused_metrics.add(metrics[0].key)
            self._name_untracked(what, error)
            return
        for param in params:
            self._log_part(
                run_id, [], [param], [], what=f"param {param.key} ({what})", deadline=deadline
            )
        for tag in tags:
            self._log_part(run_id, [], [], [tag], what=f"tag {tag.key} ({what})", deadline=deadline)
        for metric in metrics:
            if metric.key not in self._refused_metrics:
                self._log_part(
                    run_id,
                    [metric],
                    [],
                    [],
                    what=f"{metric.key}, every value from step {metric.step} ({what})",
                    deadline=deadline,
                )

    def _name_untracked(self, what: str, reason: Exception | str) -> None:
        self.untracked.append(what)
        logger.warning("not tracked in MLflow: %s (%s)", what, redact(str(reason)))

    def _retrying(
        self,
        fn: Callable[..., Any],
        *args: Any,
        what: str,
        deadline: float | None = None,
        name_failure: bool = True,
        **kwargs: Any,
    ) -> Exception | None:
        """Call ``fn`` until it succeeds (None), the ``deadline`` passes (default:
        ``retry_seconds`` from now; backoff 0.5 s .. 30 s) or MLflow refuses it (the call
        itself is wrong); then the last error, and (``name_failure``) ``what`` named in the
        end-of-sweep warning."""
        if deadline is None:
            deadline = time.monotonic() + self.retry_seconds
        delay = 0.5
        while True:
            try:
                fn(*args, **kwargs)
                return None
            except Exception as exc:
                if _refused(exc) or time.monotonic() + delay > deadline:
                    if name_failure:
                        self._name_untracked(what, exc)
                    return exc
                logger.info(
                    "MLflow call for %s failed (%s); retrying in %.1f s",
                    what,
                    redact(str(exc)),
                    delay,
                )
                time.sleep(delay)
                delay = min(2 * delay, 30.0)


@dataclass
class _TrialBatch:
    """What a trial's run awaits from the logging thread, in the order it is logged."""

    create: int = 0  # the run itself, started at this time (ms), with these params
    params: list[Param] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)  # the latest value of each
    error_file: str | None = None  # logged under error/
    status: str | None = None  # the run ends with it
    end_time: int | None = None  # at this time (ms)
    what: list[str] = field(default_factory=list)  # named in a warning if it is not tracked

    def add(self, later: _TrialBatch) -> None:
        """Take in what came after this batch."""
        self.create = self.create or later.create
        self.params = self.params or later.params
        self.metrics += later.metrics
        self.tags.update(later.tags)
        self.error_file = later.error_file or self.error_file
        self.status = later.status or self.status
        self.end_time = later.end_time or self.end_time
        self.what += later.what


@dataclass
class _ConfigHistory:
    """A trial's hyperparameters as it started, as they are now, and how often they changed."""

    started: dict[str, Any]
    changes: int = 0
    moved: set[str] = field(default_factory=set)  # numeric keys that left their start value
    latest: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.latest = self.started


def _within_limits(
    metrics: list[Metric], params: list[Param], tags: list[RunTag]
) -> Iterator[tuple[list[Metric], list[Param], list[RunTag]]]:
    """The parts of a batch that MLflow takes in one call (its per-call limits)."""
    while metrics or params or tags:
        params_part, params = params[:MAX_PARAMS_TAGS_PER_BATCH], params[MAX_PARAMS_TAGS_PER_BATCH:]
        tags_part, tags = tags[:MAX_PARAMS_TAGS_PER_BATCH], tags[MAX_PARAMS_TAGS_PER_BATCH:]
        room = min(
            MAX_METRICS_PER_BATCH, MAX_ENTITIES_PER_BATCH - len(params_part) - len(tags_part)
        )
        metrics_part, metrics = metrics[:room], metrics[room:]
        yield metrics_part, params_part, tags_part


def _refused(error: Exception) -> bool:
    """Whether MLflow refused what the call carries (an invalid name or value): the same call
    can never succeed, unlike one that met a server down, restarting or refusing credentials
    for a while, which is retried."""
    return isinstance(error, MlflowException) and error.error_code in _REFUSALS


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _param_value(value: Any) -> str:
    return str(value)[:_PARAM_LIMIT]


def _error_text(trial: Trial) -> str:
    if trial.error_file and Path(trial.error_file).is_file():
        return Path(trial.error_file).read_text(errors="replace")
    return "trial failed (no error file)"


def _log_file_if_exists(run_id: str, path: str, *, client: MlflowClient) -> None:
    if Path(path).is_file():
        client.log_artifact(run_id, path, "error")


def _check_reachable(tracking_uri: str) -> None:
    """Fail in seconds, naming the server, rather than after MLflow's minutes of retries."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{tracking_uri.rstrip('/')}/health", timeout=10):
            pass
    except (urllib.error.URLError, OSError) as exc:
        if isinstance(exc, urllib.error.HTTPError) and exc.code in (401, 403):
            return  # reachable; the credentials are checked by the first real call
        raise DmlsweepError(
            f"cannot reach the MLflow tracking server {redact(tracking_uri)}: {exc}"
        ) from exc


def _sweep_runs(client: MlflowClient, name: str) -> list[Any]:
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    return list(
        client.search_runs(
            experiments,
            filter_string=(
                f"tags.`dmlsweep.role` = 'sweep' and attributes.run_name = {filter_value(name)}"
            ),
            max_results=10,
        )
    )


def trial_runs(tracking_uri: str, parent: Any) -> dict[str, str]:
    """Trial id -> MLflow run id of the sweep whose parent run is ``parent``."""
    client = MlflowClient(tracking_uri)
    query = f"tags.`{MLFLOW_PARENT_RUN_ID}` = {filter_value(parent.info.run_id)}"
    runs = client.search_runs([parent.info.experiment_id], filter_string=query, max_results=50000)
    return {
        run.data.tags[schema.TRIAL_ID]: run.info.run_id
        for run in runs
        if schema.TRIAL_ID in run.data.tags
    }


def find_sweep_run(tracking_uri: str, name: str) -> Any:
    """The parent run of the sweep ``name``; a clear error when there is none."""
    _check_reachable(tracking_uri)
    runs = _sweep_runs(MlflowClient(tracking_uri), name)
    if not runs:
        raise DmlsweepError(
            f"no sweep named {name!r} to resume in the MLflow tracking store {redact(tracking_uri)}"
        )
    if len(runs) > 1:
        raise DmlsweepError(
            f"{len(runs)} sweeps are named {name!r}: {[r.info.run_id for r in runs]}"
        )
    return runs[0]


__all__ = ["MlflowTracking", "find_sweep_run", "SweepRecord", "metrics_of", "MLFLOW_STATUS"]
