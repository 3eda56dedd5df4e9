"""The whole tree passes ruff's lint rules and formatting (pyproject.toml's settings)."""

from __future__ import annotations

import shutil
import subprocess

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
