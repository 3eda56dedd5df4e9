"""Random views of a batch of image tensors, one random draw per image, in one pass.

torchvision's transforms draw ONE set of parameters per call, so a per-image draw costs a
Python loop over the batch (:func:`trainables.dml.data.augment.per_sample`), about a
millisecond an image on a CPU core: too slow for the smoke-scale digits, whose DSN epoch must
take about a second with two views of every image. Here the per-image affine is one
``affine_grid`` / ``grid_sample`` and the colour jitter one broadcast. The real benchmarks keep
torchvision's per-image transforms in the data-loader workers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["random_views"]


def random_views(
    images: Tensor,
    *,
    generator: torch.Generator,
    degrees: float = 10.0,
    translate: float = 0.1,
    scale: float = 0.1,
    jitter: float = 0.4,
    p_jitter: float = 0.8,
) -> Tensor:
    """One random view of each image of ``images (B, C, H, W)`` in ``[0, 1]`` -> ``(B, C, H, W)``.

    Per image ``b``, with ``u ~ U[-1, 1]`` drawn independently for each quantity:

    - affine about the centre: rotation ``degrees u``, zoom ``1 + scale u``, shift
      ``translate u`` (a fraction of the side) along each axis; the output reads the input at
      ``A^-1 (p - t)`` with border padding (the background of both sketches and photos extends);
    - with probability ``p_jitter``: brightness ``x <- x (1 + jitter u)``, then contrast
      ``x <- m + (x - m)(1 + jitter u')`` with ``m`` the image mean (DSN's colour jitter as it
      acts on one-channel images); clamped to ``[0, 1]``.

    ``generator`` (CPU) makes the views reproducible; the result is on ``images``'s device.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    b = images.shape[0]
    u = (torch.rand(b, 7, generator=generator) * 2 - 1).to(images.device)  # (B, 7) in [-1, 1]
    angle = u[:, 0] * math.radians(degrees)
    zoom = 1.0 + scale * u[:, 1]
    shift = 2.0 * translate * u[:, 2:4]  # grid units span [-1, 1]: a side is 2
    cos, sin = angle.cos() / zoom, angle.sin() / zoom
    inverse = torch.stack([cos, sin, -sin, cos], dim=1).view(b, 2, 2)  # (B, 2, 2) = A^-1
    theta = torch.cat([inverse, -(inverse @ shift[:, :, None])], dim=2)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    apply = (u[:, 4] + 1) / 2 < p_jitter  # (B,) with probability p_jitter
    brightness = torch.where(apply, 1.0 + jitter * u[:, 5], torch.ones_like(u[:, 5]))
    contrast = torch.where(apply, 1.0 + jitter * u[:, 6], torch.ones_like(u[:, 6]))
    out = out * brightness[:, None, None, None]
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = mean + (out - mean) * contrast[:, None, None, None]
    return out.clamp(0.0, 1.0)
