"""Synthetic label noise for the noisy-label setting (methods.md section 1).

Noise is applied to TRAINING labels only: both functions take just the training labels (the
validation and test sets never pass through here), are seeded, and return a :class:`NoisyLabels`
that records what was changed, so the realised rate can be logged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.cluster import KMeans

__all__ = ["NoisyLabels", "small_cluster_noise", "symmetric_noise"]


@dataclass(frozen=True)
class NoisyLabels:
    """Noisy training labels and how they came about.

    Attributes:
        labels: the noisy labels, ``(N,)`` int64.
        clean: the labels given, ``(N,)`` int64.
        changed: ``(N,)`` bool, ``labels != clean``.
        kind: ``"symmetric"`` or ``"small_cluster"``.
        rate: the requested rate.
        seed: the seed used.
    """

    labels: np.ndarray
    clean: np.ndarray
    changed: np.ndarray
    kind: str
    rate: float
    seed: int

    @property
    def realised_rate(self) -> float:
        """Fraction of samples whose label was changed, ``mean(changed)``."""
        return float(self.changed.mean()) if self.changed.size else 0.0


def _as_labels(labels: Sequence[int] | np.ndarray | Any) -> np.ndarray:
    # torch tensors, lists and arrays alike; .cpu() only exists on tensors
    arr = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels)
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D (N,), got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _check_rate(rate: float) -> float:
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"noise rate must be in [0, 1], got {rate!r}")
    return rate


def symmetric_noise(
    labels: Sequence[int] | np.ndarray | Any, *, rate: float, seed: int
) -> NoisyLabels:
    """Symmetric label flips: exactly ``round(rate * N)`` samples get a new label.

    The flipped samples are drawn without replacement; each gets a label drawn uniformly from
    the OTHER classes present in ``labels`` (``C - 1`` choices), so every flip is a real change
    and ``realised_rate == round(rate * N) / N``.

    (PRISM's published CUB lists flip Bernoulli-style: 9.7% / 19.6% / 49.7% realised for
    10 / 20 / 50%, and its 20% list even holds 6 labels of test class 101; we do neither.)

    Args:
        labels: training labels ``(N,)``, integers.
        rate: fraction of samples to relabel, in ``[0, 1]``.
        seed: seed of the draw (same seed, same noisy labels).

    Raises:
        ValueError: bad ``rate``, non-integer labels, or ``rate > 0`` with a single class.
    """
    clean = _as_labels(labels)
    rate = _check_rate(rate)
    n_flip = round(rate * clean.size)
    classes = np.unique(clean)
    if n_flip and classes.size < 2:
        raise ValueError("symmetric noise needs at least 2 classes to flip labels between")
    rng = np.random.default_rng(seed)
    noisy = clean.copy()
    idx = rng.choice(clean.size, size=n_flip, replace=False)
    # position of each label among the classes, shifted by 1..C-1: uniform over the others
    pos = np.searchsorted(classes, clean[idx])
    shift = rng.integers(1, classes.size, size=n_flip) if n_flip else np.zeros(0, np.int64)
    noisy[idx] = classes[(pos + shift) % classes.size]
    return NoisyLabels(
        labels=noisy, clean=clean, changed=noisy != clean, kind="symmetric", rate=rate, seed=seed
    )


def small_cluster_noise(
    labels: Sequence[int] | np.ndarray | Any,
    *,
    rate: float,
    seed: int,
    features: np.ndarray | Any | None = None,
    cluster_size: int = 2,
) -> NoisyLabels:
    """PRISM-style small-cluster noise: some classes are dissolved into small clusters, and each
    cluster is relabelled, as a whole, to one of the remaining classes.

    Classes are taken in a seeded random order and dissolved until the dissolved samples reach
    ``rate * N`` (so the realised rate is at least ``rate`` and overshoots by less than one
    class). A dissolved class of ``n_c`` samples is cut into ``ceil(n_c / cluster_size)``
    clusters: k-means on ``features`` when given (samples that look alike move together, as in
    PRISM), else random groups of ``cluster_size``. Each cluster gets one label drawn uniformly
    from the kept classes. Kept classes are untouched; dissolved classes vanish from the labels.

    This is what PRISM's published lists show (CUB, 100 classes): 25% noise leaves 75 classes,
    each kept class intact, each dissolved class spread over ~25 others (realised 25.3%); 50%
    leaves 50 (50.3%). ``cluster_size=2`` matches their ~30 clusters per 60-image class.

    Args:
        labels: training labels ``(N,)``, integers.
        rate: fraction of samples to relabel, in ``[0, 1)``.
        seed: seed of the class order, the grouping and the targets.
        features: optional ``(N, ...)`` features (flattened to ``(N, D)``) for the k-means.
        cluster_size: mean cluster size (>= 1).

    Raises:
        ValueError: bad ``rate`` / ``cluster_size`` / ``features`` shape, or a rate that would
            dissolve every class.
    """
    clean = _as_labels(labels)
    rate = _check_rate(rate)
    if cluster_size < 1:
        raise ValueError(f"cluster_size must be >= 1, got {cluster_size}")
    feats = None
    if features is not None:
        feats = np.asarray(features.cpu() if hasattr(features, "cpu") else features)
        if feats.shape[0] != clean.size:
            raise ValueError(f"features has {feats.shape[0]} rows for {clean.size} labels")
        feats = feats.reshape(clean.size, -1).astype(np.float64)
    rng = np.random.default_rng(seed)
    classes = np.unique(clean)
    target = rate * clean.size
    dissolved: list[int] = []
    count = 0
    for c in rng.permutation(classes):
        if count >= target:
            break
        dissolved.append(int(c))
        count += int((clean == c).sum())
    kept = np.setdiff1d(classes, dissolved)
    if dissolved and kept.size == 0:
        raise ValueError(
            f"small-cluster noise at rate {rate} would dissolve all {classes.size} classes; "
            "at least one class must remain to receive the clusters"
        )
    noisy = clean.copy()
    for c in dissolved:
        idx = np.flatnonzero(clean == c)
        k = min(math.ceil(idx.size / cluster_size), idx.size)
        if feats is not None and k > 1:
            assign = KMeans(n_clusters=k, n_init="auto", random_state=seed).fit_predict(feats[idx])
        else:
            assign = np.empty(idx.size, np.int64)
            for j, group in enumerate(np.array_split(rng.permutation(idx.size), k)):
                assign[group] = j
        targets = rng.choice(kept, size=k)
        noisy[idx] = targets[assign]
    return NoisyLabels(
        labels=noisy,
        clean=clean,
        changed=noisy != clean,
        kind="small_cluster",
        rate=rate,
        seed=seed,
    )
