"""The contract every registered loss must meet (run over the whole registry)."""

from __future__ import annotations

import pytest
import torch

from trainables.dml.losses import LOSSES, make_loss
from trainables.dml.losses._base import PairLoss


class _Constant(PairLoss):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def compute_loss(self, embeddings, labels):
        return embeddings.sum() * 0.0 + self.value


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_loss_raises(value):
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        _Constant(value)(torch.zeros(4, 3), torch.arange(4))


def test_finite_loss_passes():
    assert _Constant(1.5)(torch.zeros(4, 3), torch.arange(4)).item() == 1.5


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_returns_a_differentiable_scalar(ref, name, distance_name):
    x, labels = ref.batch(11, dtype=torch.float32)
    x.requires_grad_(True)
    loss = make_loss(name, distance=ref.distance(distance_name))(x, labels)
    assert loss.ndim == 0 and loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_non_finite_embedding_raises(ref, name, poison):
    x, labels = ref.batch(0)
    x[3, 1] = poison
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        make_loss(name)(x, labels)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_diverging_hyperparameters_raise(ref, name):
    """A real loss that overflows (tiny temperature / huge margin in float32) raises."""
    x, labels = ref.batch(0, dtype=torch.float32)
    hyper = {
        "contrastive": {"neg_margin": 3e38, "pos_margin": -3e38},
        "triplet": {"margin": 3e38},
        "ms": {"base": -3e38},
        "supcon": {"tau": 1e-45},
        "ntxent": {"tau": 1e-45},
        "hyp_pce": {"tau": 1e-45},
    }[name]
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        make_loss(name, **hyper)(x, labels)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_batch_without_positives_is_zero(ref, name):
    x, _ = ref.batch(0, size=6)
    x.requires_grad_(True)
    loss = make_loss(name)(x, torch.arange(6))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_rejects_malformed_inputs(name):
    loss_fn = make_loss(name)
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        loss_fn(torch.zeros(4), torch.arange(4))
    with pytest.raises(ValueError, match="labels must be a"):
        loss_fn(torch.zeros(4, 3), torch.arange(5))
    with pytest.raises(ValueError, match="integer"):
        loss_fn(torch.zeros(4, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="floating-point"):
        loss_fn(torch.zeros(4, 3, dtype=torch.long), torch.arange(4))
