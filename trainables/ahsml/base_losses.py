"""Base pair losses that AHSML's hierarchical similarity plugs into, swappable by name.

"Extends to any pair-based loss" (shared/methods.md section 4) is realised as [ours]: the
hierarchical-similarity component (similarity matrix, adaptive margins, augmentation
positives; :class:`trainables.ahsml.loss.AHSMLLoss`) builds a :class:`PairBatch`, and a base
:class:`BasePairLoss` turns it into one class term per anchor. Every base loss reads the
per-pair margins: ``M_p`` is the level a positive similarity should exceed and ``M_n`` the
level a negative similarity should stay below (``gamma = 0.5`` for both when the margins are
not adaptive). ``w_pos`` and ``w_neg`` weight the positive- and negative-pair parts: outside
the log / mean for the separable losses (``ms``, ``contrastive``), inside the hinge /
exponent for the coupled ones (``triplet``, ``circle``), whose two parts cannot be separated.

Written by hand because pytorch-metric-learning's losses take one scalar margin, not a
margin per pair; with constant margins ``ms`` and ``circle`` equal its ``MultiSimilarityLoss``
and ``CircleLoss`` per anchor (tested), and its masked ``logsumexp`` is reused.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu
from torch import Tensor, nn

__all__ = [
    "BASE_LOSSES",
    "CirclePairLoss",
    "ContrastivePairLoss",
    "MultiSimilarityPairLoss",
    "PairBatch",
    "BasePairLoss",
    "TripletPairLoss",
    "make_base_loss",
]


@dataclass(frozen=True)
class PairBatch:
    """What the hierarchical-similarity component hands a base loss (``N`` anchors).

    ``pos_mask`` / ``neg_mask`` hold the class positives / negatives of each anchor (row); the
    augmentation pairs are in neither: AHSML handles them itself.
    """

    sim: Tensor  # (N, N) similarities, with gradient
    pos_mask: Tensor  # (N, N) bool
    neg_mask: Tensor  # (N, N) bool, disjoint from pos_mask
    margin_pos: Tensor  # (N, N) M_p per pair, detached
    margin_neg: Tensor  # (N, N) M_n per pair, detached


class BasePairLoss(nn.Module, abc.ABC):
    """A base pair loss: ``forward(batch)`` returns the class term of each anchor, ``(N,)``.

    Called once per batch by ``AHSMLLoss.forward``, which averages over anchors. An anchor
    without the pairs a loss needs contributes 0.
    """

    def __init__(self, *, w_pos: float = 1.0, w_neg: float = 1.0) -> None:
        super().__init__()
        if not (w_pos >= 0 and w_neg >= 0):
            raise ValueError(f"w_pos and w_neg must be >= 0, got {w_pos!r}, {w_neg!r}")
        self.w_pos = w_pos
        self.w_neg = w_neg

    @abc.abstractmethod
    def forward(self, batch: PairBatch) -> Tensor: ...


class MultiSimilarityPairLoss(BasePairLoss):
    """MS without pair mining, margins per pair; per anchor ``i`` (``P``, ``N`` its pairs):

    ``(w_pos/alpha) log(1 + sum_P e^{-alpha (s_ij - M_p)})
      + (w_neg/beta) log(1 + sum_N e^{beta (s_ij - M_n)})``.
    """

    def __init__(
        self, *, alpha: float = 2.0, beta: float = 50.0, w_pos: float = 1.0, w_neg: float = 1.0
    ) -> None:
        super().__init__(w_pos=w_pos, w_neg=w_neg)
        if not (alpha > 0 and beta > 0):
            raise ValueError(f"alpha and beta must be > 0, got {alpha!r}, {beta!r}")
        self.alpha = alpha
        self.beta = beta

    def forward(self, batch: PairBatch) -> Tensor:
        s = batch.sim
        pos = lmu.logsumexp(-self.alpha * (s - batch.margin_pos), keep_mask=batch.pos_mask)
        neg = lmu.logsumexp(self.beta * (s - batch.margin_neg), keep_mask=batch.neg_mask)
        return (self.w_pos / self.alpha * pos + self.w_neg / self.beta * neg).squeeze(1)


class ContrastivePairLoss(BasePairLoss):
    """Contrastive loss on similarities (PML's form, power 1), averaged per anchor:

    ``w_pos mean_P [M_p - s_ij]_+ + w_neg mean_N [s_ij - M_n]_+`` (an empty set gives 0).
    """

    def forward(self, batch: PairBatch) -> Tensor:
        s = batch.sim
        pos = torch.relu(batch.margin_pos - s) * batch.pos_mask
        neg = torch.relu(s - batch.margin_neg) * batch.neg_mask
        n_pos = batch.pos_mask.sum(dim=1).clamp_min(1)
        n_neg = batch.neg_mask.sum(dim=1).clamp_min(1)
        return self.w_pos * pos.sum(dim=1) / n_pos + self.w_neg * neg.sum(dim=1) / n_neg


class TripletPairLoss(BasePairLoss):
    """Batch-hard triplet loss on similarities with the margins per pair:

    ``[margin + w_pos max_P (M_p - s_ij) + w_neg max_N (s_ik - M_n)]_+``, 0 for an anchor
    without positives or negatives. With constant margins and unit weights this is the
    batch-hard triplet ``[margin + max_N s_ik - min_P s_ij]_+``; adaptive margins widen the
    required gap by ``M_p - M_n = S^_aa + S^_ab``.
    """

    def __init__(self, *, margin: float = 0.1, w_pos: float = 1.0, w_neg: float = 1.0) -> None:
        super().__init__(w_pos=w_pos, w_neg=w_neg)
        self.margin = margin

    def forward(self, batch: PairBatch) -> Tensor:
        s = batch.sim
        shortfall = (batch.margin_pos - s).masked_fill(~batch.pos_mask, -torch.inf)
        excess = (s - batch.margin_neg).masked_fill(~batch.neg_mask, -torch.inf)
        hardest_pos = shortfall.max(dim=1).values  # (N,)
        hardest_neg = excess.max(dim=1).values  # (N,)
        valid = batch.pos_mask.any(dim=1) & batch.neg_mask.any(dim=1)
        hinge = self.margin + self.w_pos * hardest_pos + self.w_neg * hardest_neg
        # where() rather than a product: hinge is -inf or NaN (no pairs) on the invalid rows.
        return torch.where(valid, torch.relu(hinge), 0.0)


class CirclePairLoss(BasePairLoss):
    """Circle loss (Sun et al., CVPR'20) with its thresholds set by the margins per pair:

    ``Delta_p = M_p``, ``Delta_n = M_n``, optima ``O_p = 2 - M_p``, ``O_n = -M_n`` (the paper's
    ``1 + m``, ``-m`` when ``M_p = 1 - m``, ``M_n = m``); per anchor
    ``softplus(LSE_P(-scale w_pos a_p (s_ij - Delta_p)) + LSE_N(scale w_neg a_n (s_ik - Delta_n)))``
    with ``a_p = [O_p - s_ij]_+``, ``a_n = [s_ik - O_n]_+`` detached, as in the paper and PML;
    0 for an anchor without positives or negatives.
    """

    def __init__(self, *, scale: float = 80.0, w_pos: float = 1.0, w_neg: float = 1.0) -> None:
        super().__init__(w_pos=w_pos, w_neg=w_neg)
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        self.scale = scale

    def forward(self, batch: PairBatch) -> Tensor:
        s = batch.sim
        m_p, m_n = batch.margin_pos, batch.margin_neg
        a_p = torch.relu(2 - m_p - s.detach())
        a_n = torch.relu(s.detach() + m_n)
        logit_p = -self.scale * self.w_pos * a_p * (s - m_p)
        logit_n = self.scale * self.w_neg * a_n * (s - m_n)
        lse_p = lmu.logsumexp(logit_p, keep_mask=batch.pos_mask, add_one=False)
        lse_n = lmu.logsumexp(logit_n, keep_mask=batch.neg_mask, add_one=False)
        valid = batch.pos_mask.any(dim=1) & batch.neg_mask.any(dim=1)
        return torch.where(valid, nn.functional.softplus((lse_p + lse_n).squeeze(1)), 0.0)


BASE_LOSSES: dict[str, type[BasePairLoss]] = {
    "ms": MultiSimilarityPairLoss,
    "contrastive": ContrastivePairLoss,
    "triplet": TripletPairLoss,
    "circle": CirclePairLoss,
}


def make_base_loss(
    name: str,
    *,
    w_pos: float = 1.0,
    w_neg: float = 1.0,
    alpha: float = 2.0,
    beta: float = 50.0,
    triplet_margin: float = 0.1,
    circle_scale: float = 80.0,
) -> BasePairLoss:
    """The base loss ``name`` with its options: ``alpha``, ``beta`` feed ``ms`` only,
    ``triplet_margin`` ``triplet`` only, ``circle_scale`` ``circle`` only (a flat sweep config
    carries them all; the others are ignored).
    """
    if name not in BASE_LOSSES:
        raise ValueError(f"unknown base loss {name!r}; known base losses: {sorted(BASE_LOSSES)}")
    own_options: dict[str, dict[str, float]] = {
        "ms": {"alpha": alpha, "beta": beta},
        "contrastive": {},
        "triplet": {"margin": triplet_margin},
        "circle": {"scale": circle_scale},
    }
    return BASE_LOSSES[name](w_pos=w_pos, w_neg=w_neg, **own_options[name])
