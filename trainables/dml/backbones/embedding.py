"""Backbone -> linear embedding -> optional hyperbolic head."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trainables.dml.backbones.conditional import ConditionalBackbone
from trainables.dml.hyperbolic import HyperbolicHead

__all__ = ["EmbeddingNet"]


class EmbeddingNet(nn.Module):
    """``x -> f = backbone(x[, modality]) (B, in_features) -> e = W f + b (B, embedding_size)``,
    then, with a hyperbolic head, ``z = head(e)`` inside the Poincaré ball.

    The Euclidean output is the raw ``e`` (not L2-normalised: the loss's distance normalises).
    The output is float32 (float64 stays float64) even under autocast: the final cast and the
    head run with autocast disabled, since ball operations and the losses' exponentials need
    at least float32 (methods.md section 0).

    Args:
        backbone: ``(B, C, H, W) -> (B, in_features)``; a :class:`ConditionalBackbone` takes
            ``modality`` too.
        in_features: the backbone's feature size.
        embedding_size: ``D``.
        hyperbolic: a :class:`~trainables.dml.hyperbolic.HyperbolicHead` (any
            ``(B, D) -> (B, D)`` module works), or ``None`` for a Euclidean embedding.

    Shapes: ``x (B, C, H, W)``, ``modality (B,) int`` (conditional backbones only)
    ``-> (B, D)``.

    Example::

        net = EmbeddingNet(backbone=SmallCNN(out_features=128), in_features=128,
                           embedding_size=32, hyperbolic=HyperbolicHead(curvature=0.1))
        with autocast_context(device):
            z = net(images)                     # (B, 32) float32, ||z|| < 1/sqrt(0.1)
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        in_features: int,
        embedding_size: int,
        hyperbolic: HyperbolicHead | nn.Module | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("embedding_size", embedding_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.backbone = backbone
        self.in_features = in_features
        self.embedding_size = embedding_size
        self.embedding = nn.Linear(in_features, embedding_size)
        self.hyperbolic = hyperbolic

    @property
    def conditional(self) -> bool:
        """Whether the backbone takes modality tags."""
        return isinstance(self.backbone, ConditionalBackbone)

    def features(self, x: Tensor, modality: Tensor | None = None) -> Tensor:
        """The backbone's features ``(B, in_features)`` (for extra heads, e.g. a classifier)."""
        if self.conditional:
            if modality is None:
                raise ValueError(
                    f"{type(self.backbone).__name__} is conditioned on the modality: pass "
                    f"modality=(B,) tags (0 sketch, 1 photo)"
                )
            out = self.backbone(x, modality)
        else:
            if modality is not None:
                raise ValueError(
                    f"{type(self.backbone).__name__} takes no modality tags (not a "
                    f"ConditionalBackbone); pass modality=None"
                )
            out = self.backbone(x)
        if out.ndim != 2 or out.shape[1] != self.in_features:
            raise ValueError(
                f"backbone {type(self.backbone).__name__} returned shape {tuple(out.shape)}, "
                f"expected (B, {self.in_features}) (in_features)"
            )
        return out

    def embed(self, features: Tensor) -> Tensor:
        """``(B, in_features) -> (B, D)``: the linear layer, then the head in float32+."""
        e = self.embedding(features)
        with torch.autocast(device_type=e.device.type, enabled=False):
            if e.dtype not in (torch.float32, torch.float64):
                e = e.float()
            return e if self.hyperbolic is None else self.hyperbolic(e)

    def forward(self, x: Tensor, modality: Tensor | None = None) -> Tensor:
        return self.embed(self.features(x, modality))
