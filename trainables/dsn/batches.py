"""DSN's batches: a fixed sketch:photo ratio, each modality shuffled on its own.

The released trainer zips two shuffled loaders, sketches ``batch_size / 3`` and photos
``2 batch_size / 3`` a step on Sketchy (1:2; TU-Berlin 1:9), so an epoch ends with the modality
that runs out first. :func:`modality_ratio_batches` does the same over one indexed set.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

__all__ = ["modality_ratio_batches", "sketches_per_batch"]


def sketches_per_batch(batch_size: int, photos_per_sketch: int) -> tuple[int, int]:
    """``(s, p)`` with ``s = batch_size // (1 + r)`` sketches and ``p = batch_size - s`` photos.

    Raises:
        ValueError: ``photos_per_sketch < 1`` or a batch too small for one sketch.
    """
    if photos_per_sketch < 1:
        raise ValueError(f"photos_per_sketch must be >= 1, got {photos_per_sketch}")
    s = batch_size // (1 + photos_per_sketch)
    if s < 1:
        raise ValueError(
            f"batch_size={batch_size} holds no sketch at {photos_per_sketch} photos per sketch"
        )
    return s, batch_size - s


def modality_ratio_batches(
    modalities: Tensor, *, sketches: int, photos: int, seed: int, epoch: int
) -> list[list[int]]:
    """One epoch of batches: ``sketches`` sketch indices then ``photos`` photo indices each.

    Sketch (tag 0) and photo (tag 1) indices are permuted independently by a generator seeded
    with ``(seed, epoch)`` and cut into consecutive blocks, without replacement; the epoch has
    ``min(n_sketch // sketches, n_photo // photos)`` batches.

    Raises:
        ValueError: fewer sketches or photos than one batch needs.
    """
    tags = modalities.cpu().numpy()
    sketch_idx = np.flatnonzero(tags == 0)
    photo_idx = np.flatnonzero(tags == 1)
    n = min(sketch_idx.size // sketches, photo_idx.size // photos)
    if n < 1:
        raise ValueError(
            f"{sketch_idx.size} sketches and {photo_idx.size} photos cannot fill one batch of "
            f"{sketches} sketches + {photos} photos"
        )
    rng = np.random.default_rng((seed, epoch))
    sk, ph = rng.permutation(sketch_idx), rng.permutation(photo_idx)
    return [
        [int(i) for i in sk[b * sketches : (b + 1) * sketches]]
        + [int(i) for i in ph[b * photos : (b + 1) * photos]]
        for b in range(n)
    ]
