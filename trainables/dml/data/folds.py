"""Class-disjoint k-fold cross-validation over the training classes (methods.md section 1).

With ``folds = k > 1`` a trial no longer validates on one fixed held-out set of classes: the
non-test classes (train-fit and validation classes pooled) are cut into ``k`` seeded parts, and
fold ``i`` fits on every part but ``i`` and validates on part ``i``. The test classes are never
in the pool. :func:`class_folds` makes the folds; :func:`fold_split` is what the data loaders
call with a trial's ``folds`` / ``fold`` settings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import KFold

__all__ = ["check_fold", "class_folds", "fold_split"]


def check_fold(folds: int, fold: int) -> None:
    """Raise ``ValueError`` unless ``folds >= 1`` and ``0 <= fold < folds`` (``folds = 1``:
    no cross-validation, the fixed validation split, and ``fold`` must be 0)."""
    if folds < 1:
        raise ValueError(f"folds must be >= 1 (1: the fixed validation split), got {folds}")
    if not 0 <= fold < folds:
        raise ValueError(f"fold must be in [0, {folds}) for folds={folds}, got {fold}")


def class_folds(
    classes: Sequence[int], *, k: int, seed: int
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Class-disjoint k-fold: ``k`` pairs ``(fit classes, val classes)``, each tuple sorted.

    The classes are shuffled with ``seed`` and cut into ``k`` parts whose sizes differ by at
    most one (scikit-learn's ``KFold`` over the class ids, one "sample" per class); fold ``i``
    validates on part ``i`` and fits on the other ``k - 1``. So the ``k`` validation sets
    partition ``classes`` (each class is validated exactly once) and within a fold ``fit`` and
    ``val`` are disjoint and cover ``classes``. Same seed, same folds.

    Raises:
        ValueError: ``k < 2``, ``k`` larger than the number of classes, or a repeated class.
    """
    ids = [int(c) for c in classes]
    if len(set(ids)) != len(ids):
        repeated = sorted(c for c, n in Counter(ids).items() if n > 1)
        raise ValueError(f"class_folds: classes repeat {repeated[:10]}")
    if k < 2:
        raise ValueError(
            f"class_folds: k must be >= 2 (k=1 is the fixed validation split), got {k}"
        )
    if k > len(ids):
        raise ValueError(
            f"class_folds: k={k} folds need at least {k} classes to validate on, got {len(ids)}"
        )
    pool = np.asarray(sorted(ids))
    splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
    return [
        (tuple(int(c) for c in pool[fit]), tuple(int(c) for c in pool[val]))
        for fit, val in splitter.split(pool)
    ]


def fold_split(
    classes: Sequence[int], *, folds: int, fold: int, seed: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Fold ``fold`` of :func:`class_folds` ``(classes, k=folds, seed=seed)``: ``(fit, val)``.

    ``classes`` are all the non-test classes of the dataset (train-fit and validation pooled).

    Raises:
        ValueError: ``fold`` outside ``[0, folds)`` (:func:`check_fold`), or any error of
            :func:`class_folds` (e.g. ``folds < 2``).
    """
    check_fold(folds, fold)
    return class_folds(classes, k=folds, seed=seed)[fold]
