"""A trial's worker process is SIGKILLed mid-trial: Ray restarts the trial from its last
checkpoint (``--max-retries``, default 2) and it completes; its epochs go on from the checkpoint
instead of starting over, and it keeps one MLflow run."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path

import pytest
from faults.cluster import StartDriver
from faults.records import assert_consistent, read_records, read_results, tune_trial_dirs
from ray_nodes import alive, is_ray_worker, wait_until

pytestmark = pytest.mark.ray

NAME = "worker-death"
NUM_SAMPLES = 2
MAX_EPOCHS = 5


def test_a_killed_trial_worker_is_retried_from_its_checkpoint(
    ray_address: str, drivers: StartDriver, runs_dir: Path
) -> None:
    driver = drivers(
        *f"--space quadratic --name {NAME} --num-samples {NUM_SAMPLES} --max-epochs {MAX_EPOCHS}"
        " --scheduler fifo --set seconds_per_epoch=0.5 --log-models 0".split(),
        *("--address", ray_address, "--runs-dir", str(runs_dir)),
    )

    def midway_trial() -> tuple[str, int, int] | None:
        """(trial id, worker pid, epochs) of a trial that has checkpointed and has epochs to go
        (two, lest it finish before the kill lands)."""
        for trial_id, directory in tune_trial_dirs(runs_dir, NAME).items():
            rows = read_results(directory / "result.json")
            if 1 <= len(rows) <= MAX_EPOCHS - 2 and is_ray_worker(rows[-1]["pid"]):
                return trial_id, int(rows[-1]["pid"]), len(rows)
        return None

    victim, pid, epochs_done = wait_until(
        midway_trial, timeout=180, interval=0.1, driver=driver, what="a trial mid-way"
    )
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not alive(pid), timeout=10, what=f"worker {pid} to die")
    assert driver.wait(timeout=300) == 0, driver.output()[-4000:]

    records = read_records(runs_dir=runs_dir, name=NAME)
    states = assert_consistent(records, num_samples=NUM_SAMPLES, max_epochs=MAX_EPOCHS)
    assert set(states.values()) == {"COMPLETE"}, states

    trial = records.tune[victim]
    assert trial.num_failures == 1
    pids = [r["pid"] for r in trial.results]
    assert pid in pids and pids[-1] != pid  # finished by another worker
    restored = trial.restored_rows()
    assert len(restored) == 1, trial.results
    # Restarted after the last epoch it checkpointed, not from scratch.
    assert restored[0]["pid"] != pid and restored[0]["training_iteration"] > epochs_done
    steps = Counter(
        step for step, _ in records.history(records.run_of(victim).info.run_id, "train/epoch")
    )
    assert sorted(steps) == list(range(1, MAX_EPOCHS + 1)) and steps[1] == 1, steps
    assert [r["train/epoch"] for r in trial.results] == [float(e) for e in trial.epochs]
