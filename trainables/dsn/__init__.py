"""DSN: domain-smoothing network for zero-shot SBIR (shared/methods.md section 5).

The method's parts: the per-class sketch memory bank (:mod:`trainables.dsn.memory_bank`) and
the combined loss CE + KD + SupCon + memory (:mod:`trainables.dsn.loss`).
"""

from __future__ import annotations

from trainables.dsn.loss import (
    PHOTO,
    SKETCH,
    DSNLoss,
    DSNOutput,
    distillation_loss,
    memory_loss,
)
from trainables.dsn.memory_bank import POLICIES, BankStats, SketchMemoryBank

__all__ = [
    "PHOTO",
    "POLICIES",
    "SKETCH",
    "BankStats",
    "DSNLoss",
    "DSNOutput",
    "SketchMemoryBank",
    "distillation_loss",
    "memory_loss",
]
