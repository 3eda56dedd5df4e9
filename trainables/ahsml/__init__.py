"""AHSML, "Adaptive Hierarchical Similarity Metric Learning with Noisy Labels".

Reference: shared/methods.md section 4.

Method components: the hierarchical similarity on the Poincaré ball (:mod:`.similarity`), the
class-wise statistics and adaptive margins (:mod:`.margins`), the swappable base pair losses
(:mod:`.base_losses`) and the integrated loss over weak / strong views (:mod:`.loss`). The
training loop lives in :mod:`.objective`.
"""

from __future__ import annotations

from trainables.ahsml.base_losses import (
    BASE_LOSSES,
    BasePairLoss,
    CirclePairLoss,
    ContrastivePairLoss,
    MultiSimilarityPairLoss,
    PairBatch,
    TripletPairLoss,
    make_base_loss,
)
from trainables.ahsml.loss import AHSMLLoss, AHSMLOutput, PairMasks, view_pair_masks
from trainables.ahsml.margins import MarginStats, adaptive_margins
from trainables.ahsml.similarity import (
    cosine_similarity,
    hierarchical_similarity,
    poincare_similarity,
)

__all__ = [
    "BASE_LOSSES",
    "AHSMLLoss",
    "AHSMLOutput",
    "CirclePairLoss",
    "ContrastivePairLoss",
    "MarginStats",
    "MultiSimilarityPairLoss",
    "PairBatch",
    "BasePairLoss",
    "PairMasks",
    "TripletPairLoss",
    "adaptive_margins",
    "cosine_similarity",
    "hierarchical_similarity",
    "make_base_loss",
    "poincare_similarity",
    "view_pair_masks",
]
