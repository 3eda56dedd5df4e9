"""The MLflow tracking server goes down mid-sweep and comes back on the same address: training
goes on meanwhile, and at the end every epoch of every trial that Tune recorded is in MLflow
(same steps, same values), with the usual one run per trial and consistent statuses."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from faults.cluster import MlflowServer, StartDriver
from faults.records import assert_consistent, read_records, read_results, tune_trial_dirs
from ray_nodes import wait_until

pytestmark = pytest.mark.ray

NAME = "outage"
NUM_SAMPLES = 4
MAX_EPOCHS = 4
OUTAGE_EPOCHS = 4  # epochs Tune must record while the server is down


def tune_epochs(runs_dir: Path) -> int:
    trials = tune_trial_dirs(runs_dir, NAME).values()
    return sum(len(read_results(d / "result.json")) for d in trials)


def test_metrics_logged_during_a_tracking_outage_reach_mlflow(
    ray_address: str, mlflow_server: MlflowServer, drivers: StartDriver, runs_dir: Path
) -> None:
    driver = drivers(
        *f"--space quadratic --name {NAME} --num-samples {NUM_SAMPLES} --max-epochs {MAX_EPOCHS}"
        " --scheduler fifo --set seconds_per_epoch=0.5 --log-models 0".split(),
        *("--address", ray_address, "--runs-dir", str(runs_dir)),
        *("--tracking-uri", mlflow_server.url),
        # MLflow's client would itself retry a refused call for minutes (7 times, backoff
        # factor 2); without that, the retries under test are the platform's own.
        env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
    )
    wait_until(
        lambda: tune_epochs(runs_dir) >= 1,
        timeout=180,
        interval=0.1,
        driver=driver,
        what="the first epoch",
    )
    mlflow_server.stop()
    down_at = time.time()
    epochs_at_stop = tune_epochs(runs_dir)
    wait_until(
        lambda: tune_epochs(runs_dir) >= epochs_at_stop + OUTAGE_EPOCHS,
        timeout=120,
        driver=driver,
        what=f"{OUTAGE_EPOCHS} epochs trained while MLflow is down",
    )
    mlflow_server.start()  # takes ~10 s: the outage lasts that long at least
    up_at = time.time()
    assert driver.wait(timeout=400) == 0, driver.output()[-4000:]
    assert "tracking calls failed" not in driver.output()

    records = read_records(runs_dir=runs_dir, name=NAME, tracking_uri=mlflow_server.url)
    states = assert_consistent(records, num_samples=NUM_SAMPLES, max_epochs=MAX_EPOCHS)
    assert set(states.values()) == {"COMPLETE"}, states
    during = [
        r for t in records.tune.values() for r in t.results if down_at < r["timestamp"] < up_at
    ]
    assert len(during) >= OUTAGE_EPOCHS - 1, "training paused during the outage"
    for trial in records.tune.values():
        run_id = records.run_of(trial.trial_id).info.run_id
        for key in ("val/score", "train/epoch"):
            expected = [(r["training_iteration"], r[key]) for r in trial.results]
            assert sorted(records.history(run_id, key)) == expected, (trial.trial_id, key)
