"""The one seam between an objective and Ray Tune: report an epoch, restore the last state.

Objectives call only these two functions, so they stay testable without Ray and the platform
can change how results travel without touching them.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "state.pt"


def report_epoch(metrics: dict[str, float], *, state: dict[str, Any] | None = None) -> None:
    """Report one epoch's metrics (namespaced, e.g. ``train/loss``) with an optional checkpoint.

    Raises ``FloatingPointError`` on a non-finite metric, so a diverged trial fails cleanly in
    Tune, Optuna and MLflow instead of reporting NaN.
    """
    from ray import tune

    bad = {k: v for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        raise FloatingPointError(f"non-finite metrics: {bad}")
    if state is None:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory() as directory:
        torch.save(state, Path(directory) / STATE_FILE)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def restore_state() -> dict[str, Any] | None:
    """The state of the trial's last checkpoint, or None for a fresh trial."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        return load_state(Path(directory))


def load_state(directory: Path) -> dict[str, Any]:
    return torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=False)
