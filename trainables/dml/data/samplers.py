"""Batch samplers: m-per-class (pytorch-metric-learning, seeded) and PK-by-modality (MATHM)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from pytorch_metric_learning.samplers import MPerClassSampler as _PMLMPerClassSampler
from torch.utils.data import Sampler

__all__ = ["MPerClassSampler", "PKModalitySampler"]


def _as_int_array(name: str, values: Sequence[int] | np.ndarray | Any) -> np.ndarray:
    arr = np.asarray(values.cpu() if hasattr(values, "cpu") else values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (N,), got shape {arr.shape}")
    return arr.astype(np.int64)


class MPerClassSampler(_PMLMPerClassSampler):
    """pytorch-metric-learning's ``MPerClassSampler``, made reproducible.

    Each block of ``batch_size`` indices holds ``batch_size / m`` distinct classes with ``m``
    samples each (drawn with replacement when a class has fewer than ``m``); an epoch yields
    ``length_before_new_iter`` indices (rounded down to whole batches). Use it as the
    ``sampler=`` of a ``DataLoader`` with the same ``batch_size`` and ``drop_last=True``.

    What PML lacks and this adds: PML draws from the process-global ``numpy.random``; here each
    epoch draws from its own generator seeded with ``(seed, epoch)``, so a trial's batches do
    not depend on other code touching the global RNG. Call :meth:`set_epoch` between epochs
    (as with ``DistributedSampler``) for fresh batches. Construction and its checks are PML's.

    Example::

        sampler = MPerClassSampler(labels, m=4, batch_size=32, length_before_new_iter=3200, seed=0)
        loader = DataLoader(dataset, batch_size=32, sampler=sampler, drop_last=True)
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray | Any,
        *,
        m: int,
        batch_size: int,
        length_before_new_iter: int = 100_000,
        seed: int = 0,
    ) -> None:
        labels = _as_int_array("labels", labels)
        if m < 1 or batch_size < 1:
            raise ValueError(f"m and batch_size must be >= 1, got m={m}, batch_size={batch_size}")
        n_classes = np.unique(labels).size
        if batch_size % m or batch_size // m > n_classes:
            raise ValueError(
                f"batch_size={batch_size} must be a multiple of m={m} with at most {n_classes} "
                f"classes per batch (the number of classes in labels)"
            )
        if length_before_new_iter < batch_size:
            raise ValueError(
                f"length_before_new_iter={length_before_new_iter} is shorter than one batch "
                f"({batch_size})"
            )
        super().__init__(
            labels, m, batch_size=batch_size, length_before_new_iter=length_before_new_iter
        )
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        # PML's __iter__, with a local generator instead of the global numpy.random
        rng = np.random.default_rng((self.seed, self.epoch))
        per_batch = self.batch_size // self.m_per_class
        out: list[int] = []
        for _ in range(self.calculate_num_iters()):
            for label in rng.permutation(np.asarray(self.labels))[:per_batch]:
                pool = self.labels_to_indices[label]
                replace = len(pool) < self.m_per_class
                out.extend(int(i) for i in rng.choice(pool, size=self.m_per_class, replace=replace))
        return iter(out)


class PKModalitySampler(Sampler[list[int]]):
    """PK batches by modality: ``P`` classes x (``K`` sketches + ``K`` photos) (MATHM: 15 x (4+4)).

    A batch sampler (pass it as ``batch_sampler=`` of a ``DataLoader``): each of the
    ``iterations`` batches lists, for each of ``P`` distinct classes drawn uniformly among the
    classes that have both modalities, ``K`` indices of sketches (modality 0) then ``K`` of
    photos (modality 1) of that class, drawn without replacement, or with replacement when the
    class has fewer than ``K`` of that modality. Batch size ``2 P K``. Seeded per ``(seed,
    epoch)``; call :meth:`set_epoch` between epochs.

    Args:
        labels: ``(N,)`` class of each sample.
        modalities: ``(N,)`` 0 = sketch, 1 = photo.
        classes_per_batch: ``P``.
        per_modality: ``K``.
        iterations: batches per epoch.
        seed: seed of the draws.

    Raises:
        ValueError: mismatched lengths, modality tags other than 0/1, or fewer than ``P``
            classes having both modalities.
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray | Any,
        modalities: Sequence[int] | np.ndarray | Any,
        *,
        classes_per_batch: int,
        per_modality: int,
        iterations: int,
        seed: int = 0,
    ) -> None:
        labels = _as_int_array("labels", labels)
        modalities = _as_int_array("modalities", modalities)
        if labels.shape != modalities.shape:
            raise ValueError(f"{labels.size} labels but {modalities.size} modality tags")
        if not np.isin(modalities, (0, 1)).all():
            raise ValueError("modality tags must be 0 (sketch) or 1 (photo)")
        if classes_per_batch < 1 or per_modality < 1 or iterations < 1:
            raise ValueError("classes_per_batch, per_modality and iterations must be >= 1")
        # per class: (sketch indices, photo indices)
        self._pools: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for c in np.unique(labels):
            sketches = np.flatnonzero((labels == c) & (modalities == 0))
            photos = np.flatnonzero((labels == c) & (modalities == 1))
            if sketches.size and photos.size:
                self._pools[int(c)] = (sketches, photos)
        if len(self._pools) < classes_per_batch:
            raise ValueError(
                f"only {len(self._pools)} classes have both sketches and photos; "
                f"classes_per_batch={classes_per_batch} needs at least that many"
            )
        self.classes_per_batch = classes_per_batch
        self.per_modality = per_modality
        self.iterations = iterations
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.iterations

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng((self.seed, self.epoch))
        classes = np.fromiter(self._pools, dtype=np.int64)
        k = self.per_modality
        for _ in range(self.iterations):
            batch: list[int] = []
            for c in rng.choice(classes, size=self.classes_per_batch, replace=False):
                for pool in self._pools[int(c)]:  # sketches, then photos
                    batch.extend(int(i) for i in rng.choice(pool, size=k, replace=pool.size < k))
            yield batch
