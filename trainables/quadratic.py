"""``quadratic``: a trivial analytic objective for checking the platform itself.

No data and no network: epoch ``t`` reports ``val/score = -(x - 0.3)^2 - (y - 0.7)^2 - 1/t``
(plus ``noise`` times a seeded Gaussian), so the optimum is known, schedulers see a curve that
improves with epochs, and a trial costs microseconds. Used by the platform tests and the
overhead benchmark; the DML objectives are ``baseline``, ``ahsml``, ``dsn`` and ``mathm``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from trainables.config import ConfigError, from_flat
from trainables.objective import Mode


@dataclass(frozen=True)
class QuadraticConfig:
    max_epochs: int = 4
    x: float = 0.0  # first coordinate, optimum 0.3
    y: float = 0.0  # second coordinate, optimum 0.7
    noise: float = 0.0  # std of the per-epoch Gaussian noise
    seconds_per_epoch: float = 0.0  # sleep, to emulate work
    fail_at_epoch: int = 0  # > 0: raise at that epoch (fault tests)
    nan_at_epoch: int = 0  # > 0: report a NaN score at that epoch (fault tests)
    hang_at_epoch: int = 0  # > 0: hang (in Python) at that epoch (fault tests)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_epochs < 1:
            raise ConfigError(f"QuadraticConfig.max_epochs: must be >= 1, got {self.max_epochs}")


CONFIG = QuadraticConfig
METRICS: dict[str, Mode] = {"val/score": "max"}  # trainables.objective


def validate(settings: dict[str, Any]) -> None:
    from_flat(QuadraticConfig, settings)


def score(*, x: float, y: float, epoch: int) -> float:
    return -((x - 0.3) ** 2) - (y - 0.7) ** 2 - 1.0 / epoch


def train(config: dict[str, Any]) -> None:
    from trainables.reporting import report_epoch, restore_state

    cfg = from_flat(QuadraticConfig, config)
    state = restore_state() or {"epoch": 0}
    rng = random.Random(cfg.seed)
    for epoch in range(state["epoch"] + 1, cfg.max_epochs + 1):
        if cfg.seconds_per_epoch:
            time.sleep(cfg.seconds_per_epoch)
        while epoch == cfg.hang_at_epoch:  # a hung trial, e.g. a deadlocked data loader
            time.sleep(0.05)
        if epoch == cfg.fail_at_epoch:
            raise RuntimeError(f"quadratic: injected failure at epoch {epoch}")
        value = score(x=cfg.x, y=cfg.y, epoch=epoch) + cfg.noise * rng.gauss(0.0, 1.0)
        if epoch == cfg.nan_at_epoch:
            value = float("nan")  # a diverged trial: report_epoch raises FloatingPointError
        report_epoch({"val/score": value, "train/epoch": float(epoch)}, state={"epoch": epoch})


def build_model(config: dict[str, Any]) -> Any:
    import torch

    cfg = from_flat(QuadraticConfig, config)
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[cfg.x, cfg.y]]))
    return model


def evaluate_test(model: Any, config: dict[str, Any]) -> dict[str, float]:
    """The noiseless score at the last epoch of the point ``model`` holds (``test/score``)."""
    cfg = from_flat(QuadraticConfig, config)
    x, y = (float(v) for v in model.weight.detach().flatten())
    return {"test/score": score(x=x, y=y, epoch=cfg.max_epochs)}
