"""Batch-hard triplets by modality (MATHM, shared/methods.md section 6).

For an anchor ``i`` of a two-modality batch (sketches and photos), three triplet types are named
by what their masks select (``same_class[i, j]``: equal labels; ``same_mod[i, j]``: equal
modality tags):

============  =======================================  ======================================
type          positive ``j`` (max distance wins)       negative ``j`` (min distance wins)
============  =======================================  ======================================
``within``    same class, same modality, ``j != i``    other class, same modality
``cross``     same class, other modality               other class, other modality
``hybrid``    same class, other modality               other class, same modality
============  =======================================  ======================================

The hardest positive is the farthest valid positive and the hardest negative the nearest valid
negative, so each type gives at most one triplet per anchor, with margin term
``x_k,i = d(a, p) - d(a, n) + m``. **An anchor without any valid positive or any valid
negative in a type is excluded from that type** (its ``x`` is not defined): the outputs of
:func:`mine_hard_triplets` and :func:`hard_triplet_margins` hold only the anchors that have
both. The anchor itself is never its own positive.

The released code differs on the borders: it keeps every anchor, pushing missing candidates
away by a fixed penalty of 1000 (so ``x`` is about -1000 and the term is inert but still counts
in the means), and it lets the anchor be its own within-modality positive (at distance
``sqrt(1e-12)``). :func:`published_triplet_margins` reproduces that for comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

TRIPLET_TYPES: tuple[str, ...] = ("within", "cross", "hybrid")

# The released code's stand-in for "no candidate": added to (or subtracted from) distances.
_RELEASED_PENALTY = 1000.0


@dataclass(frozen=True)
class HardTriplets:
    """The hardest triplet of each valid anchor of one type; all fields are ``(n,)`` long."""

    anchors: Tensor
    positives: Tensor
    negatives: Tensor


def _check_batch(labels: Tensor, modalities: Tensor, dist: Tensor | None = None) -> None:
    if labels.ndim != 1 or modalities.ndim != 1:
        raise ValueError(
            f"labels and modalities must be 1-D, got shapes {tuple(labels.shape)} and "
            f"{tuple(modalities.shape)}"
        )
    if labels.shape != modalities.shape:
        raise ValueError(
            f"labels {tuple(labels.shape)} and modalities {tuple(modalities.shape)} "
            "differ in length"
        )
    if labels.numel() == 0:
        raise ValueError("empty batch: labels and modalities have no elements")
    if labels.is_floating_point() or modalities.is_floating_point():
        raise TypeError("labels and modalities must be integer (or bool) tensors, not floating")
    if dist is not None and dist.shape != (labels.numel(), labels.numel()):
        raise ValueError(
            f"dist must be (B, B) = {(labels.numel(),) * 2} for B labels, got {tuple(dist.shape)}"
        )


def modality_masks(labels: Tensor, modalities: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
    """Candidate masks of each triplet type.

    Args:
        labels: ``(B,)`` integer class labels.
        modalities: ``(B,)`` integer modality tags (0 sketch, 1 photo; only equality matters).

    Returns:
        ``{type: (pos_mask, neg_mask)}`` for ``type`` in :data:`TRIPLET_TYPES`, each mask a
        ``(B, B)`` bool tensor whose row ``i`` marks the candidates ``j`` of anchor ``i``
        (see the module docstring for the table).
    """
    _check_batch(labels, modalities)
    same_class = labels[:, None] == labels[None, :]  # (B, B)
    same_mod = modalities[:, None] == modalities[None, :]  # (B, B)
    not_self = ~torch.eye(labels.numel(), dtype=torch.bool, device=labels.device)
    cross_pos = same_class & ~same_mod
    return {
        "within": (same_class & same_mod & not_self, ~same_class & same_mod),
        "cross": (cross_pos, ~same_class & ~same_mod),
        "hybrid": (cross_pos, ~same_class & same_mod),
    }


def mine_hard_triplets(dist: Tensor, labels: Tensor, modalities: Tensor) -> dict[str, HardTriplets]:
    """Hardest positive (farthest) and hardest negative (nearest) per anchor and type.

    Args:
        dist: ``(B, B)`` pairwise distances.
        labels, modalities: ``(B,)`` as in :func:`modality_masks`.

    Returns:
        ``{type: HardTriplets}``; anchors lacking a valid positive or negative are left out.
        Ties go to the lowest index.
    """
    _check_batch(labels, modalities, dist)
    out: dict[str, HardTriplets] = {}
    with torch.no_grad():
        for name, (pos, neg) in modality_masks(labels, modalities).items():
            valid = pos.any(dim=1) & neg.any(dim=1)  # (B,)
            anchors = valid.nonzero().squeeze(1)
            d = dist.detach()[anchors]  # (n, B)
            positives = d.masked_fill(~pos[anchors], -torch.inf).argmax(dim=1)
            negatives = d.masked_fill(~neg[anchors], torch.inf).argmin(dim=1)
            out[name] = HardTriplets(anchors=anchors, positives=positives, negatives=negatives)
    return out


def hard_triplet_margins(
    dist: Tensor, labels: Tensor, modalities: Tensor, *, margin: float
) -> dict[str, Tensor]:
    """Margin terms ``x_k,i = d(a_i, p_i) - d(a_i, n_i) + margin`` of each type's hard triplets.

    Args:
        dist: ``(B, B)`` pairwise distances; gradients flow to the selected entries.
        labels, modalities: ``(B,)`` as in :func:`modality_masks`.
        margin: the triplet margin ``m``.

    Returns:
        ``{type: (n_k,)}`` with ``n_k <= B``: only anchors with a valid positive and negative in
        that type, in increasing anchor order (see :func:`mine_hard_triplets`).
    """
    out: dict[str, Tensor] = {}
    for name, t in mine_hard_triplets(dist, labels, modalities).items():
        out[name] = dist[t.anchors, t.positives] - dist[t.anchors, t.negatives] + margin
    return out


def published_triplet_margins(
    dist: Tensor, labels: Tensor, modalities: Tensor, *, margin: float
) -> dict[str, Tensor]:
    """The released code's margin terms: every anchor kept, ``(B,)`` per type.

    ``d_ap = max_j (dist[i, j] - 1000 [j is not a positive])`` and
    ``d_an = min_j (dist[i, j] + 1000 [j is not a negative])``, where the within-modality
    positives include the anchor itself. An anchor lacking candidates thus gets
    ``x`` near -1000 instead of being dropped.
    """
    _check_batch(labels, modalities, dist)
    masks = modality_masks(labels, modalities)
    eye = torch.eye(labels.numel(), dtype=torch.bool, device=labels.device)
    out: dict[str, Tensor] = {}
    for name, (pos, neg) in masks.items():
        if name == "within":
            pos = pos | eye
        d_ap = (dist - _RELEASED_PENALTY * (~pos).to(dist.dtype)).max(dim=1).values
        d_an = (dist + _RELEASED_PENALTY * (~neg).to(dist.dtype)).min(dim=1).values
        out[name] = d_ap - d_an + margin
    return out
