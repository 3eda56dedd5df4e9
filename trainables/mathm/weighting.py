"""MATHM's adaptive weighting of the three triplet types (shared/methods.md section 6).

With ``x_k,i`` the margin terms of type ``k`` (:mod:`trainables.mathm.triplets`) over its
``n_k`` valid anchors, and ``softplus_beta(x) = log(1 + exp(beta x)) / beta``:

* ``L_k = (1/n_k) sum_i softplus_beta(x_k,i)``  (a smooth hinge),
* ``g_k = (1/n_k) sum_i sigmoid(beta x_k,i)``  (the mean slope of that hinge: how many of the
  type's triplets still violate the margin),
* ``w_k = mean_j(g_j) / max(g_k, floor)``  (types with few active triplets are scaled up),
* loss ``sum_k w_k L_k`` with ``w`` **detached**: the weights rescale each type's gradient and
  are not themselves optimised (ours, as the paper intends).

Modes, named by what the masks select: ``ce`` (no triplet term: the loss is 0), ``within``,
``cross``, ``hybrid`` (``L_k`` of that type alone), ``all`` (``sum_k L_k``, unweighted) and
``mathm`` (adaptive). ``published=True`` reproduces the released code instead:

* ``mathm``: ``loss = (sum_k w_k) (1/3) sum_j L_j`` with ``w`` **not** detached, the released
  code's current head (commit "fix little bugs on weighting"): ``(loss * weight[:, None])``
  broadcasts ``(3,)`` against ``(3, 1)`` into a ``(3, 3)`` matrix ``w_k L_j`` whose mean over
  the types of ``L`` is taken, so every type gets the same global scale and the gradient also
  flows through the weights. (The first code drop summed that matrix, ``(sum_k w_k) sum_j
  L_j``: three times the head's value and gradient; it is not offered.)
* ``within`` / ``cross`` / ``hybrid`` / ``all``: the released plain loss, a hard hinge
  ``relu(x)`` averaged over ``3 B`` entries where a single type is padded with two detached
  copies of itself (value ``mean_i relu(x_k,i)``, gradient a third of it), and ``all`` is
  ``(1/3) sum_k mean_i relu(x_k,i)``;
* anchors and margins as in :func:`~trainables.mathm.triplets.published_triplet_margins`.

The released ``--loss`` flag names the modes the other way round for two of them; see
:data:`RELEASED_LOSS_FLAGS`. It also defaults ``--tri-lambda`` to 0, so its README commands train
with cross-entropy alone: the triplet weight is the caller's and must be set explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.mathm.triplets import (
    TRIPLET_TYPES,
    hard_triplet_margins,
    published_triplet_margins,
)

Mode = Literal["ce", "within", "cross", "hybrid", "all", "mathm"]
MODES: tuple[str, ...] = ("ce", "within", "cross", "hybrid", "all", "mathm")

# The released train.py's ``--loss`` value -> the mode here that computes the same triplets.
# Read from train.py / loss.py: ``--loss cross`` builds the internal mode 'basic', whose masks
# select a same-modality positive and negative (our ``within``); ``--loss within`` builds the
# internal mode 'within', whose masks select other-modality positive and negative (our
# ``cross``); ``--loss basic`` (the README's baseline) matches no branch and falls back to the
# default criterion, also 'basic'. ``hybrid`` ('partial') and ``all`` keep their meaning.
RELEASED_LOSS_FLAGS: dict[str, str] = {
    "ce": "ce",
    "basic": "within",
    "cross": "within",
    "within": "cross",
    "hybrid": "hybrid",
    "all": "all",
    "mathm": "mathm",
}


def softplus_beta(x: Tensor, *, beta: float) -> Tensor:
    """``log(1 + exp(beta x)) / beta`` elementwise (torch's ``softplus`` with ``beta``)."""
    return F.softplus(x, beta=beta)


def adaptive_weights(gates: Tensor, *, floor: float, present: Tensor | None = None) -> Tensor:
    """``w_k = mean_j(g_j) / max(g_k, floor)`` over the present types; 0 for absent ones.

    Args:
        gates: ``(K,)`` mean sigmoid slopes ``g_k``.
        floor: lower bound on ``g_k`` in the denominator (keeps ``w`` bounded).
        present: ``(K,)`` bool, the types that have triplets; all of them if ``None``. Absent
            types take no part in the mean.

    Returns:
        ``(K,)`` weights, differentiable in ``gates`` (detach them for the intended loss).
    """
    if present is None:
        present = torch.ones_like(gates, dtype=torch.bool)
    if not bool(present.any()):
        raise ValueError("adaptive_weights: no triplet type is present")
    mean_gate = gates[present].mean()
    return torch.where(present, mean_gate / gates.clamp_min(floor), torch.zeros_like(gates))


@dataclass(frozen=True)
class MATHMOutput:
    """What :class:`MATHMTripletLoss` returns; per-type tensors follow :data:`TRIPLET_TYPES`.

    Attributes:
        loss: scalar triplet loss (0 in mode ``ce``), to add to CE with the triplet weight.
        type_losses: ``(3,)`` detached ``L_k`` (the hard-hinge means under ``published`` modes
            other than ``mathm``); 0 for a type without triplets.
        gates: ``(3,)`` detached ``g_k``; 0 for a type without triplets.
        weights: ``(3,)`` detached adaptive ``w_k``. They are the applied weights in mode
            ``mathm`` and diagnostics in the other modes.
        counts: ``(3,)`` number of anchors in each type.
    """

    loss: Tensor
    type_losses: Tensor
    gates: Tensor
    weights: Tensor
    counts: Tensor

    def metrics(self, prefix: str = "train/") -> dict[str, float]:
        """Flat scalar metrics, e.g. ``train/triplet_weight_cross``, for logging."""
        out = {f"{prefix}triplet_loss": float(self.loss.detach())}
        for k, name in enumerate(TRIPLET_TYPES):
            out[f"{prefix}triplet_weight_{name}"] = float(self.weights[k])
            out[f"{prefix}triplet_loss_{name}"] = float(self.type_losses[k])
            out[f"{prefix}triplet_gate_{name}"] = float(self.gates[k])
            out[f"{prefix}triplet_count_{name}"] = float(self.counts[k])
        return out


def pairwise_euclidean(x: Tensor) -> Tensor:
    """``(B, D) -> (B, B)`` Euclidean distances ``sqrt(max(|x_i|^2 + |x_j|^2 - 2 x_i.x_j, 1e-12))``.

    The clamp keeps the gradient finite on the diagonal (as in the released code).
    """
    sq = (x * x).sum(dim=1)
    return (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp_min(1e-12).sqrt()


class MATHMTripletLoss(nn.Module):
    """The triplet term of MATHM on L2-normalised embeddings (Euclidean distance).

    Example::

        loss_fn = MATHMTripletLoss(margin=0.2, beta=20.0, floor=0.1, mode="mathm")
        out = loss_fn(embeddings, labels, modalities)  # (B, D), (B,), (B,) with 0/1 tags
        total = F.cross_entropy(logits, labels) + triplet_weight * out.loss
        metrics = out.metrics()  # per-type weights, losses, gates, counts

    Args:
        margin: triplet margin ``m``.
        beta: softplus / sigmoid sharpness.
        floor: lower bound of ``g_k`` in the weights.
        mode: one of :data:`MODES` (see the module docstring).
        published: reproduce the released code's computation (module docstring).

    Raises:
        ValueError: (not ``published``) when a type the mode uses has no valid anchor in the
            batch, e.g. a batch without photos in mode ``cross``.
        FloatingPointError: when the loss is not finite.
    """

    def __init__(
        self,
        *,
        margin: float = 0.2,
        beta: float = 20.0,
        floor: float = 0.1,
        mode: Mode = "mathm",
        published: bool = False,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown MATHM mode {mode!r}; known modes: {list(MODES)}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        if floor <= 0:
            raise ValueError(f"floor must be > 0, got {floor}")
        self.margin = margin
        self.beta = beta
        self.floor = floor
        self.mode = mode
        self.published = published

    def extra_repr(self) -> str:
        return (
            f"margin={self.margin}, beta={self.beta}, floor={self.floor}, mode={self.mode!r}, "
            f"published={self.published}"
        )

    def forward(self, embeddings: Tensor, labels: Tensor, modalities: Tensor) -> MATHMOutput:
        """``embeddings (B, D)``, ``labels (B,)``, ``modalities (B,)`` -> :class:`MATHMOutput`."""
        if embeddings.ndim != 2 or embeddings.shape[0] != labels.shape[0]:
            raise ValueError(
                f"embeddings must be (B, D) with B = len(labels) = {labels.shape[0]}, "
                f"got {tuple(embeddings.shape)}"
            )
        zeros = embeddings.new_zeros(len(TRIPLET_TYPES))
        if self.mode == "ce":
            return MATHMOutput(
                loss=embeddings.new_zeros(()),
                type_losses=zeros,
                gates=zeros,
                weights=zeros,
                counts=torch.zeros(len(TRIPLET_TYPES), dtype=torch.long),
            )
        dist = pairwise_euclidean(F.normalize(embeddings, dim=1))  # (B, B)
        if self.published:
            out = self._published(dist, labels, modalities)
        else:
            out = self._ours(dist, labels, modalities)
        if not bool(torch.isfinite(out.loss)):
            raise FloatingPointError(
                f"MATHM triplet loss is not finite ({float(out.loss)}); per-type losses "
                f"{out.type_losses.tolist()}, weights {out.weights.tolist()}"
            )
        return out

    def _ours(self, dist: Tensor, labels: Tensor, modalities: Tensor) -> MATHMOutput:
        margins = hard_triplet_margins(dist, labels, modalities, margin=self.margin)
        counts = torch.tensor([margins[t].numel() for t in TRIPLET_TYPES], dtype=torch.long)
        used = TRIPLET_TYPES if self.mode in ("all", "mathm") else (self.mode,)
        empty = [t for t in used if margins[t].numel() == 0]
        if empty:
            raise ValueError(
                f"MATHM mode {self.mode!r}: no anchor of the batch has both a valid positive and "
                f"a valid negative for triplet type(s) {empty}; batches need at least two "
                f"classes, each with samples of both modalities (counts per type "
                f"{dict(zip(TRIPLET_TYPES, counts.tolist(), strict=True))})"
            )
        zero = dist.new_zeros(())
        type_losses = torch.stack(
            [
                softplus_beta(x, beta=self.beta).mean() if x.numel() else zero
                for x in (margins[t] for t in TRIPLET_TYPES)
            ]
        )  # (3,)
        with torch.no_grad():
            gates = torch.stack(
                [
                    torch.sigmoid(self.beta * x).mean() if x.numel() else zero
                    for x in (margins[t] for t in TRIPLET_TYPES)
                ]
            )
            weights = adaptive_weights(gates, floor=self.floor, present=counts.to(gates.device) > 0)
        if self.mode == "mathm":
            loss = (weights * type_losses).sum()  # weights carry no gradient
        elif self.mode == "all":
            loss = type_losses.sum()
        else:
            loss = type_losses[TRIPLET_TYPES.index(self.mode)]
        return MATHMOutput(
            loss=loss,
            type_losses=type_losses.detach(),
            gates=gates,
            weights=weights,
            counts=counts,
        )

    def _published(self, dist: Tensor, labels: Tensor, modalities: Tensor) -> MATHMOutput:
        margins = published_triplet_margins(dist, labels, modalities, margin=self.margin)
        x = torch.stack([margins[t] for t in TRIPLET_TYPES])  # (3, B)
        gates = torch.sigmoid(self.beta * x).mean(dim=1)  # (3,)
        weights = adaptive_weights(gates, floor=self.floor)  # (3,), not detached
        counts = torch.full((len(TRIPLET_TYPES),), x.shape[1], dtype=torch.long)
        if self.mode == "mathm":
            type_losses = softplus_beta(x, beta=self.beta).mean(dim=1)  # (3,)
            # (3, 3) broadcast w_k L_j, then the mean over j: (sum_k w_k) mean_j L_j, as released
            loss = (type_losses * weights[:, None]).mean(dim=1).sum()
        else:
            hinge = torch.relu(x)  # (3, B)
            type_losses = hinge.mean(dim=1)
            if self.mode == "all":
                loss = type_losses.mean()
            else:
                k = TRIPLET_TYPES.index(self.mode)
                # released: one live copy and two detached copies averaged together
                loss = (type_losses[k] + 2.0 * type_losses[k].detach()) / 3.0
        return MATHMOutput(
            loss=loss,
            type_losses=type_losses.detach(),
            gates=gates.detach(),
            weights=weights.detach(),
            counts=counts,
        )
