from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from trainables.dml.data.images import ImageListDataset
from trainables.dml.data.readers import LayoutError, read_cars196


def _cars_tree(root: Path, write_png, classes: list[int]) -> Path:
    """cars_annos.mat as published: a 1xN struct array 'annotations' (+ class_names)."""
    fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
    annos = np.zeros((1, len(classes)), dtype=[(f, object) for f in fields])
    for i, cid in enumerate(classes):
        rel = f"car_ims/{i + 1:06d}.jpg"
        write_png(root / rel, value=i)
        annos[0, i] = (
            rel,
            np.uint8(1),
            np.uint8(2),
            np.uint16(30),
            np.uint16(40),
            np.uint8(cid),
            np.uint8(i % 2),
        )
    names = np.array([f"Make Model {c}" for c in range(1, 197)], dtype=object)
    savemat(root / "cars_annos.mat", {"annotations": annos, "class_names": names[None]})
    return root


def test_reads_the_class_split(tmp_path: Path, write_png) -> None:
    root = _cars_tree(tmp_path, write_png, [1, 1, 98, 99, 150, 196, 196])
    lists = read_cars196(root)
    assert lists["train"] == [
        ("car_ims/000001.jpg", 1),
        ("car_ims/000002.jpg", 1),
        ("car_ims/000003.jpg", 98),
    ]
    assert [label for _, label in lists["test"]] == [99, 150, 196, 196]
    assert len(ImageListDataset(root, lists["test"])) == 4


def test_a_single_annotation_reads(tmp_path: Path, write_png) -> None:
    root = _cars_tree(tmp_path, write_png, [120])
    assert read_cars196(root) == {"train": [], "test": [("car_ims/000001.jpg", 120)]}


def test_missing_or_bad_annotations_name_the_layout(tmp_path: Path, write_png) -> None:
    root = _cars_tree(tmp_path, write_png, [1, 99])
    (root / "car_ims").rename(tmp_path / "images")
    with pytest.raises(
        LayoutError, match=r"(?s)lacks car_ims/\. Expected layout:.*cars_annos\.mat"
    ):
        read_cars196(root)
    (tmp_path / "images").rename(root / "car_ims")
    savemat(root / "cars_annos.mat", {"labels": np.arange(3)})
    with pytest.raises(
        LayoutError,
        match=r"no struct array 'annotations'.*found variables "
        r"\['labels'\]",
    ):
        read_cars196(root)
    (root / "cars_annos.mat").write_bytes(b"garbage")
    with pytest.raises(LayoutError, match=r"cannot read .*cars_annos\.mat as a \.mat file"):
        read_cars196(root)
