"""MLflow tracking of a sweep: one parent run per sweep, one nested child run per trial.

Everything is logged from the Ray driver through a Tune callback, so trials need no tracking
credentials and the child-run status is exactly what Ray decided: FINISHED (ran every epoch),
KILLED (stopped early by the scheduler: Optuna's PRUNED), FAILED (raised). MLflow calls run
on one background thread, in order, so logging never blocks Tune's event loop.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from optuna.trial import TrialState
from ray.tune import Callback
from ray.tune.experiment import Trial

from dmlsweep.optuna_search import final_state

logger = logging.getLogger(__name__)

MLFLOW_STATUS = {
    TrialState.COMPLETE: "FINISHED",
    TrialState.PRUNED: "KILLED",
    TrialState.FAIL: "FAILED",
}
_PARAM_LIMIT = 6000  # MLflow's maximum parameter value length


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
    return {
        k: float(v)
        for k, v in result.items()
        if "/" in k and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


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
    ) -> None:
        self.artifact_location = artifact_location
        self.tracking_uri = tracking_uri
        self.record = record
        self.models_top_k = models_top_k
        self._log_model = log_model
        self.parent_run_id = parent_run_id
        self.client = MlflowClient(tracking_uri)
        self.trial_runs: dict[str, str] = {}  # Tune trial id -> MLflow run id
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow")
        self._pending: list[Future[Any]] = []

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks with the experiment state: leave the thread pool behind.
        state = self.__dict__.copy()
        state["_pool"] = None
        state["_pending"] = []
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow")

    # -- parent run -----------------------------------------------------------------------
    def start_parent(self) -> str:
        """Create (or reuse) the experiment and the sweep's parent run; synchronous, so a bad
        tracking URI fails before any trial starts."""
        import mlflow

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
            run = self.client.create_run(
                experiment_id,
                run_name=self.record.name,
                tags={**self.record.tags, "dmlsweep.role": "sweep"},
            )
            self.parent_run_id = run.info.run_id
            self.client.log_batch(
                self.parent_run_id,
                params=[Param(k, _param_value(v)) for k, v in self.record.params.items()],
            )
            self.client.log_artifact(self.parent_run_id, str(self.record.space_file), "space")
        self.experiment_id = experiment_id
        return self.parent_run_id

    # -- Tune hooks ---------------------------------------------------------------------------
    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        if trial.trial_id in self.trial_runs:
            return
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"{self.record.name}-{trial.trial_id}",
            tags={
                MLFLOW_PARENT_RUN_ID: self.parent_run_id,
                "dmlsweep.role": "trial",
                "dmlsweep.trial_id": trial.trial_id,
                "dmlsweep.objective": self.record.objective,
            },
        )
        run_id = run.info.run_id
        self.trial_runs[trial.trial_id] = run_id
        params = [Param(k, _param_value(v)) for k, v in sorted(trial.config.items())]
        self._submit(self.client.log_batch, run_id, params=params)

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any
    ) -> None:
        run_id = self.trial_runs.get(trial.trial_id)
        if run_id is None:
            return
        step = int(result.get("training_iteration", 0))
        now = int(time.time() * 1000)
        metrics = [
            Metric(k, v, now, step) for k, v in metrics_of(result).items() if math.isfinite(v)
        ]
        if metrics:
            self._submit(self.client.log_batch, run_id, metrics=metrics)

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
        run_id = self.trial_runs.get(trial.trial_id)
        if run_id is None:
            return
        tags = [RunTag("dmlsweep.state", state.name)]
        if state is TrialState.FAIL:
            tags.append(RunTag("dmlsweep.error", _error_text(trial)[:5000]))
        self._submit(self.client.log_batch, run_id, tags=tags)
        if state is TrialState.FAIL and trial.error_file:
            self._submit(_log_file_if_exists, self.client, run_id, trial.error_file)
        self._submit(self.client.set_terminated, run_id, MLFLOW_STATUS[state])

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
        """Wait for pending logging, log the best models and the sweep's outcome, close runs."""
        self.flush()
        ranked = self.ranked_trials(trials)
        if self._log_model is not None:
            for trial in ranked[: self.models_top_k]:
                try:
                    self._log_model(trial, self.trial_runs[trial.trial_id])
                except Exception:  # a missing model must not lose the sweep's record
                    logger.exception("could not log the model of trial %s", trial.trial_id)
        counts: dict[str, int] = {}
        for trial in trials:
            counts[trial.status] = counts.get(trial.status, 0) + 1
        metrics = [
            Metric(f"trials/{k.lower()}", v, int(time.time() * 1000), 0) for k, v in counts.items()
        ]
        params: list[Param] = []
        tags = [RunTag("dmlsweep.trials", str(len(trials)))]
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
            tags.append(RunTag("dmlsweep.best_trial", best.trial_id))
            tags.append(RunTag("dmlsweep.best_run_id", self.trial_runs.get(best.trial_id, "")))
            params = [
                Param(f"best/{k}", _param_value(v))
                for k, v in best.config.items()
                if f"best/{k}" not in self._logged_parent_params()
            ]
        self.client.log_batch(self.parent_run_id, metrics=metrics, params=params, tags=tags)
        self.client.set_terminated(self.parent_run_id, "FINISHED")
        self._pool.shutdown(wait=True)

    def flush(self) -> None:
        for future in self._pending:
            try:
                future.result()
            except Exception:
                logger.exception("an MLflow call failed")
        self._pending.clear()

    def _logged_parent_params(self) -> set[str]:
        return set(self.client.get_run(self.parent_run_id).data.params)

    def _submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._pending = [f for f in self._pending if not f.done() or f.exception()]
        self._pending.append(self._pool.submit(fn, *args, **kwargs))


def _param_value(value: Any) -> str:
    return str(value)[:_PARAM_LIMIT]


def _error_text(trial: Trial) -> str:
    if trial.error_file and Path(trial.error_file).is_file():
        return Path(trial.error_file).read_text(errors="replace")
    return "trial failed (no error file)"


def _log_file_if_exists(client: MlflowClient, run_id: str, path: str) -> None:
    if Path(path).is_file():
        client.log_artifact(run_id, path, "error")


__all__ = ["MlflowTracking", "SweepRecord", "metrics_of", "MLFLOW_STATUS"]
