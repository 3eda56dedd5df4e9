"""AHSML's class-wise statistics and adaptive margins, from the current batch, detached.

For a batch of ``N`` embeddings (views) with similarity matrix ``s`` ``(N, N)``, labels ``y``
and instance ids ``g`` (views of one image share an id), a pair ``(u, v)`` counts for the class
statistics only when ``g_u != g_v`` (two views of one image are the augmentation pair, not
evidence about a class) [ours]:

- ``S_aa``: mean of ``s_uv`` over ordered pairs with ``y_u = y_v = a``, ``g_u != g_v``;
  undefined (NaN) for a class with a single image (no such pair).
- ``S_ab`` (``a != b``): mean of ``s_uv`` over pairs with ``y_u = a``, ``y_v = b``,
  ``g_u != g_v``; symmetric.
- Min-max rescaling over the batch's classes to ``[0, mu]`` [ours]:
  ``S^_aa = mu (S_aa - min S) / (max S - min S)`` over the classes where ``S_aa`` is defined,
  and likewise ``S^_ab`` over the defined class pairs. A class without intra pairs gets
  ``S^_aa = 0``. When fewer than two values exist or ``max S - min S <= 1e-6`` (degenerate:
  the batch says nothing to tell the classes apart), every rescaled value is 0, so the margins
  fall back to the constant ``gamma``.
- Margins: ``M_p(a) = gamma + S^_aa``, ``M_n(a, b) = gamma - S^_ab``.
- Augmentation margin ``M_a = min_a S_aa`` over the classes where it is defined: the least
  *class-mean* intra-class similarity [ours]. The minimum over single positive pairs was not
  chosen because under label noise it is set by one mislabelled pair, which would switch the
  consistency term off. ``M_a = gamma`` when no class has two images.

All statistics are computed without gradient: they set the margins, they are not optimised.
The statistics come from the paper via a secondary summary (shared/methods.md section 4);
rescaling, the pair rules above and the fallbacks are this project's design.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["MarginStats", "adaptive_margins"]

# Similarities are O(1) (in (0, 1] or [-1, 1]); a smaller spread is rounding noise.
_DEGENERATE_RANGE = 1e-6


@dataclass(frozen=True)
class MarginStats:
    """A batch's class statistics and margins (all detached).

    ``C`` is the number of distinct labels in the batch, ``N`` the number of embeddings.
    """

    classes: Tensor  # (C,) the labels present, ascending
    intra: Tensor  # (C,) S_aa; NaN for a class with a single image
    inter: Tensor  # (C, C) S_ab; NaN on the diagonal and for pairs without any pair of views
    class_margin_pos: Tensor  # (C,) M_p(a) = gamma + S^_aa
    class_margin_neg: Tensor  # (C, C) M_n(a, b) = gamma - S^_ab; gamma on the diagonal
    margin_pos: Tensor  # (N, N) M_p(y_u) in row u (meaningful on positive pairs)
    margin_neg: Tensor  # (N, N) M_n(y_u, y_v) (meaningful on negative pairs)
    margin_aug: Tensor  # () M_a

    def as_metrics(self) -> dict[str, float]:
        """Batch-level figures to log: means over the defined classes / class pairs.

        ``intra_sim`` and ``margin_pos`` are NaN when no class has two images; ``inter_sim``
        and ``margin_neg`` are NaN when the batch holds one class.
        """
        has_intra = ~self.intra.isnan()
        has_inter = ~self.inter.isnan()
        return {
            "intra_sim": _mean(self.intra[has_intra]),
            "inter_sim": _mean(self.inter[has_inter]),
            "margin_pos": _mean(self.class_margin_pos[has_intra]),
            "margin_neg": _mean(self.class_margin_neg[has_inter]),
            "margin_aug": float(self.margin_aug),
        }


def adaptive_margins(
    sim: Tensor,
    labels: Tensor,
    *,
    gamma: float = 0.5,
    mu: float = 0.2,
    instance: Tensor | None = None,
    adaptive: bool = True,
) -> MarginStats:
    """Class statistics and margins of one batch (formulas in the module docstring).

    Args:
        sim: ``(N, N)`` similarity matrix; detached here.
        labels: ``(N,)`` integer labels (possibly noisy).
        gamma: the base margin.
        mu: the upper end of the rescaled statistics, ``mu >= 0``.
        instance: ``(N,)`` image ids, equal for views of one image; default: all distinct.
        adaptive: ``False`` (ablation) keeps the statistics for logging but sets
            ``M_p = M_n = M_a = gamma``.
    """
    n = _check_inputs(sim, labels, instance)
    if not mu >= 0:
        raise ValueError(f"mu must be >= 0, got {mu!r}")
    if instance is None:
        instance = torch.arange(n, device=sim.device)
    with torch.no_grad():
        sim = sim.detach()
        classes, idx = torch.unique(labels, return_inverse=True)  # idx: (N,) class index
        onehot = F.one_hot(idx, classes.numel()).to(sim.dtype)  # (N, C)
        distinct = (instance[:, None] != instance[None, :]).to(sim.dtype)  # (N, N)
        sums = onehot.T @ (sim * distinct) @ onehot  # (C, C) summed similarity per class pair
        counts = onehot.T @ distinct @ onehot  # (C, C) number of pairs
        means = torch.where(counts > 0, sums / counts.clamp_min(1), math.nan)
        intra = means.diagonal().clone()
        off_diagonal = ~torch.eye(classes.numel(), dtype=torch.bool, device=sim.device)
        inter = torch.where(off_diagonal, means, math.nan)

        has_intra = ~intra.isnan()
        if adaptive:
            class_pos = gamma + _rescale(intra, has_intra, mu)
            class_neg = gamma - _rescale(inter, ~inter.isnan(), mu)
            margin_aug = intra[has_intra].min() if bool(has_intra.any()) else sim.new_tensor(gamma)
        else:
            class_pos = torch.full_like(intra, gamma)
            class_neg = torch.full_like(inter, gamma)
            margin_aug = sim.new_tensor(gamma)
        return MarginStats(
            classes=classes,
            intra=intra,
            inter=inter,
            class_margin_pos=class_pos,
            class_margin_neg=class_neg,
            margin_pos=class_pos[idx][:, None].expand(n, n),
            margin_neg=class_neg[idx][:, idx],
            margin_aug=margin_aug,
        )


def _rescale(values: Tensor, valid: Tensor, mu: float) -> Tensor:
    """``mu (v - min) / (max - min)`` over ``values[valid]``; 0 elsewhere and when degenerate."""
    out = torch.zeros_like(values)
    if int(valid.sum()) < 2:
        return out
    lo, hi = values[valid].min(), values[valid].max()
    if float(hi - lo) <= _DEGENERATE_RANGE:
        return out
    out[valid] = mu * (values[valid] - lo) / (hi - lo)
    return out


def _check_inputs(sim: Tensor, labels: Tensor, instance: Tensor | None) -> int:
    if sim.dim() != 2 or sim.shape[0] != sim.shape[1] or sim.shape[0] == 0:
        raise ValueError(f"sim must be a non-empty square (N, N) matrix, got {tuple(sim.shape)}")
    n = sim.shape[0]
    if labels.shape != (n,) or labels.is_floating_point():
        raise ValueError(
            f"labels must be an integer tensor of shape ({n},), got {labels.dtype} "
            f"{tuple(labels.shape)}"
        )
    if instance is not None and instance.shape != (n,):
        raise ValueError(f"instance must have shape ({n},), got {tuple(instance.shape)}")
    return n


def _mean(values: Tensor) -> float:
    return float(values.mean()) if values.numel() else math.nan
