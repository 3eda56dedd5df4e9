"""Sweeps started together: on a fresh runs dir all of them start and finish (the stores are
set up one driver at a time); two of the same name: exactly one runs, the other is refused
with the resume hint."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from support import CLI_URL_VARIABLES, REPO_ROOT

pytestmark = pytest.mark.ray


def start_all(names: list[str], *, runs_dir: Path, ray_address: str) -> list[tuple[int, str]]:
    """Start one driver per name at the same moment; (exit status, output) of each."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in CLI_URL_VARIABLES}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(REPO_ROOT / "sweeps" / "launch.py"),
                "--space",
                "quadratic",
                "--name",
                name,
                "--num-samples",
                "1",
                "--max-epochs",
                "1",
                "--log-models",
                "0",
                "--runs-dir",
                str(runs_dir),
                "--address",
                ray_address,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=runs_dir.parent,
        )  # fmt: skip
        for name in names
    ]
    return [(p.wait(timeout=300), p.stdout.read() if p.stdout else "") for p in processes]


# Tune logs (with a traceback) an experiment-state upload that raced one of its own temporary
# files on a busy machine, and writes the state again at its next checkpoint: not a failure.
_TUNE_SYNC_RETRY = re.compile(
    r"ERROR experiment_state\.py:\d+ -- Saving experiment state to storage at .*? failed with "
    r"exception: \n.*?\n(?=\d{4}-\d\d-\d\d |\Z)",  # up to Ray's next log line
    re.S,
)


def without_tune_sync_retries(output: str) -> str:
    return _TUNE_SYNC_RETRY.sub("", output)


def test_four_sweeps_start_together_on_a_fresh_runs_dir(ray_address: str, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    names = [f"together-{i}" for i in range(4)]
    ended = start_all(names, runs_dir=runs_dir, ray_address=ray_address)
    for code, output in ended:
        assert code == 0, output[-3000:]
        assert "Traceback" not in without_tune_sync_retries(output), output[-3000:]
    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("dmlsweep-quadratic")
    parents = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`dmlsweep.role` = 'sweep'"
    )
    assert sorted(r.info.run_name for r in parents) == names
    assert {r.info.status for r in parents} == {"FINISHED"}
    storage = f"sqlite:///{runs_dir / 'optuna.db'}"
    assert sorted(optuna.get_all_study_names(storage)) == names
    assert not list(runs_dir.glob("*.lock"))  # each driver removed its lock


def test_two_sweeps_of_one_name_one_runs(ray_address: str, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    ended = start_all(["twin", "twin"], runs_dir=runs_dir, ray_address=ray_address)
    codes = sorted(code for code, _ in ended)
    assert codes == [0, 2], [output[-2000:] for _, output in ended]
    refused = next(output for code, output in ended if code == 2)
    assert "--resume twin" in refused and "Traceback" not in refused, refused
    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    parents = client.search_runs(
        [client.get_experiment_by_name("dmlsweep-quadratic").experiment_id],
        filter_string="tags.`dmlsweep.role` = 'sweep'",
    )
    assert [r.info.run_name for r in parents] == ["twin"]
