"""The command line: fast help, dry runs, clear errors for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import REPO_ROOT, run_cli

HEAVY = ("ray", "torch", "mlflow", "optuna")


def test_help_imports_no_heavy_library() -> None:
    """``--help`` must answer at once: it may not import Ray, torch, MLflow or Optuna."""
    code = (
        "import sys; sys.argv = ['dmlsweep', '--help']\n"
        "from dmlsweep.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    ).stdout
    assert "--space" in out and "--gpus-per-trial" in out
    assert "HEAVY []" in out


def test_dry_run_prints_the_space_and_writes_nothing(tmp_path: Path) -> None:
    proc = run_cli("--space", "baseline", "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "objective: baseline" in proc.stdout
    assert "parameter lr: float" in proc.stdout
    assert not (tmp_path / "dmlsweep-runs").exists()


def test_list_spaces(tmp_path: Path) -> None:
    proc = run_cli("--list-spaces", cwd=tmp_path)
    assert proc.returncode == 0
    assert "baseline" in proc.stdout and "quadratic" in proc.stdout


def test_malformed_space_fails_clearly_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "objective: baseline\nmetric: val/map_at_r\nmode: max\n"
        "settings: {max_epochs: 2}\nparameters:\n  lr: {type: float, low: 1.0, high: 0.1}\n"
    )
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "keep.txt").write_text("earlier results")
    proc = run_cli("--space", str(bad), "--runs-dir", str(runs), cwd=tmp_path)
    assert proc.returncode == 2
    assert "parameters.lr" in proc.stderr and "must be < high" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in runs.iterdir()) == ["keep.txt"]  # nothing written


def test_unknown_space_and_objective(tmp_path: Path) -> None:
    proc = run_cli("--space", "nope", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown space 'nope'" in proc.stderr
    space = tmp_path / "s.yaml"
    space.write_text(
        "objective: ghost\nmetric: m\nmode: max\nparameters: {x: {type: float, low: 0, high: 1}}\n"
    )
    proc = run_cli("--space", str(space), cwd=tmp_path)
    assert proc.returncode == 2 and "unknown objective 'ghost'" in proc.stderr


def test_database_urls_may_come_from_the_environment(monkeypatch) -> None:
    from dmlsweep.cli import build_parser

    monkeypatch.setenv("DMLSWEEP_OPTUNA_STORAGE", "postgresql+psycopg2://u:p@db/optuna")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    args = build_parser().parse_args(["--space", "baseline"])
    assert args.storage == "postgresql+psycopg2://u:p@db/optuna"
    assert args.tracking_uri == "http://mlflow:5000"
    assert build_parser().parse_args(["--storage", "sqlite:///x.db"]).storage == "sqlite:///x.db"
