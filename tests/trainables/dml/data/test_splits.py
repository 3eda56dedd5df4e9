from __future__ import annotations

import pytest

from trainables.dml.data.splits import ClassSplit, split_classes


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("val_fraction", [0.0, 0.2, 0.5])
def test_split_is_disjoint_covering_and_sized(seed: int, val_fraction: float) -> None:
    classes = list(range(1, 201))
    split = split_classes(
        classes, test_classes=range(101, 201), val_fraction=val_fraction, seed=seed
    )
    parts = [set(split.train), set(split.val), set(split.test)]
    assert set().union(*parts) == set(classes)
    assert sum(len(p) for p in parts) == len(classes)  # pairwise disjoint
    assert split.test == tuple(range(101, 201))
    assert len(split.val) == round(val_fraction * 100)
    assert set(split.val) <= set(range(1, 101))
    assert list(split.train) == sorted(split.train) and list(split.val) == sorted(split.val)


def test_split_is_seeded() -> None:
    def make(seed: int) -> ClassSplit:
        return split_classes(range(50), val_fraction=0.3, seed=seed)

    assert make(3) == make(3)
    assert len({make(s).val for s in range(5)}) > 1
    assert make(3).test == ()  # no standard test classes given


def test_split_accepts_a_label_array_and_holds_out_at_least_one() -> None:
    split = split_classes([0, 0, 1, 1, 2, 2, 3], val_fraction=0.01, seed=0)
    assert len(split.val) == 1 and len(split.train) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": range(5), "val_fraction": 1.0}, "val_fraction must be in"),
        ({"classes": range(5), "val_fraction": -0.1}, "val_fraction must be in"),
        ({"classes": range(5), "test_classes": [7], "val_fraction": 0.2}, "not among"),
        (
            {"classes": range(3), "test_classes": [1, 2], "val_fraction": 0.5},
            "at least one class must remain",
        ),
    ],
)
def test_split_rejects_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_classes(seed=0, **kwargs)


def test_class_split_rejects_overlap_and_repeats() -> None:
    with pytest.raises(ValueError, match=r"\[2\] are in both train and val"):
        ClassSplit(train=(1, 2), val=(2,), test=())
    with pytest.raises(ValueError, match="repeats"):
        ClassSplit(train=(1, 1), val=(), test=())
