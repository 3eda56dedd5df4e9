"""The baseline pair losses, by name (methods.md section 3).

Every loss is an ``nn.Module`` with ``forward(embeddings (B, D), labels (B,)) -> scalar`` that
raises ``FloatingPointError`` on a non-finite loss, and takes its distance (a
pytorch-metric-learning ``BaseDistance``, see :mod:`trainables.dml.distances`) through the
constructor. Example::

    from trainables.dml.distances import make_distance
    from trainables.dml.losses import make_loss

    loss_fn = make_loss("ms", distance=make_distance("poincare_similarity", curvature=0.1, tau=0.2))
    loss = loss_fn(embeddings, labels)
"""

from __future__ import annotations

import inspect
from typing import Any

from pytorch_metric_learning.distances import BaseDistance

from trainables.dml.losses._base import PairLoss, PMLPairLoss
from trainables.dml.losses.contrastive import ContrastiveLoss
from trainables.dml.losses.hyp_pce import HypPCELoss
from trainables.dml.losses.ms import MultiSimilarityLoss
from trainables.dml.losses.supcon import NTXentLoss, SupConLoss
from trainables.dml.losses.triplet import BatchHardTripletLoss

__all__ = [
    "LOSSES",
    "BatchHardTripletLoss",
    "ContrastiveLoss",
    "HypPCELoss",
    "MultiSimilarityLoss",
    "NTXentLoss",
    "PMLPairLoss",
    "PairLoss",
    "SupConLoss",
    "loss_hyperparameters",
    "make_loss",
]

LOSSES: dict[str, type[PairLoss]] = {
    "contrastive": ContrastiveLoss,
    "triplet": BatchHardTripletLoss,
    "ms": MultiSimilarityLoss,
    "supcon": SupConLoss,
    "ntxent": NTXentLoss,
    "hyp_pce": HypPCELoss,
}


def loss_hyperparameters(name: str) -> dict[str, Any]:
    """The hyperparameters of loss ``name`` (``distance`` aside) with their defaults."""
    cls = _loss_class(name)
    params = inspect.signature(cls.__init__).parameters
    return {n: p.default for n, p in params.items() if p.kind is p.KEYWORD_ONLY and n != "distance"}


def make_loss(name: str, *, distance: BaseDistance | None = None, **hyper: Any) -> PairLoss:
    """Build loss ``name`` with ``distance`` (``None``: the loss's default) and ``hyper``.

    Raises:
        ValueError: an unknown name (listing the known ones) or an unknown hyperparameter
            (listing the loss's hyperparameters); an invalid value (from the loss).
        TypeError: ``distance`` is not a pytorch-metric-learning ``BaseDistance``.
    """
    cls = _loss_class(name)
    known = loss_hyperparameters(name)
    unknown = sorted(set(hyper) - set(known))
    if unknown:
        raise ValueError(
            f"loss {name!r} has no hyperparameter(s) {unknown}; its hyperparameters: "
            f"{sorted(known)} (and distance=)"
        )
    if distance is not None and not isinstance(distance, BaseDistance):
        raise TypeError(
            f"distance must be a pytorch-metric-learning BaseDistance (see "
            f"trainables.dml.distances.make_distance), got {type(distance).__name__}"
        )
    return cls(distance=distance, **hyper)


def _loss_class(name: str) -> type[PairLoss]:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known losses: {sorted(LOSSES)}")
    return LOSSES[name]
