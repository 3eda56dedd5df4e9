"""Trials stopped early by the scheduler reach Optuna as PRUNED with their intermediate values."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from dmlsweep.optuna_search import PruneAwareOptunaSearch, final_state

MAX_EPOCHS = 4


def space(trial: optuna.Trial) -> None:
    trial.suggest_float("x", 0.0, 1.0)


def make(cls: type = PruneAwareOptunaSearch) -> OptunaSearch:
    kwargs = {"max_epochs": MAX_EPOCHS} if cls is PruneAwareOptunaSearch else {}
    return cls(space=space, metric="val/score", mode="max", seed=0, **kwargs)


def run_trial(
    search: OptunaSearch,
    trial_id: str,
    *,
    epochs: int,
    error: bool = False,
    stopped_by_scheduler: bool = True,
) -> None:
    """Replay what Tune's controller does: every result but a STOP result goes to
    ``on_trial_result``; the last result goes to ``on_trial_complete``."""
    assert search.suggest(trial_id) is not None
    results = [{"val/score": 0.1 * e, "training_iteration": e} for e in range(1, epochs + 1)]
    reported = results[:-1] if stopped_by_scheduler else results
    for result in reported:
        search.on_trial_result(trial_id, result)
    if error:
        search.on_trial_complete(trial_id, error=True)
    else:
        search.on_trial_complete(trial_id, result=results[-1])


def states(search: OptunaSearch) -> list[TrialState]:
    return [t.state for t in search._ot_study.get_trials(deepcopy=False)]


def test_asha_stopped_trial_is_pruned_with_its_intermediate_values() -> None:
    search = make()
    run_trial(search, "a", epochs=2)  # stopped at the first rung
    (trial,) = search._ot_study.get_trials()
    assert trial.state is TrialState.PRUNED
    assert trial.intermediate_values == {1: pytest.approx(0.1), 2: pytest.approx(0.2)}
    assert trial.value == pytest.approx(0.2)  # Optuna keeps the last intermediate value


def test_trial_that_ran_every_epoch_is_complete() -> None:
    search = make()
    run_trial(search, "a", epochs=MAX_EPOCHS, stopped_by_scheduler=False)
    (trial,) = search._ot_study.get_trials()
    assert trial.state is TrialState.COMPLETE
    assert trial.value == pytest.approx(0.1 * MAX_EPOCHS)
    assert sorted(trial.intermediate_values) == [1, 2, 3, 4]


def test_failed_trial_is_fail_not_complete() -> None:
    search = make()
    run_trial(search, "a", epochs=2, error=True)
    assert states(search) == [TrialState.FAIL]


def test_rays_own_adapter_reports_pruned_trials_as_complete() -> None:
    """The behaviour this module exists to fix (if Ray fixes it, this test tells us)."""
    search = make(OptunaSearch)
    run_trial(search, "a", epochs=2)
    assert states(search) == [TrialState.COMPLETE]


def test_mixed_sweep_leaves_nothing_running() -> None:
    search = make()
    run_trial(search, "a", epochs=1)
    run_trial(search, "b", epochs=MAX_EPOCHS, stopped_by_scheduler=False)
    run_trial(search, "c", epochs=3, error=True)
    run_trial(search, "d", epochs=MAX_EPOCHS)  # ASHA stops at max_t: complete all the same
    assert states(search) == [
        TrialState.PRUNED,
        TrialState.COMPLETE,
        TrialState.FAIL,
        TrialState.COMPLETE,
    ]


@pytest.mark.parametrize(
    ("result", "error", "expected"),
    [
        ({"training_iteration": 4}, False, TrialState.COMPLETE),
        ({"training_iteration": 3}, False, TrialState.PRUNED),
        (None, False, TrialState.PRUNED),
        ({"training_iteration": 4}, True, TrialState.FAIL),
    ],
)
def test_final_state_rule(result: dict | None, error: bool, expected: TrialState) -> None:
    assert final_state(result, error=error, max_epochs=4) is expected


@pytest.mark.parametrize("first_epochs", [2, MAX_EPOCHS])
def test_trial_told_by_a_dead_driver_keeps_what_optuna_heard(first_epochs: int) -> None:
    """On resume Tune re-runs a trial whose end the dead driver had already told Optuna (its
    saved state still said RUNNING), from its last checkpoint: the later reports and the second
    ending neither raise nor change Optuna's record."""
    search = make()
    run_trial(search, "a", epochs=first_epochs, stopped_by_scheduler=first_epochs < MAX_EPOCHS)
    (before,) = search._ot_study.get_trials()
    search._completed_trials.discard("a")  # the resumed searcher's view of trial "a"
    for epoch in range(first_epochs + 1, MAX_EPOCHS + 1):
        search.on_trial_result("a", {"val/score": 9.9, "training_iteration": epoch})
    search.on_trial_complete("a", result={"val/score": 9.9, "training_iteration": MAX_EPOCHS})
    (after,) = search._ot_study.get_trials()
    assert (after.state, after.value, after.intermediate_values) == (
        before.state,
        before.value,
        before.intermediate_values,
    )
    assert "a" in search._completed_trials
