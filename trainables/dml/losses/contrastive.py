"""Contrastive loss (Hadsell et al., CVPR'06), as pytorch-metric-learning computes it."""

from __future__ import annotations

from pytorch_metric_learning.distances import BaseDistance
from pytorch_metric_learning.losses import ContrastiveLoss as _PMLContrastiveLoss

from trainables.dml.distances import make_distance
from trainables.dml.losses._base import FiniteAvgNonZeroReducer, PMLPairLoss, check_finite

__all__ = ["ContrastiveLoss"]


class ContrastiveLoss(PMLPairLoss):
    """Contrastive loss over all ordered pairs ``(i, j), i != j`` of the batch.

    With a distance ``d`` (``is_inverted = False``)::

        L = mean_{(i,j) in P, l > 0} [d_ij - m_pos]_+  +  mean_{(i,j) in N, l > 0} [m_neg - d_ij]_+

    and with a similarity ``s`` the inequalities flip: ``[m_pos - s_ij]_+`` and
    ``[s_ij - m_neg]_+``. ``P`` / ``N`` are the same-label / different-label pairs; each mean
    runs over the pairs with a non-zero loss (PML's ``AvgNonZeroReducer``) and is 0 if there is
    none. Non-finite terms are not dropped: they make the loss raise.

    Args:
        distance: a PML distance (default: Euclidean on L2-normalised embeddings).
        pos_margin: ``m_pos``; default 0 for a distance, 1 for a similarity.
        neg_margin: ``m_neg``; default 1 for a distance, 0 for a similarity (PML's advice for
            cosine). The Poincaré distance is unbounded: tune the margins for it.

    Shapes: ``embeddings (B, D), labels (B,) -> ()``.
    """

    def __init__(
        self,
        *,
        distance: BaseDistance | None = None,
        pos_margin: float | None = None,
        neg_margin: float | None = None,
    ) -> None:
        distance = make_distance("euclidean") if distance is None else distance
        similarity = distance.is_inverted
        if pos_margin is None:
            pos_margin = 1.0 if similarity else 0.0
        if neg_margin is None:
            neg_margin = 0.0 if similarity else 1.0
        pos_margin = check_finite("pos_margin", pos_margin)
        neg_margin = check_finite("neg_margin", neg_margin)
        super().__init__(
            loss_fn=_PMLContrastiveLoss(
                pos_margin=pos_margin,
                neg_margin=neg_margin,
                distance=distance,
                reducer=FiniteAvgNonZeroReducer(),
            ),
            distance=distance,
        )
        self.pos_margin, self.neg_margin = pos_margin, neg_margin
