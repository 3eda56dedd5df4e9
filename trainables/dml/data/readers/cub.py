"""CUB-200-2011 in its published layout; classes 1-100 train, 101-200 test (methods.md 1)."""

from __future__ import annotations

from pathlib import Path

from trainables.dml.data.images import Item
from trainables.dml.data.readers._layout import LayoutError, malformed, read_lines, require

__all__ = ["CUB_LAYOUT", "read_cub200"]

CUB_LAYOUT = """\
  CUB_200_2011/                  (the directory to pass)
    images.txt                   <image id> <path under images/>, e.g.
                                 "1 001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg"
    image_class_labels.txt       <image id> <class id 1-200>
    classes.txt                  <class id> <class name>, e.g. "1 001.Black_footed_Albatross"
    images/<class folder>/<image>.jpg"""

CUB_LAST_TRAIN_CLASS = 100


def _pairs(path: Path, *, what: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for n, line in read_lines(path):
        key, _, value = line.partition(" ")
        if not key.isdigit() or not value.strip():
            raise malformed(path, (n, line), expected=f"'<id> <{what}>'", layout=CUB_LAYOUT)
        if int(key) in out:
            raise malformed(
                path, (n, line), expected=f"a new id (id {key} repeats)", layout=CUB_LAYOUT
            )
        out[int(key)] = value.strip()
    return out


def read_cub200(root: str | Path) -> dict[str, list[Item]]:
    """Read CUB-200-2011 at ``root``: ``{"train": classes 1-100, "test": classes 101-200}``.

    Items are ``("images/<path>", class id)``, paths relative to ``root``, labels the dataset's
    class ids (1-200, not renumbered). The classification split ``train_test_split.txt`` is not
    used: DML splits by class.

    Raises:
        LayoutError: ``root`` does not follow :data:`CUB_LAYOUT` (missing files, a line that
            does not parse, an image without a label or a label without an image, an unknown
            class id).
    """
    root = require(
        root,
        dataset="CUB-200-2011",
        layout=CUB_LAYOUT,
        files=("images.txt", "image_class_labels.txt", "classes.txt"),
        dirs=("images",),
    )
    paths = _pairs(root / "images.txt", what="relative path")
    labels = _pairs(root / "image_class_labels.txt", what="class id")
    classes = _pairs(root / "classes.txt", what="class name")
    if set(paths) != set(labels):
        odd = sorted(set(paths) ^ set(labels))
        raise LayoutError(
            f"CUB-200-2011: images.txt and image_class_labels.txt list different image ids "
            f"({len(odd)} differ, first: {odd[:5]}). Expected layout:\n{CUB_LAYOUT}"
        )
    out: dict[str, list[Item]] = {"train": [], "test": []}
    for image_id in sorted(paths):
        label = labels[image_id]
        if not label.isdigit() or int(label) not in classes:
            raise LayoutError(
                f"CUB-200-2011: image {image_id} has class {label!r}, not an id of classes.txt. "
                f"Expected layout:\n{CUB_LAYOUT}"
            )
        part = "train" if int(label) <= CUB_LAST_TRAIN_CLASS else "test"
        out[part].append((f"images/{paths[image_id]}", int(label)))
    return out
