"""What a finished (or interrupted) sweep left behind, read from its three records, and the
end-state rules every fault test checks.

The three records of a sweep ``name`` under ``runs_dir``:

- Ray Tune: ``runs_dir/ray/<name>/experiment_state-*.json`` (each trial's status, failures,
  error file) and each trial directory's ``result.json`` (one JSON row per reported epoch);
- Optuna: the study ``name`` in the sweep's storage;
- MLflow: the parent run ``name`` (tag ``dmlsweep.role=sweep``) and its child runs.

The rule of an ending, written here independently of the platform's own mapping: a Tune trial
in ERROR is FAIL; TERMINATED after ``max_epochs`` epochs is COMPLETE, earlier is PRUNED; and
COMPLETE/PRUNED/FAIL are MLflow's FINISHED/KILLED/FAILED.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from mlflow.tracking import MlflowClient

MLFLOW_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
LOST_TAG = "dmlsweep.lost"
NOT_RETRIED = "dmlsweep/not_retried"  # a result reporting an error a retry would repeat


@dataclass(frozen=True)
class TuneTrial:
    """One trial as Ray Tune recorded it."""

    trial_id: str
    status: str  # TERMINATED | ERROR | RUNNING | PENDING | PAUSED
    config: dict[str, Any]
    num_failures: int
    directory: Path
    error_file: Path | None
    results: list[dict[str, Any]] = field(default_factory=list)  # result.json rows, in order

    @property
    def epochs(self) -> list[int]:
        return [int(r["training_iteration"]) for r in self.results if NOT_RETRIED not in r]

    @property
    def not_retried(self) -> str | None:
        """The error of a trial that ended on a failure not retried (its last result says)."""
        return self.results[-1].get(NOT_RETRIED) if self.results else None

    def restored_rows(self) -> list[dict[str, Any]]:
        """Rows reported first after a restore from a checkpoint (not from scratch): the
        epoch counter continued while ``iterations_since_restore`` started again at 1."""
        return [
            r
            for r in self.results
            if r.get("iterations_since_restore") == 1 and r["training_iteration"] > 1
        ]

    def state(self, *, max_epochs: int) -> str:
        if self.status == "ERROR" or self.not_retried:
            return "FAIL"
        assert self.status == "TERMINATED", f"trial {self.trial_id} ended {self.status}"
        last = self.results[-1]["training_iteration"] if self.results else 0
        return "COMPLETE" if last >= max_epochs else "PRUNED"


def read_results(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written right now
            break
    return rows


def tune_trial_dirs(runs_dir: Path, name: str) -> dict[str, Path]:
    """Trial id -> trial directory, as soon as Tune creates them (``train_<id>_...``)."""
    experiment = runs_dir / "ray" / name
    if not experiment.is_dir():
        return {}
    return {
        d.name.split("_")[1]: d
        for d in experiment.iterdir()
        if d.is_dir() and d.name.startswith("train_")
    }


def read_tune(runs_dir: Path, name: str) -> dict[str, TuneTrial]:
    """Every trial of the latest experiment state snapshot, with its result rows."""
    experiment = runs_dir / "ray" / name
    # The newest by the timestamp in the name, as Tune picks it (a resumed sweep's sync
    # rewrites the older files too, so their modification times tell nothing).
    states = sorted(experiment.glob("experiment_state-*.json"))
    assert states, f"no Ray Tune experiment state in {experiment}"
    trials = {}
    for trial_json, runtime_json in json.loads(states[-1].read_text())["trial_data"]:
        trial, runtime = json.loads(trial_json), json.loads(runtime_json)
        directory = experiment / trial["relative_logdir"]
        error = runtime.get("error_filename")
        trials[trial["trial_id"]] = TuneTrial(
            trial_id=trial["trial_id"],
            status=trial["status"],
            config=trial["config"],
            num_failures=int(runtime["num_failures"]),
            directory=directory,
            error_file=directory / error if error else None,
            results=read_results(directory / "result.json"),
        )
    return trials


@dataclass(frozen=True)
class SweepRecords:
    tune: dict[str, TuneTrial]
    client: MlflowClient
    parent: Any  # mlflow Run
    children: list[Any]  # mlflow Runs
    study: optuna.Study

    def runs_of(self, trial_id: str) -> list[Any]:
        return [c for c in self.children if c.data.tags.get("dmlsweep.trial_id") == trial_id]

    def run_of(self, trial_id: str) -> Any:
        (run,) = self.runs_of(trial_id)
        return run

    def history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """(step, value) of a run's metric, in logging order."""
        return [(m.step, m.value) for m in self.client.get_metric_history(run_id, key)]

    def optuna_trial(self, tune_trial: TuneTrial) -> optuna.trial.FrozenTrial:
        """The Optuna trial that sampled this Tune trial's parameters (exactly one)."""
        matches = [
            t
            for t in self.study.get_trials(deepcopy=False)
            if LOST_TAG not in t.user_attrs
            and t.params
            and all(tune_trial.config.get(k) == v for k, v in t.params.items())
        ]
        assert len(matches) == 1, (tune_trial.trial_id, tune_trial.config, matches)
        return matches[0]


def sweep_parent(client: MlflowClient, name: str) -> Any | None:
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = (
        client.search_runs(
            experiments,
            filter_string=f"tags.`dmlsweep.role` = 'sweep' and attributes.run_name = '{name}'",
        )
        if experiments
        else []
    )
    assert len(runs) <= 1, f"{len(runs)} parent runs named {name}"
    return runs[0] if runs else None


def child_runs(client: MlflowClient, parent: Any) -> list[Any]:
    return list(
        client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
            max_results=1000,
        )
    )


def read_records(*, runs_dir: Path, name: str, tracking_uri: str | None = None) -> SweepRecords:
    """The sweep's records; MLflow and Optuna default to the SQLite files under runs_dir."""
    client = MlflowClient(tracking_uri or f"sqlite:///{runs_dir / 'mlflow.db'}")
    parent = sweep_parent(client, name)
    assert parent is not None, f"no MLflow parent run named {name}"
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{runs_dir / 'optuna.db'}")
    return SweepRecords(
        tune=read_tune(runs_dir, name),
        client=client,
        parent=parent,
        children=child_runs(client, parent),
        study=study,
    )


def assert_consistent(
    records: SweepRecords, *, num_samples: int, max_epochs: int, metric: str = "val/score"
) -> dict[str, str]:
    """The end state every fault must leave: ``num_samples`` trials in Tune, each with exactly
    one MLflow child run and one Optuna trial, all three telling the same ending, nothing left
    RUNNING. Runs and Optuna trials of a dead driver that Tune never knew must be marked lost
    and FAIL. Returns trial id -> COMPLETE | PRUNED | FAIL."""
    tune = records.tune
    assert len(tune) == num_samples, sorted(tune)
    states = {tid: t.state(max_epochs=max_epochs) for tid, t in tune.items()}

    # MLflow: one child per trial, its status and state tag the trial's ending.
    assert records.parent.info.status == "FINISHED", records.parent.info.status
    assert not [c.info.run_id for c in records.children if c.info.status == "RUNNING"]
    per_trial = Counter(c.data.tags.get("dmlsweep.trial_id") for c in records.children)
    assert {tid: n for tid, n in per_trial.items() if n > 1} == {}, "duplicate child runs"
    for child in records.children:
        if child.data.tags.get("dmlsweep.trial_id") not in tune:
            assert LOST_TAG in child.data.tags and child.info.status == "FAILED", child
    for tid, state in states.items():
        run = records.run_of(tid)
        assert run.info.status == MLFLOW_STATUS[state], (tid, state, run.info.status)
        assert run.data.tags.get("dmlsweep.state") == state, (tid, run.data.tags)

    # Optuna: every trial told; the ones Tune never knew marked lost and FAIL.
    trials = records.study.get_trials(deepcopy=False)
    assert [t.number for t in trials if t.state.name in ("RUNNING", "WAITING")] == []
    lost = [t for t in trials if LOST_TAG in t.user_attrs]
    assert all(t.state.name == "FAIL" for t in lost), lost
    assert len(trials) - len(lost) == num_samples, (len(trials), len(lost))
    for tid, state in states.items():
        ot = records.optuna_trial(tune[tid])
        assert ot.state.name == state, (tid, state, ot.state.name)
        if state == "COMPLETE":
            assert ot.value == tune[tid].results[-1][metric], (tid, ot.value)
    return states


def epoch_steps(records: SweepRecords, run_id: str) -> list[int]:
    """Steps at which the run's ``train/epoch`` was logged, in logging order."""
    return [step for step, _ in records.history(run_id, "train/epoch")]


__all__ = [
    "MLFLOW_STATUS",
    "SweepRecords",
    "TuneTrial",
    "assert_consistent",
    "child_runs",
    "epoch_steps",
    "read_records",
    "read_results",
    "read_tune",
    "sweep_parent",
    "tune_trial_dirs",
]
