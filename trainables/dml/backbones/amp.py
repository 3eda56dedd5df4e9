"""Mixed precision on GPU, a no-op on CPU."""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from typing import Any

import torch

__all__ = ["MixedPrecision", "amp_dtype", "autocast_context"]


def amp_dtype(device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype used on ``device``: ``bfloat16`` on CUDA devices with native bfloat16
    (compute capability 8.0 and up: Ampere, Hopper, ...), else ``float16`` on CUDA (train it
    with ``torch.amp.GradScaler``), ``None`` (no autocast) elsewhere.

    Not ``torch.cuda.is_bf16_supported()``: it also answers True where bfloat16 is only
    emulated (V100, T4), which is slow and has no cuDNN convolutions.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16


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


class MixedPrecision:
    """A trial's mixed precision: autocast on CUDA (bfloat16 where supported, else float16 with
    a gradient scaler, whose state travels in checkpoints), nothing on the CPU or when
    ``enabled`` is false. Losses and ball operations run outside autocast, in float32 or wider.
    """

    def __init__(self, device: torch.device, *, enabled: bool) -> None:
        self.device = device
        self.dtype = amp_dtype(device) if enabled else None
        # a float16 gradient underflows without loss scaling; bfloat16 has float32's range
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)

    @property
    def name(self) -> str:
        """``bfloat16``, ``float16`` or ``off``."""
        return "off" if self.dtype is None else str(self.dtype).removeprefix("torch.")

    def autocast(self) -> AbstractContextManager[Any]:
        return autocast_context(self.device, enabled=self.dtype is not None, dtype=self.dtype)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward and optimizer step, through the gradient scaler when there is one."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.scaler.load_state_dict(state)
