"""Where and how a trial runs: the device, per-epoch random generators."""

from __future__ import annotations

import torch

__all__ = ["epoch_generator", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    """``"auto"``: the first CUDA device when there is one, else the CPU; otherwise
    ``torch.device(name)``, checked to exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available here")
    return device


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator seeded by ``(seed, epoch)``: the views and loader seeds of an epoch do
    not depend on what ran before, so a resumed trial draws what an uninterrupted one would."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)
