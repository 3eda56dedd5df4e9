"""Class-disjoint splits: train-fit / validation / test classes, and class k-fold.

The protocol (methods.md section 1, after "A Metric Learning Reality Check"): the dataset's
standard test classes are set aside; validation classes are held out from the training classes
(seeded); the sweep's objective metric is computed on the validation classes only. No sample of
a class ever appears in two parts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["ClassSplit", "split_classes"]


@dataclass(frozen=True)
class ClassSplit:
    """Three disjoint, sorted tuples of class ids: ``train`` (fit), ``val`` and ``test``."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]

    def __post_init__(self) -> None:
        parts = {"train": set(self.train), "val": set(self.val), "test": set(self.test)}
        for name, part in parts.items():
            if len(part) != len(getattr(self, name)):
                raise ValueError(f"ClassSplit.{name} repeats a class: {getattr(self, name)}")
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            shared = parts[a] & parts[b]
            if shared:
                raise ValueError(f"ClassSplit: classes {sorted(shared)} are in both {a} and {b}")


def split_classes(
    classes: Iterable[int],
    *,
    test_classes: Iterable[int] | None = None,
    val_fraction: float,
    seed: int,
) -> ClassSplit:
    """Split ``classes`` into train-fit / validation / test classes.

    ``test = test_classes`` (the dataset's standard test classes; none when ``None``); of the
    remaining ``n`` training classes, ``round(val_fraction * n)`` (at least 1 when
    ``val_fraction > 0``, and leaving at least 1 to fit on) drawn by a permutation seeded with
    ``seed`` become validation classes.

    Args:
        classes: every class id of the dataset (duplicates are ignored, so a label array works).
        test_classes: the standard test classes, a subset of ``classes``.
        val_fraction: fraction of the training classes held out for validation, in ``[0, 1)``.
        seed: seed of the validation draw (same seed, same split).

    Raises:
        ValueError: ``val_fraction`` outside ``[0, 1)``, test classes not among ``classes``, or
            too few training classes to hold any out.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    every = sorted({int(c) for c in classes})
    test = sorted({int(c) for c in test_classes}) if test_classes is not None else []
    unknown = sorted(set(test) - set(every))
    if unknown:
        raise ValueError(f"test_classes {unknown[:10]} are not among the dataset's classes")
    pool = [c for c in every if c not in set(test)]
    n_val = round(val_fraction * len(pool))
    if val_fraction > 0:
        n_val = max(n_val, 1)
    if n_val > 0 and n_val >= len(pool):
        raise ValueError(
            f"cannot hold out {n_val} validation class(es) from {len(pool)} training class(es) "
            f"(val_fraction={val_fraction}): at least one class must remain to fit on"
        )
    order = np.random.default_rng(seed).permutation(len(pool))
    val = sorted(pool[i] for i in order[:n_val])
    train = sorted(pool[i] for i in order[n_val:])
    return ClassSplit(train=tuple(train), val=tuple(val), test=tuple(test))
