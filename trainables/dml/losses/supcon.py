"""Supervised contrastive loss (SupCon, Khosla et al., NeurIPS'20) and NT-Xent, on PML."""

from __future__ import annotations

from pytorch_metric_learning.distances import BaseDistance
from pytorch_metric_learning.losses import NTXentLoss as _PMLNTXentLoss
from pytorch_metric_learning.losses import SupConLoss as _PMLSupConLoss

from trainables.dml.distances import make_distance
from trainables.dml.losses._base import FiniteAvgNonZeroReducer, PMLPairLoss, check_finite_positive

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


class NTXentLoss(PMLPairLoss):
    """NT-Xent / InfoNCE per positive pair: other positives are left out of the denominator.

    Logits ``z`` as for :class:`SupConLoss`. For each ordered positive pair ``(a, p)``::

        l_ap = -log( exp(z_ap) / (exp(z_ap) + sum_{n in N_a} exp(z_an)) )
        L    = mean over all positive pairs

    (PML's ``NTXentLoss``.) It equals :class:`SupConLoss` when every anchor has exactly one
    positive and the batch has negatives.

    Args:
        distance: a PML distance (default: cosine similarity).
        tau: temperature (0.07).

    Shapes: ``embeddings (B, D), labels (B,) -> ()``.
    """

    def __init__(self, *, distance: BaseDistance | None = None, tau: float = 0.07) -> None:
        distance = make_distance("cosine") if distance is None else distance
        tau = check_finite_positive("tau", tau)
        super().__init__(
            loss_fn=_PMLNTXentLoss(temperature=tau, distance=distance), distance=distance
        )
        self.tau = tau
