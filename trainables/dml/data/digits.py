"""The embedded default data: scikit-learn's handwritten digits, split class-disjointly.

THIS IS A SMOKE-SCALE TASK: 1,797 images of 8x8 pixels, 10 classes, ~180 per class. It makes
every objective runnable end to end on a laptop CPU with no download; its numbers say nothing
about CUB, Cars, SOP, Sketchy or TU-Berlin.

Split (fixed and seeded parts): the test classes are fixed, digits 8 and 9 (the "standard test
classes" of this dataset, like CUB's 101-200, so test results compare across seeds); the
validation classes, 2 of digits 0-7 by default, are drawn with ``seed``; the rest (6) are the
train-fit classes: 6 / 2 / 2.

For the cross-modal objectives, :func:`sketch_modality` derives a sketch-like second modality
(dark edge strokes on white, randomly warped) standing in for sketch-vs-photo.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from trainables.dml.data.noise import small_cluster_noise, symmetric_noise
from trainables.dml.data.splits import ClassSplit, split_classes

__all__ = [
    "DIGITS_TEST_CLASSES",
    "DigitsSplit",
    "ModalitySet",
    "TwoModalityDigits",
    "digits_images",
    "load_digits_split",
    "load_two_modality_digits",
    "sketch_modality",
]

DIGITS_TEST_CLASSES = (8, 9)
SKETCH, PHOTO = 0, 1  # modality tags, as DSN/MATHM's CSE-ResNet
NoiseKind = Literal["none", "symmetric", "small_cluster"]


@functools.lru_cache(maxsize=1)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_digits()
    return bunch.images.astype(np.float32) / 16.0, bunch.target.astype(np.int64)


def digits_images(*, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits: images ``(N, 1, size, size)`` float32 in ``[0, 1]``, labels ``(N,)``.

    The raw pixels (0-16) are divided by 16. ``size > 8`` upsamples bilinearly (antialiased,
    clamped to ``[0, 1]``): 8x8 is enough for an MLP or a small CNN; 16x16 gives edge maps
    (the sketch modality) thin strokes and leaves room for strided convolutions.
    """
    if size < 8:
        raise ValueError(f"size must be >= 8 (the digits are 8x8), got {size}")
    images, labels = _raw_digits()
    x = torch.from_numpy(images.copy())[:, None]  # (N, 1, 8, 8)
    if size != 8:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        ).clamp_(0.0, 1.0)
    return x, torch.from_numpy(labels.copy())


def _class_split(seed: int, val_fraction: float) -> ClassSplit:
    return split_classes(
        range(10), test_classes=DIGITS_TEST_CLASSES, val_fraction=val_fraction, seed=seed
    )


def _given_or_seeded_split(
    split: ClassSplit | None, *, seed: int, val_fraction: float
) -> ClassSplit:
    if split is None:
        return _class_split(seed, val_fraction)
    if split.test != DIGITS_TEST_CLASSES:
        raise ValueError(
            f"split.test must be the digits' fixed test classes {DIGITS_TEST_CLASSES}, "
            f"got {split.test}"
        )
    return split


def _select(labels: torch.Tensor, classes: tuple[int, ...]) -> torch.Tensor:
    return torch.isin(labels, torch.tensor(classes, dtype=labels.dtype))


@dataclass(frozen=True)
class DigitsSplit:
    """Digits split class-disjointly, with training-label noise (smoke-scale task).

    Images ``(N_part, 1, S, S)`` float32 in ``[0, 1]``; labels ``(N_part,)`` int64, the digit
    itself (not renumbered). ``train_labels`` carry the noise; ``train_clean_labels`` are the
    true ones; validation and test labels are never noised.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    train_clean_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    split: ClassSplit
    noise: str
    noise_rate: float
    realised_noise_rate: float


def load_digits_split(
    *,
    seed: int = 0,
    noise: NoiseKind = "none",
    noise_rate: float = 0.0,
    val_fraction: float = 0.25,
    size: int = 8,
    split: ClassSplit | None = None,
) -> DigitsSplit:
    """The default DML task: digits, 6 train / 2 validation / 2 test classes (smoke-scale).

    Test classes are fixed (8, 9); validation classes are ``round(val_fraction * 8)`` of 0-7,
    drawn with ``seed``; training labels get ``noise`` at ``noise_rate`` (seeded with ``seed``):
    ``"symmetric"`` (exactly ``round(rate * N_train)`` flips) or ``"small_cluster"`` (whole
    classes dissolved into k-means clusters of the pixels; with only 6 training classes the
    realised rate moves in steps of about 1/6).

    ``split`` replaces the seeded draw (``val_fraction`` is then unused): a cross-validation
    fold (:func:`trainables.dml.data.folds.fold_split`) passes its own fit / val classes here.
    Its test classes must be the fixed ones, so a fold can never validate on them.

    Raises:
        ValueError: an unknown ``noise`` (listing the known kinds), a rate without noise, or a
            ``split`` whose test classes are not :data:`DIGITS_TEST_CLASSES`.
    """
    kinds = ("none", "symmetric", "small_cluster")
    if noise not in kinds:
        raise ValueError(f"unknown noise {noise!r}; known: {list(kinds)}")
    if noise == "none" and noise_rate:
        raise ValueError(f"noise_rate={noise_rate} given with noise='none'")
    images, labels = digits_images(size=size)
    split = _given_or_seeded_split(split, seed=seed, val_fraction=val_fraction)
    tr, va, te = (_select(labels, part) for part in (split.train, split.val, split.test))
    clean = labels[tr]
    noisy, realised = clean, 0.0
    if noise != "none":
        if noise == "symmetric":
            result = symmetric_noise(clean, rate=noise_rate, seed=seed)
        else:
            flat = images[tr].reshape(int(tr.sum()), -1)
            result = small_cluster_noise(clean, rate=noise_rate, seed=seed, features=flat)
        noisy, realised = torch.from_numpy(result.labels), result.realised_rate
    return DigitsSplit(
        train_images=images[tr],
        train_labels=noisy,
        train_clean_labels=clean,
        val_images=images[va],
        val_labels=labels[va],
        test_images=images[te],
        test_labels=labels[te],
        split=split,
        noise=noise,
        noise_rate=float(noise_rate),
        realised_noise_rate=realised,
    )


def sketch_modality(images: torch.Tensor, *, seed: int, threshold: float = 0.5) -> torch.Tensor:
    """Sketch-like rendering of ``images``: dark edge strokes on white, randomly warped.

    Per image: Sobel gradient magnitude ``g = sqrt(gx^2 + gy^2)`` (replicate padding), strokes
    where ``g > threshold * max(g)``, a random affine (rotation +-15 deg, shift +-10%, scale
    0.9-1.1, shear +-10 deg; drawn from a generator seeded with ``seed``), then inverted so
    strokes are 0 on a background of 1 (a photo digit is bright on dark).

    Shapes: ``(N, 1, H, W) -> (N, 1, H, W)``, float32 in ``[0, 1]``.
    """
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"images must be (N, 1, H, W), got shape {tuple(images.shape)}")
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([kx, kx.T])[:, None]  # (2, 1, 3, 3): d/dx, d/dy
    grad = F.conv2d(F.pad(images.float(), (1, 1, 1, 1), mode="replicate"), kernels)
    mag = grad.pow(2).sum(1, keepdim=True).sqrt()  # (N, 1, H, W)
    peak = mag.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12)
    strokes = (mag > threshold * peak).float()
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(images.shape[0], 5, generator=gen) * 2 - 1  # (N, 5) in [-1, 1]
    angle, shear = torch.deg2rad(15.0 * u[:, 0]), torch.deg2rad(10.0 * u[:, 1])
    scale, shift = 1.0 + 0.1 * u[:, 2], 2 * 0.1 * u[:, 3:5]  # shift in [-1, 1] grid units
    cos, sin, zero, one = angle.cos(), angle.sin(), torch.zeros_like(angle), torch.ones_like(angle)
    rotate = torch.stack([cos, -sin, sin, cos], 1).view(-1, 2, 2)
    shear_x = torch.stack([one, shear.tan(), zero, one], 1).view(-1, 2, 2)
    forward = scale[:, None, None] * rotate @ shear_x  # (N, 2, 2): input -> output coordinates
    inverse = torch.linalg.inv(forward)
    # grid_sample reads input at inverse @ (p_out - shift) for every output point p_out
    theta = torch.cat([inverse, -(inverse @ shift[:, :, None])], 2)  # (N, 2, 3)
    grid = F.affine_grid(theta, list(strokes.shape), align_corners=False)
    warped = F.grid_sample(
        strokes, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return 1.0 - warped.clamp(0.0, 1.0)


@dataclass(frozen=True)
class ModalitySet:
    """One part of a two-modality set: images ``(N, 1, S, S)``, labels ``(N,)`` and modality
    tags ``(N,)`` (0 = sketch, 1 = photo)."""

    images: torch.Tensor
    labels: torch.Tensor
    modalities: torch.Tensor


@dataclass(frozen=True)
class TwoModalityDigits:
    """Digits as a zero-shot sketch-vs-photo task (smoke-scale): ``train`` and ``val`` are the
    seen side (class-disjoint from each other), ``test`` the unseen classes (8, 9)."""

    train: ModalitySet
    val: ModalitySet
    test: ModalitySet
    split: ClassSplit


def load_two_modality_digits(
    *, seed: int = 0, val_fraction: float = 0.25, size: int = 16, split: ClassSplit | None = None
) -> TwoModalityDigits:
    """Digits with a sketch modality, split like :func:`load_digits_split` (smoke-scale task).

    Within each class the samples are halved at random (seeded): one half stays photos
    (modality 1), the other half is rendered by :func:`sketch_modality` (modality 0), so no
    sketch is drawn from a photo in the set. Default ``size=16``: edge maps of 8x8 digits are
    blobs, at 16x16 they read as strokes. ``split``: as in :func:`load_digits_split`.
    """
    images, labels = digits_images(size=size)
    split = _given_or_seeded_split(split, seed=seed, val_fraction=val_fraction)
    rng = np.random.default_rng(seed)
    modality = torch.full_like(labels, PHOTO)
    for c in range(10):
        idx = np.flatnonzero(labels.numpy() == c)
        modality[rng.permutation(idx)[: idx.size // 2]] = SKETCH
    is_sketch = modality == SKETCH
    out = images.clone()
    out[is_sketch] = sketch_modality(images[is_sketch], seed=seed)
    parts = []
    for classes in (split.train, split.val, split.test):
        sel = _select(labels, classes)
        parts.append(ModalitySet(images=out[sel], labels=labels[sel], modalities=modality[sel]))
    return TwoModalityDigits(train=parts[0], val=parts[1], test=parts[2], split=split)
