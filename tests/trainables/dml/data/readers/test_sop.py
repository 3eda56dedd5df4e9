from __future__ import annotations

from pathlib import Path

import pytest

from trainables.dml.data.images import ImageListDataset
from trainables.dml.data.readers import LayoutError, read_sop

HEADER = "image_id class_id super_class_id path\n"


def _sop_tree(root: Path, write_png) -> Path:
    train = [
        (1, 1, 1, "bicycle_final/111085122871_0.JPG"),
        (2, 1, 1, "bicycle_final/111085122871_1.JPG"),
        (3, 2, 2, "cabinet_final/1_0.JPG"),
    ]
    test = [(4, 11319, 1, "bicycle_final/99_0.JPG"), (5, 22634, 12, "toaster_final/7_0.JPG")]
    for name, rows in (("Ebay_train.txt", train), ("Ebay_test.txt", test)):
        (root / name).write_text(HEADER + "".join(" ".join(map(str, r)) + "\n" for r in rows))
        for r in rows:
            write_png(root / r[3], value=r[0])
    return root


def test_reads_train_and_test_lists(tmp_path: Path, write_png) -> None:
    lists = read_sop(_sop_tree(tmp_path, write_png))
    assert lists["train"] == [
        ("bicycle_final/111085122871_0.JPG", 1),
        ("bicycle_final/111085122871_1.JPG", 1),
        ("cabinet_final/1_0.JPG", 2),
    ]
    assert [label for _, label in lists["test"]] == [11319, 22634]
    assert len(ImageListDataset(tmp_path, lists["train"])) == 3


def test_bad_lists_name_the_layout(tmp_path: Path, write_png) -> None:
    root = _sop_tree(tmp_path, write_png)
    text = (root / "Ebay_test.txt").read_text()
    (root / "Ebay_test.txt").write_text(text.replace(HEADER, "id class path\n"))
    with pytest.raises(
        LayoutError,
        match=r"Ebay_test\.txt:1: expected the header "
        r"'image_id class_id super_class_id path'",
    ):
        read_sop(root)
    (root / "Ebay_test.txt").write_text(text + "6 x 1 a.JPG\n")
    with pytest.raises(LayoutError, match=r"Ebay_test\.txt:4: expected '<image id> <class id>"):
        read_sop(root)
    (root / "Ebay_test.txt").write_text(text + "6 2 1 cabinet_final/2_0.JPG\n")
    with pytest.raises(LayoutError, match=r"classes \[2\] are in both"):
        read_sop(root)
    (root / "Ebay_test.txt").unlink()
    with pytest.raises(
        LayoutError, match=r"(?s)lacks Ebay_test\.txt\. Expected layout:.*Ebay_train"
    ):
        read_sop(root)
