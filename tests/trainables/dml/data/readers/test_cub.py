from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from trainables.dml.data.images import ImageListDataset
from trainables.dml.data.readers import LayoutError, read_cub200

CLASSES = {
    1: "001.Black_footed_Albatross",
    2: "002.Laysan_Albatross",
    101: "101.White_Pelican",
    200: "200.Common_Yellowthroat",
}


def _cub_tree(root: Path, write_png: Callable[..., Path]) -> Path:
    images, labels = [], []
    image_id = 0
    for cid, name in CLASSES.items():
        for k in range(3 if cid <= 100 else 2):
            image_id += 1
            rel = f"{name}/{name[4:]}_{k:04d}_{image_id}.jpg"
            write_png(root / "images" / rel, value=image_id)  # PNG bytes, .jpg name: PIL sniffs
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {cid}")
    (root / "images.txt").write_text("\n".join(images) + "\n")
    (root / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (root / "classes.txt").write_text("\n".join(f"{c} {n}" for c, n in CLASSES.items()))
    return root


def test_reads_the_class_split(tmp_path: Path, write_png) -> None:
    root = _cub_tree(tmp_path / "CUB_200_2011", write_png)
    lists = read_cub200(root)
    assert [len(lists["train"]), len(lists["test"])] == [6, 4]
    assert {label for _, label in lists["train"]} == {1, 2}
    assert {label for _, label in lists["test"]} == {101, 200}
    path, label = lists["train"][0]
    assert path.startswith("images/001.Black_footed_Albatross/") and label == 1
    ds = ImageListDataset(root, lists["test"])  # the paths resolve under root
    assert ds[0][1] == 101


@pytest.mark.parametrize("missing", ["classes.txt", "images.txt", "images"])
def test_missing_part_names_the_layout(tmp_path: Path, write_png, missing: str) -> None:
    root = _cub_tree(tmp_path / "CUB_200_2011", write_png)
    target = root / missing
    if target.is_dir():
        target.rename(root / "elsewhere")
    else:
        target.unlink()
    with pytest.raises(
        LayoutError,
        match=rf"(?s)lacks {missing}.*Expected layout:.*"
        r"image_class_labels\.txt.*images/<class folder>",
    ):
        read_cub200(root)


def test_absent_root_names_the_layout(tmp_path: Path) -> None:
    with pytest.raises(
        LayoutError, match=r"(?s)is not a directory\. Expected layout:.*images\.txt"
    ):
        read_cub200(tmp_path / "CUB_200_2011")


def test_malformed_and_inconsistent_lists(tmp_path: Path, write_png) -> None:
    root = _cub_tree(tmp_path / "CUB_200_2011", write_png)
    labels = (root / "image_class_labels.txt").read_text()
    (root / "image_class_labels.txt").write_text(labels.replace("1 1\n", "1\n", 1))
    with pytest.raises(LayoutError, match=r"image_class_labels\.txt:1: expected '<id> <class id>'"):
        read_cub200(root)
    (root / "image_class_labels.txt").write_text(labels.replace("1 1\n", "1 7\n", 1))
    with pytest.raises(LayoutError, match="image 1 has class '7', not an id of classes.txt"):
        read_cub200(root)
    (root / "image_class_labels.txt").write_text(labels.replace("1 1\n", "", 1))
    with pytest.raises(LayoutError, match="list different image ids .*first: \\[1\\]"):
        read_cub200(root)
