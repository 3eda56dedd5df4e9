"""Helpers shared by the tests (importable as ``support``: tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dmlsweep.tracking import MlflowTracking

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


DELETE = object()  # as a value in ``edited``: remove the key


def edited(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of a YAML-like ``document`` with ``a__b=value`` changes applied: ``a__b``
    is the key path (``document["a"]["b"]``); the value ``DELETE`` removes the key."""
    import copy

    doc = copy.deepcopy(document)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = doc
        for key in parents:
            node = node[key]
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return doc


def http_ok(url: str) -> bool:
    """Whether ``url`` answers 200 within 2 s (a server's health probe)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLI_URL_VARIABLES = ("MLFLOW_TRACKING_URI", "DMLSWEEP_OPTUNA_STORAGE")


def run_cli(
    *args: str, cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python sweeps/launch.py ARGS`` as a user would.

    The CLI reads its database URLs from the environment, so those variables are not
    inherited from the test process (where MLflow itself sets one) unless ``env`` gives them.
    """
    inherited = {k: v for k, v in os.environ.items() if k not in CLI_URL_VARIABLES}
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "sweeps" / "launch.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**inherited, **(env or {})},
    )


def local_tracking(tmp_path: Path, *, name: str, max_epochs: int) -> MlflowTracking:
    """A started ``MlflowTracking`` of a quadratic sweep ``name`` on a SQLite store under
    ``tmp_path``, for tests that drive its Tune hooks by hand."""
    from dmlsweep.tracking import MlflowTracking, SweepRecord

    space_file = tmp_path / "space.yaml"
    space_file.write_text("objective: quadratic\n")
    record = SweepRecord(
        name=name,
        experiment="dmlsweep-test",
        objective="quadratic",
        metric="val/score",
        mode="max",
        max_epochs=max_epochs,
        space_file=space_file,
        params={},
    )
    tracking = MlflowTracking(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", record=record)
    tracking.start_parent()
    return tracking
