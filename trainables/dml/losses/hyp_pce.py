"""Hyp-ViT's pairwise cross-entropy on the Poincaré ball (Ermolov et al., CVPR'22)."""

from __future__ import annotations

import torch
from pytorch_metric_learning.distances import BaseDistance
from torch import Tensor

from trainables.dml.distances import PoincareDistance
from trainables.dml.losses._base import PairLoss, check_finite_positive

__all__ = ["DEFAULT_CURVATURE", "HypPCELoss"]

DEFAULT_CURVATURE = 0.1  # Hyp-ViT's c


class HypPCELoss(PairLoss):
    """Pairwise cross-entropy: each positive pair is a softmax classification over the batch.

    Logits ``z_ik = -d_c(x_i, x_k) / tau`` (``s_ik / tau`` if ``distance`` is a similarity).
    For every ordered positive pair ``(i, j)``, ``i != j``, same label::

        l_ij = -log( exp(z_ij) / sum_{k != i} exp(z_ik) )
        L    = mean over all positive pairs

    This is the loss of the Hyp-ViT paper (eq. 3) and of its code (github htdt/hyp_metric,
    ``train.py``: ``contrastive_loss`` with ``dist_f = -dist_matrix(x, y, c)``). Differences
    from that code, by design:

    - the code takes batches of unique classes with ``m`` views each, and for each ordered pair
      of views ``(u, v)`` takes a cross-entropy over ``[view v, view u without self]``, summing
      the ``m(m - 1)`` terms: for ``m = 2`` that is exactly ``2 L`` (a constant factor); for
      ``m > 2`` its denominators leave out the third views, ours use the whole batch.
    - here positives come from labels, so any batch (several samples per class, m-per-class
      sampling) works.

    The published code's later ``hyp_loss.py`` (momentum queue) counts the anchor itself as a
    positive; that variant is not this loss. Defaults: ``tau = 0.2``, ``c = 0.1``; Hyp-ViT also
    clips features to ``r = 2.3`` in its :class:`~trainables.dml.hyperbolic.HyperbolicHead`.

    Args:
        distance: a PML distance (default: ``PoincareDistance(curvature=0.1)``; pass one
            reading the head's curvature when it is learnable).
        tau: temperature (0.2).

    Shapes: ``embeddings (B, D), labels (B,) -> ()``.
    """

    def __init__(self, *, distance: BaseDistance | None = None, tau: float = 0.2) -> None:
        super().__init__()
        self.distance = (
            PoincareDistance(curvature=DEFAULT_CURVATURE) if distance is None else distance
        )
        self.tau = check_finite_positive("tau", tau)

    def compute_loss(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        if len(labels) < 2:  # no pair at all (and a row of only -inf logits below)
            return embeddings.sum() * 0.0
        mat = self.distance(embeddings)  # (B, B)
        logits = (mat if self.distance.is_inverted else -mat) / self.tau
        eye = torch.eye(len(labels), dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(eye, float("-inf"))  # the anchor is not a candidate
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)  # (B, B)
        positives = (labels[:, None] == labels[None, :]) & ~eye  # (B, B)
        # masked sum / count instead of indexing: no host sync; 0 when there is no positive
        total = log_prob.masked_fill(~positives, 0.0).sum()
        return -total / positives.sum().clamp_min(1)
