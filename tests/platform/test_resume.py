"""``--resume NAME`` continues a sweep from its stored plan: a contradicting flag is refused, a
larger ``--num-samples`` extends the sweep with new trials of the same study, and a finished
sweep resumed changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from faults.records import assert_consistent, child_runs, read_records, read_tune, sweep_parent
from mlflow.tracking import MlflowClient
from runs_snapshots import snapshot
from support import run_cli

pytestmark = pytest.mark.ray

MAX_EPOCHS = 2


def sweep(tmp_path: Path, ray_address: str, *args: str) -> str:
    proc = run_cli(
        *args, "--runs-dir", str(tmp_path / "runs"), "--address", ray_address, cwd=tmp_path,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, ray_address: str) -> Path:
    """A finished 4-trial baseline sweep named ``done`` (its best models logged)."""
    tmp_path = tmp_path_factory.mktemp("resume")
    sweep(
        tmp_path, ray_address, "--space", "baseline", "--num-samples", "4", "--max-epochs",
        str(MAX_EPOCHS), "--name", "done",
    )  # fmt: skip
    return tmp_path


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--seed", "3"], ["--seed 3 contradicts", "(--seed 0)"]),
        (["--max-epochs", "5"], ["--max-epochs 5 contradicts", f"(--max-epochs {MAX_EPOCHS})"]),
        (["--space", "quadratic"], ["--space quadratic contradicts", "(--space baseline)"]),
        (["--scheduler", "fifo"], ["--scheduler fifo contradicts", "(--scheduler asha)"]),
        (["--set", "batch_size=30"], ["--set batch_size=30 contradicts", "batch_size = 60"]),
        (["--set", "lr=0.1"], ["--set lr", "searched by the sweep's space"]),
        (["--num-samples", "3"], ["--num-samples 3 is below the sweep's 4", "not shortened"]),
    ],
    ids=lambda v: "_".join(v) if isinstance(v, list) and v[0].startswith("-") else None,
)
def test_a_flag_that_contradicts_the_plan_is_refused(
    finished: Path, ray_address: str, flags: list[str], words: list[str]
) -> None:
    runs_dir = finished / "runs"
    before = snapshot(runs_dir)
    proc = run_cli(
        "--resume", "done", *flags, "--runs-dir", str(runs_dir), "--address", ray_address,
        cwd=finished,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    for word in words:
        assert word in proc.stderr, proc.stderr
    assert snapshot(runs_dir) == before


def test_a_flag_that_agrees_with_the_plan_is_accepted(finished: Path, ray_address: str) -> None:
    out = sweep(finished, ray_address, "--resume", "done", "--seed", "0", "--set", "noise=none")
    assert "is finished: nothing to resume" in out


def test_a_finished_sweep_resumed_twice_changes_nothing(finished: Path, ray_address: str) -> None:
    runs_dir = finished / "runs"
    before = snapshot(runs_dir)
    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    parent = sweep_parent(client, "done")
    assert parent is not None
    children = child_runs(client, parent)
    models = [c for c in children if c.data.tags.get("dmlsweep.model_logged")]
    complete = [c for c in children if c.info.status == "FINISHED"]
    assert models and len(models) == min(3, len(complete))  # --log-models' default: 3 best
    for _ in range(2):
        out = sweep(finished, ray_address, "--resume", "done")
        assert "is finished: nothing to resume" in out and "sweep done finished" in out
    assert snapshot(runs_dir) == before  # runs, statuses, end times, tags, metrics, artifacts


def test_a_sweep_extended_from_4_to_6_trials(tmp_path: Path, ray_address: str) -> None:
    common = ("--max-epochs", str(MAX_EPOCHS))
    sweep(tmp_path, ray_address, "--space", "quadratic", "--num-samples", "4", "--name", "grow",
          *common)  # fmt: skip
    out = sweep(tmp_path, ray_address, "--resume", "grow", "--num-samples", "6")
    assert "sweep grow (resumed): 6 trials" in out
    runs_dir = tmp_path / "runs"
    records = read_records(runs_dir=runs_dir, name="grow")
    first, extension = read_tune(runs_dir, "grow"), read_tune(runs_dir, "grow.2")
    assert (len(first), len(extension)) == (4, 2)
    assert not first.keys() & extension.keys()
    both = type(records)(**{**records.__dict__, "tune": {**first, **extension}})
    assert_consistent(both, num_samples=6, max_epochs=MAX_EPOCHS)  # 6 in Tune, Optuna, MLflow
    trials = records.study.get_trials(deepcopy=False)
    points = {tuple(sorted(t.params.items())) for t in trials}
    assert len(trials) == len(points) == 6  # no trial twice, no point sampled twice
    # the plan stored with the sweep now says 6, so a later resume continues the 6
    out = sweep(tmp_path, ray_address, "--resume", "grow")
    assert "is finished: nothing to resume" in out
    counts = re.search(r"sweep grow finished: (\d+) complete, (\d+) pruned, (\d+) failed", out)
    assert counts is not None and sum(map(int, counts.groups())) == 6, out[-2000:]
