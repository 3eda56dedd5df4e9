"""Ray Tune's OptunaSearch, telling Optuna the truth about how each trial ended.

Ray's adapter tells Optuna that a trial stopped early by the scheduler (ASHA) COMPLETED with its
last, immature value, which poisons TPE's model with half-trained scores; and a trial that raised
after reporting is told COMPLETE too. Here:

- stopped before ``max_epochs`` by the scheduler -> PRUNED, its intermediate values reported;
- raised -> FAIL;
- ran all ``max_epochs`` -> COMPLETE with the final value.

Example::

    search = PruneAwareOptunaSearch(space=define_by_run, metric="val/score", mode="max",
                                    max_epochs=8, sampler=optuna.samplers.TPESampler(seed=0))
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.result import TRAINING_ITERATION
from ray.tune.search.optuna import OptunaSearch

from dmlsweep import schema
from trainables.objective import NOT_RETRIED_KEY

logger = logging.getLogger(__name__)


def final_state(result: dict[str, Any] | None, *, error: bool, max_epochs: int) -> TrialState:
    """How a trial ended, from its last result: the rule shared by Optuna and MLflow reporting.
    A last result reporting an error that is not retried (``NOT_RETRIED_KEY``) is a failure."""
    if error or (result and NOT_RETRIED_KEY in result):
        return TrialState.FAIL
    if not result or result.get(TRAINING_ITERATION, 0) < max_epochs:
        return TrialState.PRUNED
    return TrialState.COMPLETE


class PruneAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that reports ASHA-stopped trials as PRUNED and errors as FAIL."""

    def __init__(self, *, max_epochs: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_epochs = max_epochs

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        if self._told(ot_trial):
            # A resumed sweep re-runs a trial whose end its dead driver had already told Optuna
            # (Tune's saved state still had it RUNNING): what Optuna heard stands.
            self._completed_trials.add(trial_id)
            return
        state = final_state(result, error=error, max_epochs=self._max_epochs)
        value = result.get(self.metric) if result else None
        if state is TrialState.COMPLETE and value is None:
            # Ran to the end without reporting the metric: nothing to learn from.
            state = TrialState.FAIL
        if state is TrialState.PRUNED and value is not None:
            # The scheduler's stopping result never reaches on_trial_result.
            step = result[TRAINING_ITERATION]  # type: ignore[index]  # value is not None
            if step not in ot_trial.storage.get_trial(ot_trial._trial_id).intermediate_values:
                ot_trial.report(value, step)
        study = self._ot_study
        assert study is not None  # set by OptunaSearch's __init__/set_search_properties
        if result and NOT_RETRIED_KEY in result:  # why it failed (e.g. timed out)
            ot_trial.set_user_attr(schema.ERROR, str(result[NOT_RETRIED_KEY])[:5000])
        try:
            study.tell(ot_trial, value if state is TrialState.COMPLETE else None, state=state)
        except Exception as exc:  # e.g. a NaN value; the trial must not stay RUNNING
            logger.warning("optuna: could not tell trial %s (%s); marking it FAIL", trial_id, exc)
            if not self._told(ot_trial):
                study.tell(ot_trial, state=TrialState.FAIL)
        self._completed_trials.add(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        try:
            super().on_trial_result(trial_id, result)
        except (RuntimeError, ValueError):
            # A finished trial re-run on resume: Optuna takes no more reports for it.
            if not self._told(self._ot_trials[trial_id]):
                raise

    @staticmethod
    def _told(ot_trial: optuna.Trial) -> bool:
        return ot_trial.storage.get_trial(ot_trial._trial_id).state.is_finished()


__all__ = ["PruneAwareOptunaSearch", "final_state", "optuna"]
