"""Stanford Online Products in its published layout: Ebay_train (11,318 classes) / Ebay_test
(11,316 classes)."""

from __future__ import annotations

from pathlib import Path

from trainables.dml.data.images import Item
from trainables.dml.data.readers._layout import LayoutError, malformed, read_lines, require

__all__ = ["SOP_LAYOUT", "read_sop"]

SOP_LAYOUT = """\
  Stanford_Online_Products/      (the directory to pass)
    Ebay_train.txt               header "image_id class_id super_class_id path", then lines
                                 like "1 1 1 bicycle_final/111085122871_0.JPG"
    Ebay_test.txt                same format, the test classes
    <super class>_final/<image>.JPG"""

_HEADER = ["image_id", "class_id", "super_class_id", "path"]


def _read_list(path: Path) -> list[Item]:
    lines = read_lines(path)
    if not lines or lines[0][1].split() != _HEADER:
        raise malformed(
            path,
            lines[0] if lines else (1, ""),
            expected=f"the header {' '.join(_HEADER)!r}",
            layout=SOP_LAYOUT,
        )
    items: list[Item] = []
    for n, line in lines[1:]:
        fields = line.split(maxsplit=3)
        if len(fields) != 4 or not all(f.isdigit() for f in fields[:3]):
            raise malformed(
                path,
                (n, line),
                expected="'<image id> <class id> <super class id> <path>'",
                layout=SOP_LAYOUT,
            )
        items.append((fields[3], int(fields[1])))
    return items


def read_sop(root: str | Path) -> dict[str, list[Item]]:
    """Read Stanford Online Products at ``root``: ``{"train": Ebay_train, "test": Ebay_test}``.

    Items are ``(path, class_id)``, paths relative to ``root``, labels the dataset's class ids
    (published: 1-11,318 train, 11,319-22,634 test).

    Raises:
        LayoutError: ``root`` does not follow :data:`SOP_LAYOUT` (missing list, bad header or
            line, a class in both lists).
    """
    root = require(
        root,
        dataset="Stanford Online Products",
        layout=SOP_LAYOUT,
        files=("Ebay_train.txt", "Ebay_test.txt"),
    )
    out = {"train": _read_list(root / "Ebay_train.txt"), "test": _read_list(root / "Ebay_test.txt")}
    shared = {c for _, c in out["train"]} & {c for _, c in out["test"]}
    if shared:
        raise LayoutError(
            f"Stanford Online Products: classes {sorted(shared)[:5]} are in both Ebay_train.txt "
            f"and Ebay_test.txt; the lists must be class-disjoint. Expected layout:\n{SOP_LAYOUT}"
        )
    return out
