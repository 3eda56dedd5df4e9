"""The sweep's driver is SIGKILLed mid-sweep, then ``--resume NAME`` continues it.

The Ray cluster outlives the driver (the faults' head, joined with ``--address``). The kill
comes at the worst moment: a trial has ended and the dead driver has told Optuna (COMPLETE), and
maybe MLflow (its logging thread lags), but Tune has not saved its experiment state since, so
the state the resume starts from still holds that trial RUNNING at its last epoch; meanwhile
another trial is mid-way. After the resume: Tune holds ``num_samples`` trials; the trials that
had finished were not run again (their MLflow histories and Optuna values unchanged); the trial
caught mid-way continued from its checkpoint (the epoch counter goes on, epoch 1 is never
logged twice); every trial has one MLflow run; Tune, Optuna and MLflow agree and nothing is
left RUNNING.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import optuna
import pytest
from faults.cluster import StartDriver
from faults.records import assert_consistent, child_runs, read_records, sweep_parent
from mlflow.tracking import MlflowClient
from ray_nodes import wait_until
from support import run_cli

pytestmark = pytest.mark.ray

NAME = "driver-death"
NUM_SAMPLES = 4  # three trial ends to catch the moment at
MAX_EPOCHS = 3
# Long epochs keep the race window open: Tune saves its state at each trial's checkpoint, so
# the state lags a trial's end until the other running trial's next epoch. They also outlast
# a second trial actor's start on a busy 2-core machine (3-4 s, importing torch): with shorter
# trials the first actor, reused, runs every trial in turn and no trial is ever caught mid-way.
SECONDS_PER_EPOCH = 2.0


def saved_trials(runs_dir: Path) -> dict[str, tuple[str, int]]:
    """Trial id -> (status, last epoch) in Tune's newest saved experiment state (what a resume
    starts from); empty while none is saved or one is being written."""
    states = sorted((runs_dir / "ray" / NAME).glob("experiment_state-*.json"))
    try:
        data = json.loads(states[-1].read_text())["trial_data"] if states else []
    except (OSError, ValueError):
        return {}
    trials = {}
    for trial_json, runtime_json in data:
        trial, runtime = json.loads(trial_json), json.loads(runtime_json)
        epoch = (runtime.get("last_result") or {}).get("training_iteration", 0)
        trials[trial["trial_id"]] = (trial["status"], int(epoch))
    return trials


def optuna_states(runs_dir: Path) -> Counter[str]:
    """How many of the study's trials are in each state (read with sqlite3: it is polled)."""
    path = runs_dir / "optuna.db"
    if not path.is_file():
        return Counter()
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            rows = db.execute(
                "SELECT t.state FROM trials t JOIN studies s ON t.study_id = s.study_id"
                " WHERE s.study_name = ?",
                (NAME,),
            ).fetchall()
    except sqlite3.Error:  # the schema not made yet, or locked
        return Counter()
    return Counter(state for (state,) in rows)


def test_resume_after_the_driver_is_killed(
    ray_address: str, drivers: StartDriver, tmp_path: Path, runs_dir: Path
) -> None:
    where = ("--address", ray_address, "--runs-dir", str(runs_dir))
    driver = drivers(
        *f"--space quadratic --name {NAME} --num-samples {NUM_SAMPLES} --max-epochs {MAX_EPOCHS}"
        f" --scheduler fifo --set seconds_per_epoch={SECONDS_PER_EPOCH} --log-models 0".split(),
        *where,
    )

    def worst_moment() -> tuple[set[str], set[str]] | None:
        """(raced, mid-way): trials ended in Optuna but RUNNING at their last epoch in the saved
        state, and trials RUNNING there at an epoch short of the last; both non-empty."""
        saved = saved_trials(runs_dir)
        ended = sum(1 for status, _ in saved.values() if status == "TERMINATED")
        if optuna_states(runs_dir)["COMPLETE"] <= ended:
            return None
        raced = {t for t, (s, e) in saved.items() if s == "RUNNING" and e == MAX_EPOCHS}
        midway = {t for t, (s, e) in saved.items() if s == "RUNNING" and 1 <= e < MAX_EPOCHS}
        return (raced, midway) if raced and midway else None

    def caught() -> tuple[set[str], set[str]] | None:
        """The worst moment, confirmed with the driver frozen (SIGSTOP): Tune cannot save its
        state between the check and the kill."""
        if worst_moment() is None:
            return None
        driver.pause()
        moment = worst_moment()
        if moment is None:
            driver.resume()
        return moment

    try:
        raced, midway = wait_until(
            caught, timeout=240, interval=0.02, driver=driver, what="the worst moment"
        )
    except AssertionError as exc:  # not the failure under test: the moment never came
        pytest.fail(f"could not catch the moment to kill the driver: {exc}")
    driver.kill()

    # What the dead driver left behind.
    saved = saved_trials(runs_dir)
    assert {saved[t][0] for t in raced} == {"RUNNING"}, saved
    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    parent = sweep_parent(client, NAME)
    assert parent is not None
    before = {
        c.data.tags["dmlsweep.trial_id"]: (
            c.info.status,
            [(m.step, m.value) for m in client.get_metric_history(c.info.run_id, "val/score")],
        )
        for c in child_runs(client, parent)
    }
    finished = raced | {t for t, (status, _) in saved.items() if status == "TERMINATED"}
    study = optuna.load_study(study_name=NAME, storage=f"sqlite:///{runs_dir / 'optuna.db'}")
    values_before = {t.number: t.value for t in study.trials if t.state.name == "COMPLETE"}
    assert len(values_before) == len(finished), (values_before, finished)

    resumed = run_cli("--resume", NAME, *where, cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-5000:]
    assert f"sweep {NAME} (resumed)" in resumed.stdout

    records = read_records(runs_dir=runs_dir, name=NAME)
    states = assert_consistent(records, num_samples=NUM_SAMPLES, max_epochs=MAX_EPOCHS)
    assert set(states.values()) == {"COMPLETE"}, states
    assert "dmlsweep.resumed" in records.parent.data.tags

    for tid in finished:  # not run again; what the dead driver had not logged is logged now
        run = records.run_of(tid)
        history = sorted(records.history(run.info.run_id, "val/score"))
        assert records.tune[tid].epochs == list(range(1, MAX_EPOCHS + 1)), tid
        assert history == [
            (r["training_iteration"], r["val/score"]) for r in records.tune[tid].results
        ]
        assert set(before[tid][1]) <= set(history), (tid, before[tid][1])
    after = {t.number: t for t in records.study.trials}
    for number, value in values_before.items():
        assert after[number].state.name == "COMPLETE" and after[number].value == value

    for tid in midway:  # continued from a checkpoint, not from epoch 1
        trial = records.tune[tid]
        restored = trial.restored_rows()
        assert restored, f"trial {tid} did not restart from a checkpoint: {trial.results}"
        assert restored[0]["training_iteration"] > saved[tid][1], (saved[tid], trial.epochs)
        run_id = records.run_of(tid).info.run_id
        steps = Counter(step for step, _ in records.history(run_id, "train/epoch"))
        assert sorted(steps) == list(range(1, MAX_EPOCHS + 1)), (tid, steps)
        assert steps[1] == 1, (tid, steps)
        # The objective's own epoch counter, restored from the checkpoint, goes on too.
        assert [r["train/epoch"] for r in trial.results] == [float(e) for e in trial.epochs]
