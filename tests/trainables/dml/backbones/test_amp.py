from __future__ import annotations

import contextlib
import warnings

import pytest
import torch

from trainables.dml.backbones.amp import amp_dtype, autocast_context


def test_cpu_is_a_no_op():
    assert amp_dtype("cpu") is None
    ctx = autocast_context(torch.device("cpu"))
    assert isinstance(ctx, contextlib.nullcontext)
    with ctx:
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.randn(2, 3) @ torch.randn(3, 2)).dtype == torch.float32


@pytest.mark.parametrize(
    ("capability", "expected"),
    [
        ((9, 0), torch.bfloat16),
        ((8, 0), torch.bfloat16),
        ((7, 5), torch.float16),
        ((7, 0), torch.float16),
    ],
)
def test_cuda_autocast_dtype(monkeypatch, capability, expected):
    # bfloat16 only where it is native (compute capability 8.0+), never the emulated kind
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
    assert amp_dtype("cuda:0") == expected
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available" on CPU-only machines
        ctx = autocast_context("cuda")
        override = autocast_context("cuda", dtype=torch.float16)
    assert isinstance(ctx, torch.autocast)
    assert ctx.device == "cuda" and ctx.fast_dtype == expected
    assert isinstance(override, torch.autocast) and override.fast_dtype == torch.float16
    assert isinstance(autocast_context("cuda", enabled=False), contextlib.nullcontext)
