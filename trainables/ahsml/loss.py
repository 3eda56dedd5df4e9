"""AHSML's integrated loss: hierarchical similarity + adaptive margins + augmentation positives.

``forward(z_weak, z_strong, labels)`` takes the embeddings of a weak and a strong augmentation
of each of ``B`` images. Anchors [ours]: all ``2B`` views, ``z = [z_weak; z_strong]``; view
``u`` belongs to image ``g_u = u mod B``. For anchor ``u`` the pairs are

- ``A(u) = {v != u : g_v = g_u}``: the other view of the same image, always, whatever the
  labels (sample-wise consistency); never in ``P`` or ``N``;
- ``P(u) = {v : g_v != g_u, y_v = y_u}``: both views of every other image of the class;
- ``N(u) = {v : g_v != g_u, y_v != y_u}``.

With ``s`` the hierarchical similarity (:mod:`trainables.ahsml.similarity`) and the margins of
:mod:`trainables.ahsml.margins` (statistics over the ``2B`` views, detached), the loss is

``L = mean_u [ w_aug (1/rho) log(1 + sum_{v in A(u)} e^{-rho (s_uv - M_a)}) + base_u ]``

where ``base_u`` is the base pair loss's class term over ``P(u)``, ``N(u)`` (see
:mod:`trainables.ahsml.base_losses`); for the default ``ms`` this is the paper's integrated
MS-style loss ``(w_pos/alpha) log(1 + sum_P e^{-alpha (s - M_p)})
+ (w_neg/beta) log(1 + sum_N e^{beta (s - M_n)})``. The formula is from a secondary summary
of the paper (shared/methods.md section 4); the anchors and pair sets, the term weights and
the base-loss interface are this project's design.

Ablations [ours]: ``hyperbolic=False`` uses cosine similarity of the Euclidean embeddings;
``adaptive_margins=False`` sets ``M_p = M_n = M_a = gamma``; ``consistency=False`` drops the
augmentation term (the pair stays out of ``P`` and ``N``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu
from torch import Tensor, nn

from trainables.ahsml.base_losses import BasePairLoss, PairBatch, make_base_loss
from trainables.ahsml.margins import MarginStats, adaptive_margins
from trainables.ahsml.similarity import hierarchical_similarity
from trainables.dml.distances import CurvatureSource, PoincareDistance

__all__ = ["AHSMLLoss", "AHSMLOutput", "PairMasks", "view_pair_masks"]


class PairMasks(NamedTuple):
    """The pair sets of each anchor (row), ``(N, N)`` bool, pairwise disjoint, no diagonal."""

    aug: Tensor
    pos: Tensor
    neg: Tensor


def view_pair_masks(labels: Tensor, instance: Tensor) -> PairMasks:
    """``A``, ``P``, ``N`` for views with ``labels`` ``(N,)`` and image ids ``instance`` ``(N,)``.

    ``A``: same image, other view (whatever the labels); ``P``: other image, same label;
    ``N``: other image, other label.
    """
    same_image = instance[:, None] == instance[None, :]
    same_label = labels[:, None] == labels[None, :]
    self_pair = torch.eye(labels.numel(), dtype=torch.bool, device=labels.device)
    return PairMasks(
        aug=same_image & ~self_pair,
        pos=~same_image & same_label,
        neg=~same_image & ~same_label,
    )


@dataclass(frozen=True)
class AHSMLOutput:
    """The loss with its parts (means over anchors, detached) and the batch statistics."""

    loss: Tensor  # () with gradient
    aug_term: Tensor  # () mean augmentation term, before w_aug; 0 when consistency is off
    class_term: Tensor  # () mean base pair-loss term (weights included)
    stats: MarginStats

    def as_metrics(self) -> dict[str, float]:
        """Figures to log: the loss, its parts and the margins' batch statistics."""
        return {
            "loss": float(self.loss.detach()),
            "loss_aug": float(self.aug_term),
            "loss_class": float(self.class_term),
            **self.stats.as_metrics(),
        }


class AHSMLLoss(nn.Module):
    """AHSML's loss over weak / strong views (formulas and pair sets in the module docstring).

    Args:
        curvature: the ball's ``c > 0``: a float (fixed), or where to read it at every
            forward: a scalar tensor, an object with ``.curvature`` (a learnable
            ``HyperbolicHead``) or a zero-argument callable. Held by reference, not
            registered: the curvature parameter stays with the head that owns it.
        tau: temperature of ``s = exp(-d_c / tau)`` [ours].
        gamma: base margin of ``M_p``, ``M_n``. mu: range ``[0, mu]`` of the rescaled
            statistics.
        alpha, beta: MS scales of the positive / negative terms (base loss ``ms`` only).
        rho: scale of the augmentation term [ours: default = alpha].
        w_aug, w_pos, w_neg: weights of the augmentation, positive and negative terms [ours].
        base_loss: a name in ``BASE_LOSSES`` (``ms``, ``contrastive``, ``triplet``,
            ``circle``) or a :class:`BasePairLoss` instance (then ``alpha``, ``beta``, ``w_pos``,
            ``w_neg``, ``triplet_margin``, ``circle_scale`` are not used).
        triplet_margin: margin of the ``triplet`` base loss. circle_scale: scale of ``circle``.
        hyperbolic, adaptive_margins, consistency: ablation switches (module docstring).

    Example::

        head = HyperbolicHead(curvature=0.1, learnable=True)
        loss_fn = AHSMLLoss(curvature=head, tau=0.2)
        out = loss_fn(head(backbone(weak)), head(backbone(strong)), labels)
        out.loss.backward()
        report(out.as_metrics())
    """

    def __init__(
        self,
        *,
        curvature: CurvatureSource,
        tau: float = 1.0,
        gamma: float = 0.5,
        mu: float = 0.2,
        alpha: float = 2.0,
        beta: float = 50.0,
        rho: float = 2.0,
        w_aug: float = 1.0,
        w_pos: float = 1.0,
        w_neg: float = 1.0,
        base_loss: str | BasePairLoss = "ms",
        triplet_margin: float = 0.1,
        circle_scale: float = 80.0,
        hyperbolic: bool = True,
        adaptive_margins: bool = True,
        consistency: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("tau", tau), ("rho", rho)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if not mu >= 0:
            raise ValueError(f"mu must be >= 0, got {mu!r}")
        if not w_aug >= 0:
            raise ValueError(f"w_aug must be >= 0, got {w_aug!r}")
        # The shared distance resolves (and validates) the curvature source without
        # registering it; its distances are not used: the similarity function computes them.
        self._ball = PoincareDistance(curvature=curvature)
        self.tau = tau
        self.gamma = gamma
        self.mu = mu
        self.rho = rho
        self.w_aug = w_aug
        self.hyperbolic = hyperbolic
        self.adaptive_margins = adaptive_margins
        self.consistency = consistency
        self.base: BasePairLoss = (
            base_loss
            if isinstance(base_loss, BasePairLoss)
            else make_base_loss(
                base_loss,
                w_pos=w_pos,
                w_neg=w_neg,
                alpha=alpha,
                beta=beta,
                triplet_margin=triplet_margin,
                circle_scale=circle_scale,
            )
        )

    @property
    def curvature(self) -> float | Tensor:
        """The curvature the next forward uses."""
        return self._ball.curvature

    def forward(self, z_weak: Tensor, z_strong: Tensor, labels: Tensor) -> AHSMLOutput:
        """The loss of one batch.

        Args:
            z_weak: ``(B, D)`` embeddings of the weak views (on the ball when hyperbolic).
            z_strong: ``(B, D)`` embeddings of the strong views of the same images, same order.
            labels: ``(B,)`` (possibly noisy) label per image, shared by its two views; or
                ``(2B,)`` one label per view, ordered ``[weak; strong]``.

        Raises:
            ValueError: on mismatched shapes or labels.
            FloatingPointError: when the loss is not finite.
        """
        b = _check_views(z_weak, z_strong)
        view_labels = _view_labels(labels, b)
        instance = torch.arange(b, device=labels.device).repeat(2)  # (2B,) image id per view
        z = torch.cat([z_weak, z_strong])  # (2B, D) every view is an anchor
        sim = hierarchical_similarity(
            z, curvature=self.curvature, tau=self.tau, hyperbolic=self.hyperbolic
        )  # (2B, 2B)
        stats = adaptive_margins(
            sim,
            view_labels,
            gamma=self.gamma,
            mu=self.mu,
            instance=instance,
            adaptive=self.adaptive_margins,
        )
        masks = view_pair_masks(view_labels, instance)
        class_term = self.base(
            PairBatch(
                sim=sim,
                pos_mask=masks.pos,
                neg_mask=masks.neg,
                margin_pos=stats.margin_pos,
                margin_neg=stats.margin_neg,
            )
        )  # (2B,)
        if self.consistency:
            aug_logits = -self.rho * (sim - stats.margin_aug)
            aug_term = lmu.logsumexp(aug_logits, keep_mask=masks.aug).squeeze(1) / self.rho
        else:
            aug_term = torch.zeros_like(class_term)
        loss = (self.w_aug * aug_term + class_term).mean()
        if not bool(torch.isfinite(loss)):
            raise FloatingPointError(
                f"AHSML loss is not finite ({float(loss)}): the embeddings or the curvature "
                f"diverged (aug term {float(aug_term.mean())}, class term "
                f"{float(class_term.mean())})"
            )
        return AHSMLOutput(
            loss=loss,
            aug_term=aug_term.mean().detach(),
            class_term=class_term.mean().detach(),
            stats=stats,
        )


def _check_views(z_weak: Tensor, z_strong: Tensor) -> int:
    if z_weak.dim() != 2 or z_weak.shape[0] == 0:
        raise ValueError(f"z_weak must be a non-empty (B, D) tensor, got {tuple(z_weak.shape)}")
    if z_strong.shape != z_weak.shape:
        raise ValueError(
            f"z_strong must have the shape of z_weak {tuple(z_weak.shape)}, "
            f"got {tuple(z_strong.shape)}"
        )
    return z_weak.shape[0]


def _view_labels(labels: Tensor, b: int) -> Tensor:
    if labels.is_floating_point() or labels.dim() != 1 or labels.numel() not in (b, 2 * b):
        raise ValueError(
            f"labels must be integers of shape ({b},) or ({2 * b},), got {labels.dtype} "
            f"{tuple(labels.shape)}"
        )
    return labels.repeat(2) if labels.numel() == b else labels
