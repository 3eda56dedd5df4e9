"""Runs dirs: an unusable one is refused with a message; a damaged one is refused on resume
naming what is missing, nothing written. The unfinished sweep these use
was stopped by ``--time-budget`` (a clean, resumable stop, exit 0)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from support import run_cli

pytestmark = pytest.mark.ray

NAME = "budget"
NUM_SAMPLES = 4
MAX_EPOCHS = 3


def files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def unfinished(ray_address: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep stopped by its time budget mid-way: some trials unfinished or never started."""
    workdir = tmp_path_factory.mktemp("budget")
    runs_dir = workdir / "runs"
    proc = run_cli(
        "--space", "quadratic", "--name", NAME, "--num-samples", str(NUM_SAMPLES),
        "--max-epochs", str(MAX_EPOCHS), "--scheduler", "fifo", "--set", "seconds_per_epoch=1.0",
        "--log-models", "0", "--runs-dir", str(runs_dir), "--address", ray_address,
        "--time-budget", "4", cwd=workdir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "the time budget (4 s) is spent" in proc.stderr, proc.stderr[-3000:]
    assert f"its time budget is spent; continue with: python sweeps/launch.py --resume {NAME}" in (
        proc.stdout
    )
    return runs_dir


def copy_of(runs_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copied-runs"
    shutil.copytree(runs_dir, copy)
    return copy


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("optuna.db", ["its Optuna study is missing from", "optuna.db"]),
        ("mlflow.db", ["no sweep named 'budget'", "its Ray state is at", "MLflow store"]),
        ("ray", ["has no Ray Tune experiment state"]),
    ],
)
def test_a_damaged_runs_dir_is_refused_on_resume_naming_what_is_missing(
    unfinished: Path, tmp_path: Path, damage: str, words: list[str]
) -> None:
    runs_dir = copy_of(unfinished, tmp_path)
    target = runs_dir / damage
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    for suffix in ("-wal", "-shm"):
        (runs_dir / f"{damage}{suffix}").unlink(missing_ok=True)
    before = files(runs_dir)
    proc = run_cli("--resume", NAME, "--runs-dir", str(runs_dir), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for word in words:
        assert word in proc.stderr, proc.stderr
    assert set(files(runs_dir)) <= set(before) | {"mlflow.db-wal", "mlflow.db-shm"}
    assert not (runs_dir / damage).exists()  # nothing made up in its place


@pytest.mark.parametrize("kind", ["a file", "below a file", "unmakeable"])
def test_an_unusable_runs_dir_is_refused(tmp_path: Path, kind: str) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    runs_dir = {
        "a file": afile,
        "below a file": afile / "runs",
        "unmakeable": Path("/proc/dmlsweep-runs"),  # refused even to root
    }[kind]
    for dry in ([], ["--dry-run"]):
        proc = run_cli(
            "--space", "quadratic", "--runs-dir", str(runs_dir), "--num-samples", "1", *dry,
            cwd=tmp_path,
        )  # fmt: skip
        if kind == "unmakeable" and dry:
            continue  # the plan cannot know it without trying; the run tries and says so
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert f"--runs-dir {runs_dir}" in proc.stderr and "Traceback" not in proc.stderr
    assert afile.read_text() == "keep me\n"
