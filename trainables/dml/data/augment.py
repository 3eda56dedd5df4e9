"""Augmentations on image tensors (torchvision.transforms.v2): weak, strong, view pairs.

Images are float tensors in ``[0, 1]``, ``(C, H, W)`` with ``C`` 1 or 3; batches are
``(B, C, H, W)``. torchvision applies ONE random draw to a whole batch tensor, so the batch
wrappers here (:class:`AugmentedPair`, :class:`TwoViews`, :func:`per_sample`) loop over the batch
to give every image its own draw. Randomness comes from torch's global generator (seed it with
``torch.manual_seed`` for reproducible views). Everything works on 1x8x8 digit images: with
``size=None`` the geometric part is an affine (crop-like scale and shift) that keeps the size,
and colour operations that need RGB (saturation, hue, grayscale) leave 1-channel images as is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.transforms import v2

__all__ = [
    "AugmentedPair",
    "TwoViews",
    "dsn_color_augment",
    "per_sample",
    "strong_augment",
    "weak_augment",
]

Transform = Callable[[torch.Tensor], torch.Tensor]


def _geometry(
    *, size: int | None, min_scale: float, shift: float, degrees: float, shear: float
) -> list[v2.Transform]:
    if size is not None:
        # the usual crop for real images: area in [min_scale, 1], then resize to size x size
        crop: list[v2.Transform] = [v2.RandomResizedCrop(size, scale=(min_scale, 1.0))]
        if degrees or shear:
            crop.append(
                v2.RandomAffine(
                    degrees=degrees, shear=shear, interpolation=v2.InterpolationMode.BILINEAR
                )
            )
        return crop
    # same size out: zoom by 1/sqrt(area) like a crop of that area, shift like its position
    zoom = min_scale**-0.5
    return [
        v2.RandomAffine(
            degrees=degrees,
            translate=(shift, shift),
            scale=(1.0, zoom),
            shear=shear,
            interpolation=v2.InterpolationMode.BILINEAR,
        )
    ]


def weak_augment(*, size: int | None = None, flip: bool = True) -> v2.Compose:
    """Weak view: a mild crop (area >= 80%, shift <= 10%) and, if ``flip``, a horizontal flip.

    ``size``: output side (``RandomResizedCrop``); ``None`` keeps the input size (affine).
    Turn ``flip`` off for images whose class changes under mirroring (digits).
    Shapes: ``(C, H, W) -> (C, H', W')``.
    """
    ops = _geometry(size=size, min_scale=0.8, shift=0.1, degrees=0.0, shear=0.0)
    if flip:
        ops.append(v2.RandomHorizontalFlip(p=0.5))
    return v2.Compose(ops)


def strong_augment(strength: float, *, size: int | None = None, flip: bool = True) -> v2.Compose:
    """Strong view whose magnitudes all scale linearly with ``strength = s`` in ``[0, 1]``.

    - crop: area in ``[1 - 0.92 s, 1]`` (``s = 1``: the ImageNet 0.08), shift ``<= 0.25 s``;
    - rotation ``+-30 s`` degrees, shear ``+-15 s`` degrees;
    - colour jitter (brightness, contrast, saturation ``0.4 s``, hue ``0.1 s``) with p = 0.8;
    - grayscale with p = ``0.2 s`` (RGB only);
    - random erasing with p = ``0.5 s`` (area 2-20%).

    ``s = 0`` with ``size=None`` and ``flip=False`` is the identity. Shapes as
    :func:`weak_augment`.

    Raises:
        ValueError: ``strength`` outside ``[0, 1]``.
    """
    s = float(strength)
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength!r}")
    ops = _geometry(
        size=size, min_scale=1.0 - 0.92 * s, shift=0.25 * s, degrees=30.0 * s, shear=15.0 * s
    )
    if flip:
        ops.append(v2.RandomHorizontalFlip(p=0.5))
    if s > 0:
        jitter = v2.ColorJitter(
            brightness=0.4 * s, contrast=0.4 * s, saturation=0.4 * s, hue=0.1 * s
        )
        ops += [
            v2.RandomApply([jitter], p=0.8),
            v2.RandomGrayscale(p=0.2 * s),
            v2.RandomErasing(p=0.5 * s, scale=(0.02, 0.2)),
        ]
    return v2.Compose(ops)


def dsn_color_augment() -> v2.Compose:
    """DSN's colour augmentation: jitter 0.4/0.4/0.4/0.1 (brightness, contrast, saturation,
    hue) with p = 0.8, then grayscale with p = 0.2. Meant for RGB images (on 1-channel
    images only brightness and contrast act)."""
    return v2.Compose(
        [
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            v2.RandomGrayscale(p=0.2),
        ]
    )


def per_sample(transform: Transform, images: torch.Tensor) -> torch.Tensor:
    """``transform`` with its own random draw per image: ``(B, C, H, W)`` or ``(C, H, W)``."""
    if images.ndim == 3:
        return transform(images)
    if images.ndim != 4:
        raise ValueError(
            f"images must be (C, H, W) or (B, C, H, W), got shape {tuple(images.shape)}"
        )
    return torch.stack([transform(x) for x in images])


class AugmentedPair:
    """``(weak(x), strong(x))`` views of a batch, one random draw per image (AHSML's pair:
    the two views of one image are always a positive pair).

    Example::

        pair = AugmentedPair(weak=weak_augment(flip=False), strong=strong_augment(0.5, flip=False))
        weak_view, strong_view = pair(images)  # each (B, C, H, W)
    """

    def __init__(self, *, weak: Transform, strong: Transform) -> None:
        self.weak = weak
        self.strong = strong

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return per_sample(self.weak, images), per_sample(self.strong, images)

    def stacked(self, image: torch.Tensor) -> torch.Tensor:
        """``(C, H, W) -> (2, C, H, W)``: the weak then the strong view of one image (the form a
        data-loader worker returns)."""
        return torch.stack([self.weak(image), self.strong(image)])


class TwoViews:
    """Two independent random views ``(t(x), t(x))`` of a batch, for contrastive losses
    (SupCon / NT-Xent, DSN). One random draw per image and view."""

    def __init__(self, transform: Transform) -> None:
        self.transform = transform

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return per_sample(self.transform, images), per_sample(self.transform, images)
