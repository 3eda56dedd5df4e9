"""Modality-conditioned squeeze-and-excitation (the "C" of CSE-ResNet; DSN / MATHM / SAKE).

The modality tag of each image (0 sketch, 1 photo) enters the excitation MLP of every SE
block, so one shared network can recalibrate its channels differently per modality
[code: haowang1992/DSN ``senet.py`` ``CSEModule``; huangzongheng/MATHM ``senet.py``]. As in
that code the tag joins the reduced vector, i.e. it is an input of the second excitation
layer; ours is the one-hot of the tag (``num_modalities`` columns) rather than the 0/1 scalar,
which is the same family of functions for two modalities and extends to more.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConditionalBackbone", "ConditionalSE", "check_modality"]


def check_modality(modality: Tensor, *, batch_size: int, num_modalities: int) -> Tensor:
    """Validate modality tags ``(B,)`` of an integer dtype in ``[0, num_modalities)``.

    Returns:
        the tags as ``int64`` (``(B,)``).
    """
    if not isinstance(modality, Tensor):
        raise TypeError(f"modality must be a tensor of tags, got {type(modality).__name__}")
    if modality.dtype == torch.bool or modality.is_floating_point() or modality.is_complex():
        raise TypeError(
            f"modality must hold integer tags (0 sketch, 1 photo), got {modality.dtype}"
        )
    if modality.shape != (batch_size,):
        raise ValueError(
            f"modality must have shape ({batch_size},) (one tag per image), got "
            f"{tuple(modality.shape)}"
        )
    # one host sync per forward; out-of-range indices would otherwise be a device-side assert
    if batch_size and bool(((modality < 0) | (modality >= num_modalities)).any()):
        raise ValueError(
            f"modality tags must lie in [0, {num_modalities}), got values "
            f"{sorted(set(modality.tolist()))}"
        )
    return modality.long()


class ConditionalSE(nn.Module):
    """Squeeze-and-excitation whose excitation also receives the modality tag.

    For ``x (B, C, H, W)`` and tags ``t (B,)``:

    - squeeze: ``s = mean_{h,w} x`` -> ``(B, C)``;
    - ``h = ReLU(W1 s + b1)`` -> ``(B, C/r)``;
    - ``g = sigmoid(W2 [h ; onehot(t)] + b2)`` -> ``(B, C)``;
    - ``out = x * g[:, :, None, None]`` -> ``(B, C, H, W)``.

    Args:
        channels: ``C``.
        num_modalities: number of tags (2: sketch, photo).
        reduction: ``r``; the hidden width is ``max(1, C // r)`` (16 in SE-ResNet).

    Call with tags already checked by :func:`check_modality` (``int64``, in range).
    """

    def __init__(self, channels: int, *, num_modalities: int = 2, reduction: int = 16) -> None:
        super().__init__()
        for name, value in (
            ("channels", channels),
            ("num_modalities", num_modalities),
            ("reduction", reduction),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        hidden = max(1, channels // reduction)
        self.num_modalities = num_modalities
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden + num_modalities, channels)

    def forward(self, x: Tensor, modality: Tensor) -> Tensor:
        squeezed = x.mean(dim=(2, 3))  # (B, C)
        hidden = F.relu(self.fc1(squeezed))  # (B, C/r)
        tag = F.one_hot(modality, self.num_modalities).to(hidden.dtype)  # (B, M)
        gate = torch.sigmoid(self.fc2(torch.cat([hidden, tag], dim=1)))  # (B, C)
        return x * gate[:, :, None, None].to(x.dtype)


class ConditionalBackbone(nn.Module):
    """Base of the backbones that take modality tags.

    ``forward(x (B, C_in, H, W), modality (B,) int) -> (B, out_features)``. Subclasses set
    ``out_features`` and ``num_modalities``; :class:`~trainables.dml.backbones.EmbeddingNet`
    passes its ``modality`` argument to backbones of this type (and refuses it for others).
    """

    out_features: int
    num_modalities: int

    def forward(self, x: Tensor, modality: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
