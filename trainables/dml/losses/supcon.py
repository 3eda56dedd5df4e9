"""Supervised contrastive loss (SupCon, Khosla et al., NeurIPS'20, on PML) and NT-Xent."""

from __future__ import annotations

import torch
from pytorch_metric_learning.distances import BaseDistance
from pytorch_metric_learning.losses import SupConLoss as _PMLSupConLoss
from torch import Tensor

from trainables.dml.distances import make_distance
from trainables.dml.losses._base import (
    FiniteAvgNonZeroReducer,
    PairLoss,
    PMLPairLoss,
    check_finite_positive,
)

__all__ = ["NTXentLoss", "SupConLoss"]


class SupConLoss(PMLPairLoss):
    """SupCon ("L_out"): every other same-label sample is a positive of the anchor.

    Logits ``z_ik = s_ik / tau`` for a similarity, ``-d_ik / tau`` for a distance. For each
    anchor ``i`` with positives ``P_i`` (same label, ``p != i``)::

        l_i = -(1/|P_i|) sum_{p in P_i} [ z_ip - log sum_{k != i} exp(z_ik) ]
        L   = mean of l_i over the anchors with |P_i| > 0

    (PML's ``SupConLoss`` with its ``AvgNonZeroReducer``; an anchor without positives has no
    term.) With two views per sample and no other same-label sample, this is NT-Xent (SimCLR).
    DSN uses it with ``tau = 0.07`` over two views of sketches and photos.

    Args:
        distance: a PML distance (default: cosine similarity).
        tau: temperature (0.07, the SupCon code's default).

    Shapes: ``embeddings (B, D), labels (B,) -> ()``.
    """

    def __init__(self, *, distance: BaseDistance | None = None, tau: float = 0.07) -> None:
        distance = make_distance("cosine") if distance is None else distance
        tau = check_finite_positive("tau", tau)
        super().__init__(
            loss_fn=_PMLSupConLoss(
                temperature=tau, distance=distance, reducer=FiniteAvgNonZeroReducer()
            ),
            distance=distance,
        )
        self.tau = tau


class NTXentLoss(PairLoss):
    """NT-Xent / InfoNCE per positive pair: other positives are left out of the denominator.

    Logits ``z`` as for :class:`SupConLoss`. For each ordered positive pair ``(a, p)``::

        l_ap = -log( exp(z_ap) / (exp(z_ap) + sum_{n in N_a} exp(z_an)) )
             = logsumexp({z_ap} + {z_an : n in N_a}) - z_ap
        L    = mean over all positive pairs (0 when the batch has no positive or no negative)

    The value of PML's ``NTXentLoss``, computed with a log-sum-exp: PML takes
    ``log(num/den + tiny)``, which saturates in float32 once ``num/den`` underflows (at about
    ``-87.3`` in log space: a loss stuck at 87.34 with an exactly zero gradient, e.g. Poincaré
    distances of unclipped features at ``tau = 0.2``). It equals :class:`SupConLoss` when every
    anchor has exactly one positive and the batch has negatives.

    Args:
        distance: a PML distance (default: cosine similarity).
        tau: temperature (0.07).

    Shapes: ``embeddings (B, D), labels (B,) -> ()``.
    """

    def __init__(self, *, distance: BaseDistance | None = None, tau: float = 0.07) -> None:
        super().__init__()
        self.distance = make_distance("cosine") if distance is None else distance
        self.tau = check_finite_positive("tau", tau)

    def compute_loss(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        mat = self.distance(embeddings)  # (B, B)
        logits = (mat if self.distance.is_inverted else -mat) / self.tau
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=logits.device)
        positives = same & ~eye  # (B, B) pairs (a, p)
        negatives = ~same
        if not bool(positives.any()) or not bool(negatives.any()):
            return embeddings.sum() * 0.0  # as PML: no pair to contrast
        # log sum_n exp(z_an) per anchor, -inf where an anchor has no negative
        neg_lse = torch.logsumexp(logits.masked_fill(~negatives, float("-inf")), dim=1)  # (B,)
        # logsumexp(z_ap, neg_lse_a) for every pair (a, p)
        lse = torch.logaddexp(logits, neg_lse[:, None])  # (B, B)
        terms = (lse - logits).masked_fill(~positives, 0.0)
        return terms.sum() / positives.sum()
