"""The sweep's Optuna storage: writes reach the database at once, reads come from memory and
agree with the database, a pickled copy (a resumed driver) starts from the database."""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from dmlsweep.databases import open_optuna_storage
from dmlsweep.optuna_storage import SoleWriterStorage

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -2.0, 2.0)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    if kind == "b":
        trial.suggest_int("depth", 1, 4)
    for step in range(3):
        trial.report(x * step, step)
    trial.set_user_attr("note", f"trial {trial.number}")
    if trial.number % 5 == 3:
        raise optuna.TrialPruned()
    if trial.number % 7 == 6:
        raise RuntimeError("a failing trial")
    return (x - 0.5) ** 2


def _run(storage: optuna.storages.BaseStorage | str, n: int, name: str = "s") -> optuna.Study:
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=3, n_startup_trials=4),
        load_if_exists=True,
    )
    if not study.trials:
        study.enqueue_trial({"x": 0.0, "kind": "a"})
    study.optimize(_objective, n_trials=n, catch=(RuntimeError,))
    return study


def _record(trial: FrozenTrial) -> tuple:
    return (
        trial._trial_id,
        trial.number,
        trial.state,
        trial.params,
        trial.distributions,
        trial.values,
        trial.intermediate_values,
        trial.user_attrs,
        trial.system_attrs,
    )


def _database(path: Path) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(f"sqlite:///{path}")


def test_reads_agree_with_the_database_and_with_optuna_alone(tmp_path: Path) -> None:
    storage = open_optuna_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    assert isinstance(storage, SoleWriterStorage)
    ours = _run(storage, 16)
    in_database = optuna.load_study(study_name="s", storage=_database(tmp_path / "optuna.db"))
    assert [_record(t) for t in ours.trials] == [_record(t) for t in in_database.trials]
    states = {t.state for t in ours.trials}
    assert states == {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}
    # The sampler saw the same history it would have read from the database: the same
    # suggestions as Optuna on its own storage.
    alone = _run(f"sqlite:///{tmp_path / 'alone.db'}", 16)
    assert [t.params for t in ours.trials] == [t.params for t in alone.trials]
    assert ours.best_trial.number == alone.best_trial.number


def test_every_write_is_in_the_database_before_it_returns(tmp_path: Path) -> None:
    storage = open_optuna_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    database = _database(tmp_path / "optuna.db")
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    trial.report(0.25, 1)
    trial.set_user_attr("k", "v")
    seen = database.get_trial(trial._trial_id)
    assert (seen.params, seen.intermediate_values, seen.user_attrs) == (
        trial.params,
        {1: 0.25},
        {"k": "v"},
    )
    study.tell(trial, 0.5)
    assert database.get_trial(trial._trial_id).state is TrialState.COMPLETE
    assert database.get_trial(trial._trial_id).value == 0.5


def test_a_write_the_database_fails_on_changes_nothing(tmp_path: Path) -> None:
    storage = open_optuna_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    with sqlite3.connect(tmp_path / "optuna.db") as db:  # the database breaks under it
        db.execute("DROP TABLE trial_intermediate_values")
    with pytest.raises(optuna.exceptions.StorageInternalError):
        trial.report(0.25, 1)
    assert storage.get_trial(trial._trial_id).intermediate_values == {}


def test_a_write_the_database_refuses_changes_nothing(tmp_path: Path) -> None:
    storage = open_optuna_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    study.tell(trial, 1.0)
    before = _record(storage.get_trial(trial._trial_id))
    with pytest.raises(RuntimeError):  # UpdateFinishedTrialError
        storage.set_trial_intermediate_value(trial._trial_id, 5, 9.0)
    with pytest.raises(ValueError):  # x's distribution cannot change within a study
        other = study.ask()
        storage.set_trial_param(
            other._trial_id, "x", 0.0, optuna.distributions.CategoricalDistribution([0, 1])
        )
    assert _record(storage.get_trial(trial._trial_id)) == before
    assert "x" not in storage.get_trial(other._trial_id).params
    assert "x" not in _database(tmp_path / "optuna.db").get_trial(other._trial_id).params


def test_a_pickled_storage_starts_from_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = open_optuna_storage(url)
    _run(first, 6)
    resumed = pickle.loads(pickle.dumps(first))
    assert len(pickle.dumps(first)) < 2000  # the in-memory copy is not pickled
    # Meanwhile another process wrote to the study (the dead driver's last trial).
    _run(url, 1)
    study = _run(resumed, 5)
    assert [t.number for t in study.trials] == list(range(12))
    in_database = optuna.load_study(study_name="s", storage=_database(tmp_path / "optuna.db"))
    assert [_record(t) for t in study.trials] == [_record(t) for t in in_database.trials]


def test_studies_it_did_not_open_are_served_by_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    _run(url, 3, name="older")
    storage = open_optuna_storage(url)
    _run(storage, 3, name="mine")
    names = {s.study_name for s in storage.get_all_studies()}
    assert names == {"older", "mine"}
    older = optuna.load_study(study_name="older", storage=storage)
    assert [t.number for t in older.trials] == [0, 1, 2]
    storage.delete_study(older._study_id)
    assert {s.study_name for s in _database(tmp_path / "optuna.db").get_all_studies()} == {"mine"}
