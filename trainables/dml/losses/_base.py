"""What every loss of the library shares: the call contract, input checks, divergence check.

Who calls what: a trainable calls ``loss(embeddings, labels)``; :meth:`PairLoss.forward`
checks the inputs, calls the subclass's :meth:`PairLoss.compute_loss` and raises
``FloatingPointError`` when the result (or an embedding) is not finite, so a diverging trial
fails cleanly instead of reporting NaN. :class:`PMLPairLoss` adapts a pytorch-metric-learning
loss (with an optional miner) to that contract.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from pytorch_metric_learning.distances import BaseDistance
from pytorch_metric_learning.losses import BaseMetricLossFunction
from pytorch_metric_learning.miners import BaseMiner
from pytorch_metric_learning.reducers import AvgNonZeroReducer
from torch import Tensor, nn

__all__ = [
    "FiniteAvgNonZeroReducer",
    "PMLPairLoss",
    "PairLoss",
    "check_finite",
    "check_finite_positive",
]


def check_finite_positive(name: str, value: float) -> float:
    """``value`` as a float if it is a finite number ``> 0``; else ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_finite(name: str, value: float) -> float:
    """``value`` as a float if it is a finite number; else ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


class FiniteAvgNonZeroReducer(AvgNonZeroReducer):
    """PML's ``AvgNonZeroReducer`` (mean of the terms ``> 0``) that lets NaN/inf through.

    The parent keeps ``losses[losses > 0]``, which silently drops NaN terms (``NaN > 0`` is
    false), so an overflow could yield a finite, wrong loss. Adding ``0 * sum(losses)`` leaves a
    finite result unchanged (and adds no gradient) but turns any non-finite term into a NaN
    result, which :meth:`PairLoss.forward` then raises on. No host sync.
    """

    def element_reduction_helper(self, losses: Tensor, embeddings: Tensor) -> Tensor:
        return super().element_reduction_helper(losses, embeddings) + losses.sum() * 0.0


class PairLoss(nn.Module, ABC):
    """Base of the pair losses: ``(embeddings (B, D), labels (B,)) -> scalar``.

    Subclasses set ``self.distance`` (a PML ``BaseDistance``) and write :meth:`compute_loss`.
    """

    distance: BaseDistance

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """The loss of one batch.

        Args:
            embeddings: ``(B, D)`` floating-point embeddings.
            labels: ``(B,)`` integer class labels; pairs with equal labels are positives.

        Returns:
            A 0-dim tensor.

        Raises:
            ValueError: malformed inputs.
            FloatingPointError: a non-finite embedding or a non-finite loss.
        """
        if embeddings.ndim != 2 or not embeddings.is_floating_point():
            raise ValueError(
                f"embeddings must be a (B, D) floating-point tensor, got shape "
                f"{tuple(embeddings.shape)} and dtype {embeddings.dtype}"
            )
        if labels.ndim != 1 or labels.shape[0] != embeddings.shape[0]:
            raise ValueError(
                f"labels must be a (B,) tensor with B = {embeddings.shape[0]} (the number of "
                f"embeddings), got shape {tuple(labels.shape)}"
            )
        if labels.is_floating_point() or labels.is_complex():
            raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}")
        loss = self.compute_loss(embeddings, labels.to(embeddings.device))
        # one host sync per step for both checks. The inputs are checked too because PML's
        # miners silently skip NaN pairs, so a NaN embedding can give a finite (wrong) loss.
        finite = torch.isfinite(loss).all() & torch.isfinite(embeddings.detach()).all()
        if not bool(finite):
            if not bool(torch.isfinite(embeddings.detach()).all()):
                raise FloatingPointError(
                    f"{type(self).__name__}: the embeddings contain NaN or inf (training diverged)"
                )
            raise FloatingPointError(
                f"{type(self).__name__}: non-finite loss {loss.detach().item()} (training diverged)"
            )
        return loss

    @abstractmethod
    def compute_loss(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """``(B, D), (B,) -> ()``; inputs already checked."""


class PMLPairLoss(PairLoss):
    """A pytorch-metric-learning loss (and optional miner) behind the :class:`PairLoss` contract.

    ``compute_loss`` is ``loss_fn(embeddings, labels, miner(embeddings, labels))``; the loss and
    the miner must share ``distance``.
    """

    def __init__(
        self,
        *,
        loss_fn: BaseMetricLossFunction,
        miner: BaseMiner | None = None,
        distance: BaseDistance,
    ) -> None:
        super().__init__()
        if loss_fn.distance is not distance or (
            miner is not None and miner.distance is not distance
        ):
            raise ValueError("the PML loss and its miner must be built with the same distance")
        self.distance = distance
        self.loss_fn = loss_fn
        self.miner = miner

    def compute_loss(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        indices = None if self.miner is None else self.miner(embeddings, labels)
        # PML returns sum(embeddings * 0) (a graph-connected zero) when no pair is left
        return self.loss_fn(embeddings, labels, indices)
