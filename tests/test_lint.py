"""The whole tree passes ruff's lint rules and formatting, and the platform and the objectives
mypy's type checks (pyproject.toml's settings)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from support import REPO_ROOT, VENV_BIN


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(command: list[str]) -> None:
    ruff = shutil.which("ruff", path=str(VENV_BIN))
    assert ruff, "ruff is missing: it is in the dev extra (pip install -e '.[dev]')"
    proc = subprocess.run(
        [ruff, *command, "."], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]


def test_mypy(tmp_path: Path) -> None:
    mypy = shutil.which("mypy", path=str(VENV_BIN))
    assert mypy, "mypy is missing: it is in the dev extra (pip install -e '.[dev]')"
    proc = subprocess.run(
        [mypy, "--cache-dir", str(tmp_path / "mypy-cache")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
