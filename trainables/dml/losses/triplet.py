"""Triplet loss with batch-hard mining (Hermans et al., 2017), on pytorch-metric-learning."""

from __future__ import annotations

from pytorch_metric_learning.distances import BaseDistance
from pytorch_metric_learning.losses import TripletMarginLoss
from pytorch_metric_learning.miners import BatchHardMiner
from pytorch_metric_learning.reducers import MeanReducer

from trainables.dml.distances import make_distance
from trainables.dml.losses._base import PMLPairLoss, check_finite

__all__ = ["BatchHardTripletLoss"]


class BatchHardTripletLoss(PMLPairLoss):
    """Batch-hard triplet loss: each anchor's hardest positive against its hardest negative.

    With a distance ``d``, for every anchor ``a`` that has at least one positive and one
    negative in the batch::

        p* = argmax_{p in P(a)} d_ap,   n* = argmin_{n in N(a)} d_an
        L  = mean_a [d_ap* - d_an* + m]_+

    With a similarity ``s``: ``p* = argmin s_ap``, ``n* = argmax s_an`` and the term is
    ``[s_an* - s_ap* + m]_+``. PML's ``BatchHardMiner`` mines, ``TripletMarginLoss`` scores.
    The mean runs over all mined anchors (Hermans et al.), not only the violating ones (PML's
    default ``AvgNonZeroReducer`` would).

    Args:
        distance: a PML distance (default: Euclidean on L2-normalised embeddings).
        margin: ``m`` (default 0.2, the margin of FaceNet and of MATHM's baseline).

    Shapes: ``embeddings (B, D), labels (B,) -> ()``.
    """

    def __init__(self, *, distance: BaseDistance | None = None, margin: float = 0.2) -> None:
        distance = make_distance("euclidean") if distance is None else distance
        margin = check_finite("margin", margin)
        super().__init__(
            loss_fn=TripletMarginLoss(margin=margin, distance=distance, reducer=MeanReducer()),
            miner=BatchHardMiner(distance=distance),
            distance=distance,
        )
        self.margin = margin
