"""MATHM: modality-aware triplet hard mining for zero-shot SBIR (shared/methods.md section 6).

The method's parts: batch-hard triplets selected by modality masks
(:mod:`trainables.mathm.triplets`) and their adaptive per-type weighting
(:mod:`trainables.mathm.weighting`).
"""

from __future__ import annotations

from trainables.mathm.triplets import (
    TRIPLET_TYPES,
    HardTriplets,
    hard_triplet_margins,
    mine_hard_triplets,
    modality_masks,
    published_triplet_margins,
)
from trainables.mathm.weighting import (
    MODES,
    RELEASED_LOSS_FLAGS,
    MATHMOutput,
    MATHMTripletLoss,
    adaptive_weights,
    pairwise_euclidean,
    softplus_beta,
)

__all__ = [
    "MODES",
    "RELEASED_LOSS_FLAGS",
    "TRIPLET_TYPES",
    "HardTriplets",
    "MATHMOutput",
    "MATHMTripletLoss",
    "adaptive_weights",
    "hard_triplet_margins",
    "mine_hard_triplets",
    "modality_masks",
    "pairwise_euclidean",
    "published_triplet_margins",
    "softplus_beta",
]
