"""Mixed precision on GPU, a no-op on CPU."""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from typing import Any

import torch

__all__ = ["amp_dtype", "autocast_context"]


def amp_dtype(device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype used on ``device``: ``bfloat16`` on CUDA devices that support it,
    else ``float16`` on CUDA (train it with ``torch.amp.GradScaler``), ``None`` (no autocast)
    elsewhere."""
    if torch.device(device).type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast_context(
    device: torch.device | str, *, enabled: bool = True, dtype: torch.dtype | None = None
) -> AbstractContextManager[Any]:
    """``torch.autocast("cuda", dtype)`` on a CUDA device, ``contextlib.nullcontext()`` on any
    other device or when ``enabled`` is false.

    CPU runs stay in float32: CPU autocast (bfloat16) is slower than float32 on most CPUs and
    changes the numerics the tests check. Ball operations disable autocast themselves.

    Args:
        device: where the forward pass runs.
        enabled: ``False`` gives the no-op context (an AMP switch in the config).
        dtype: override :func:`amp_dtype`.
    """
    default = amp_dtype(device)
    if not enabled or default is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype or default)
