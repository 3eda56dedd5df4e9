"""A trial that raises, and one whose metric turns NaN, end FAILED everywhere while the sweep goes
on: Tune ERROR, Optuna FAIL, MLflow FAILED with the exception in ``dmlsweep.error`` and the
error file as an artifact; the other trials complete and the CLI exits 0.

The sweep runs with ``--max-retries 1``: the raising trial (a RuntimeError, which a retry might
not repeat) fails twice, the retry restored from the checkpoint of its last good epoch (no epoch
reported twice), and ends FAILED with one MLflow run; the diverged one (FloatingPointError,
which a retry would repeat) is not retried: its last result reports the error and ends it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from faults.records import SweepRecords, TuneTrial, assert_consistent, epoch_steps, read_records
from support import run_cli

pytestmark = pytest.mark.ray

MAX_EPOCHS = 4
NUM_SAMPLES = 4
RETRIES = 1
# Which trials fail is drawn by Optuna's seeded random sampler; seed 5 draws, in order
# (the first trial takes the defaults): clean, raise, NaN, clean.
SEED = 5
SPACE = f"""\
objective: quadratic
metric: val/score
mode: max
settings: {{max_epochs: {MAX_EPOCHS}, seconds_per_epoch: 0.2}}
parameters:
  x: {{type: float, low: -1.0, high: 1.0, default: 0.0}}
  y: {{type: float, low: -1.0, high: 1.0, default: 0.0}}
  fail_at_epoch: {{type: categorical, choices: [0, 2], default: 0}}
  nan_at_epoch: {{type: categorical, choices: [0, 3], default: 0}}
"""
RAISED = "RuntimeError: quadratic: injected failure at epoch 2"
DIVERGED = "FloatingPointError: non-finite metrics: {'val/score': nan}"


def fault_of(trial: TuneTrial) -> str:
    """raise | nan | none: what the trial's sampled parameters make it do."""
    if trial.config["fail_at_epoch"]:
        return "raise"
    return "nan" if trial.config["nan_at_epoch"] else "none"


@dataclass(frozen=True)
class FaultySweep:
    returncode: int
    stdout: str
    stderr: str
    records: SweepRecords
    states: dict[str, str]  # trial id -> COMPLETE | PRUNED | FAIL

    def trials(self, fault: str) -> list[TuneTrial]:
        return [t for t in self.records.tune.values() if fault_of(t) == fault]


@pytest.fixture(scope="module")
def faulty_sweep(
    ray_address: str,
    make_runs_dir: Callable[[Path], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> FaultySweep:
    workdir = tmp_path_factory.mktemp("faulty")
    runs_dir = make_runs_dir(workdir / "runs")
    (workdir / "faulty.yaml").write_text(SPACE)
    proc = run_cli(
        *f"--name faulty --searcher random --scheduler fifo --seed {SEED}"
        f" --num-samples {NUM_SAMPLES} --max-retries {RETRIES} --log-models 0".split(),
        *("--space", str(workdir / "faulty.yaml"), "--address", ray_address),
        *("--runs-dir", str(runs_dir)),
        cwd=workdir,
        timeout=400,
    )
    records = read_records(runs_dir=runs_dir, name="faulty")
    states = assert_consistent(records, num_samples=NUM_SAMPLES, max_epochs=MAX_EPOCHS)
    return FaultySweep(
        returncode=proc.returncode,
        stdout=proc.stdout,
        stderr=proc.stderr,
        records=records,
        states=states,
    )


def test_the_sweep_goes_on_and_exits_zero(faulty_sweep: FaultySweep) -> None:
    sweep = faulty_sweep
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    faults = Counter(fault_of(t) for t in sweep.records.tune.values())
    assert faults == {"none": 2, "raise": 1, "nan": 1}, f"the seed no longer draws: {faults}"
    for trial in sweep.records.tune.values():
        assert sweep.states[trial.trial_id] == ("COMPLETE" if fault_of(trial) == "none" else "FAIL")
    assert "2 complete, 0 pruned, 2 failed" in sweep.stdout
    assert sweep.records.parent.data.metrics["trials/error"] == 1  # the raising one
    assert sweep.records.parent.data.metrics["trials/terminated"] == 3  # the diverged one too


@pytest.mark.parametrize(
    ("fault", "message", "epochs"),
    [("raise", RAISED, [1]), ("nan", DIVERGED, [1, 2])],
    ids=["raise", "nan"],
)
def test_a_failing_trial_fails_in_tune_optuna_and_mlflow(
    faulty_sweep: FaultySweep, fault: str, message: str, epochs: list[int], tmp_path: Path
) -> None:
    sweep = faulty_sweep
    trials = sweep.trials(fault)
    assert trials
    for trial in trials:
        assert trial.epochs == epochs
        if fault == "raise":
            # Tune: ERROR after the first attempt and every retry, each from the checkpoint
            # of the last good epoch (so no epoch is reported twice).
            assert trial.status == "ERROR"
            assert trial.num_failures == RETRIES + 1, trial.num_failures
            assert trial.error_file is not None and message in trial.error_file.read_text()
        else:  # not retried: ended by its own report of the error
            assert trial.status == "TERMINATED" and trial.num_failures == 0
            assert trial.not_retried is not None and message in trial.not_retried
        assert sweep.records.optuna_trial(trial).state.name == "FAIL"
        run = sweep.records.run_of(trial.trial_id)
        assert run.info.status == "FAILED"
        assert run.data.tags["dmlsweep.state"] == "FAIL"
        assert message in run.data.tags["dmlsweep.error"]
        assert epoch_steps(sweep.records, run.info.run_id) == epochs
        if fault == "raise":  # Tune's error file (a not-retried error is in the tag only)
            artifact = sweep.records.client.download_artifacts(
                run.info.run_id, "error/error.txt", str(tmp_path)
            )
            assert message in Path(artifact).read_text()


def test_the_healthy_trials_complete(faulty_sweep: FaultySweep) -> None:
    sweep = faulty_sweep
    for trial in sweep.trials("none"):
        assert trial.status == "TERMINATED" and trial.num_failures == 0
        assert trial.epochs == list(range(1, MAX_EPOCHS + 1))
        run = sweep.records.run_of(trial.trial_id)
        assert run.info.status == "FINISHED" and "dmlsweep.error" not in run.data.tags
        assert epoch_steps(sweep.records, run.info.run_id) == trial.epochs
        assert sweep.records.optuna_trial(trial).value == trial.results[-1]["val/score"]
