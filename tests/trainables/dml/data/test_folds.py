"""Class-disjoint k-fold: the validation classes partition the classes, fit and val are
disjoint, sizes are balanced, and the folds depend on the seed alone."""

from __future__ import annotations

import pytest

from trainables.dml.data.folds import check_fold, class_folds, fold_split


@pytest.mark.parametrize(("n", "k"), [(8, 2), (8, 3), (7, 7), (100, 5), (11, 4)])
@pytest.mark.parametrize("seed", [0, 3])
def test_folds_partition_the_classes(n: int, k: int, seed: int) -> None:
    classes = [5 * c + 1 for c in range(n)]  # ids need not be 0..n-1
    folds = class_folds(classes, k=k, seed=seed)
    assert len(folds) == k
    vals = [c for _, val in folds for c in val]
    assert sorted(vals) == sorted(classes)  # every class validated exactly once
    sizes = [len(val) for _, val in folds]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    for fit, val in folds:
        assert not set(fit) & set(val)
        assert sorted(fit + val) == sorted(classes)  # a fold covers every class
        assert list(fit) == sorted(fit) and list(val) == sorted(val)


def test_folds_are_determined_by_the_seed() -> None:
    classes = list(range(40))
    assert class_folds(classes, k=4, seed=7) == class_folds(classes, k=4, seed=7)
    assert class_folds(classes, k=4, seed=7) == class_folds(classes[::-1], k=4, seed=7)
    assert class_folds(classes, k=4, seed=7) != class_folds(classes, k=4, seed=8)


def test_bad_fold_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="k must be >= 2"):
        class_folds([1, 2, 3], k=1, seed=0)
    with pytest.raises(ValueError, match="k=4 folds need at least 4 classes"):
        class_folds([1, 2, 3], k=4, seed=0)
    with pytest.raises(ValueError, match=r"classes repeat \[2\]"):
        class_folds([1, 2, 2, 3], k=2, seed=0)


def test_fold_split_picks_one_fold_and_checks_its_index() -> None:
    classes = list(range(9))
    folds = class_folds(classes, k=3, seed=1)
    assert [fold_split(classes, folds=3, fold=i, seed=1) for i in range(3)] == folds
    with pytest.raises(ValueError, match=r"fold must be in \[0, 3\)"):
        fold_split(classes, folds=3, fold=3, seed=1)
    with pytest.raises(ValueError, match="k must be >= 2"):
        fold_split(classes, folds=1, fold=0, seed=1)
    check_fold(1, 0)  # no cross-validation: the only valid fold is 0
    with pytest.raises(ValueError, match="folds must be >= 1"):
        check_fold(0, 0)
    with pytest.raises(ValueError, match=r"fold must be in \[0, 1\)"):
        check_fold(1, 1)
