"""Ctrl-C and kills of the driver of a sweep on its own local Ray (no ``--address``).

- SIGINT mid-sweep: the driver exits 130 printing ``--resume NAME`` (not Tune's
  ``Tuner.restore``), leaves the running trials' MLflow runs KILLED with ``dmlsweep.state``
  INTERRUPTED and their Optuna trials RUNNING (never FAIL); ``--resume NAME`` then finishes the
  sweep with Tune, Optuna and MLflow agreeing on every trial.
- However the driver ends (SIGINT, SIGTERM, a second SIGINT, SIGKILL), no process of the Ray
  instance it started is left a few seconds later: counted by the driver's own descendants,
  recorded while it ran (process id and start time), not by name.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil
import pytest
from faults.cluster import Driver, StartDriver
from faults.records import assert_consistent, child_runs, read_records, read_tune, sweep_parent
from mlflow.tracking import MlflowClient
from ray_nodes import wait_until
from support import run_cli

pytestmark = pytest.mark.ray

NUM_SAMPLES = 3
MAX_EPOCHS = 3
SLOW = ("--set", "seconds_per_epoch=1.0")  # long epochs: the signal comes mid-trial
GONE_WITHIN = 10.0  # seconds after the driver ends


def start(drivers: StartDriver, runs_dir: Path, name: str) -> Driver:
    return drivers(
        "--space", "quadratic", "--num-samples", str(NUM_SAMPLES), "--max-epochs",
        str(MAX_EPOCHS), "--runs-dir", str(runs_dir), "--name", name, "--log-models", "0",
        *SLOW,
    )  # fmt: skip


def ray_processes(driver: Driver) -> list[psutil.Process]:
    """The driver's descendants once its local Ray runs a trial: the Ray instance it started
    (and the reaper, which must go too)."""
    parent = psutil.Process(driver.process.pid)
    wait_until(
        lambda: any("ImplicitFunc" in " ".join(_cmdline(p)) for p in _tree(parent)),
        timeout=120,
        what="a trial running",
        driver=driver,
    )
    return _tree(parent)


def _tree(parent: psutil.Process) -> list[psutil.Process]:
    try:
        return parent.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []


def left_over(processes: list[psutil.Process]) -> list[str]:
    """The recorded processes still there (``is_running`` compares start times)."""
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{process.pid} {' '.join(_cmdline(process))[:80] or process.name()}")
        except psutil.NoSuchProcess:
            pass
    return alive


def wait_for_first_epoch(runs_dir: Path, name: str) -> None:
    def reported() -> bool:
        try:
            return any(t.results for t in read_tune(runs_dir, name).values())
        except (AssertionError, OSError, ValueError):
            return False

    wait_until(reported, timeout=120, what="a first epoch reported")


def assert_all_gone(processes: list[psutil.Process], ended: float) -> None:
    deadline = ended + GONE_WITHIN
    while left_over(processes) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left_over(processes), left_over(processes)


def test_sigint_stops_cleanly_and_resume_finishes_the_sweep(
    drivers: StartDriver, runs_dir: Path, tmp_path: Path
) -> None:
    name = "interrupted"
    driver = start(drivers, runs_dir, name)
    processes = ray_processes(driver)
    assert len(processes) >= 5, [p.name() for p in processes]  # gcs, raylet, agents, a worker
    wait_for_first_epoch(runs_dir, name)
    driver.process.send_signal(signal.SIGINT)
    code = driver.wait(timeout=120)
    ended = time.monotonic()
    output = driver.output()
    assert code == 130, output[-3000:]
    assert f"--resume {name}" in output
    assert "Tuner.restore" not in output and "Traceback" not in output, output[-3000:]
    assert_all_gone(processes, ended)

    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    parent = sweep_parent(client, name)
    assert parent is not None
    assert parent.info.status == "KILLED" and parent.data.tags["dmlsweep.state"] == "INTERRUPTED"
    children = child_runs(client, parent)
    interrupted = [c for c in children if c.data.tags.get("dmlsweep.state") == "INTERRUPTED"]
    assert interrupted, [(c.info.status, c.data.tags.get("dmlsweep.state")) for c in children]
    assert all(c.info.status == "KILLED" for c in interrupted)
    assert not [c for c in children if c.info.status in ("RUNNING", "FAILED")]
    study = read_records(runs_dir=runs_dir, name=name).study
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    assert "RUNNING" in states and "FAIL" not in states, states

    resumed = run_cli("--resume", name, "--runs-dir", str(runs_dir), cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    records = read_records(runs_dir=runs_dir, name=name)
    assert_consistent(records, num_samples=NUM_SAMPLES, max_epochs=MAX_EPOCHS)
    assert "dmlsweep.state" not in records.parent.data.tags  # running again, then finished
    for run in interrupted:  # each interrupted trial went on in the same run
        after = client.get_run(run.info.run_id)
        assert after.data.tags["dmlsweep.state"] in ("COMPLETE", "PRUNED")


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT twice", "SIGKILL"])
def test_no_ray_process_outlives_the_driver(drivers: StartDriver, runs_dir: Path, how: str) -> None:
    driver = start(drivers, runs_dir, "ended")
    processes = ray_processes(driver)
    if how == "SIGTERM":
        driver.process.send_signal(signal.SIGTERM)
    elif how == "SIGINT twice":
        driver.process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        driver.process.send_signal(signal.SIGINT)
    else:
        driver.process.kill()
    code = driver.wait(timeout=120)
    ended = time.monotonic()
    assert code == (-9 if how == "SIGKILL" else 130), driver.output()[-3000:]
    assert_all_gone(processes, ended)
