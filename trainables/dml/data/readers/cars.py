"""Cars196 (Stanford Cars) in its published layout; classes 1-98 train, 99-196 test."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainables.dml.data.images import Item
from trainables.dml.data.readers._layout import LayoutError, require

__all__ = ["CARS_LAYOUT", "read_cars196"]

CARS_LAYOUT = """\
  cars196/                       (the directory to pass)
    cars_annos.mat               MATLAB struct array 'annotations', fields relative_im_path
                                 ('car_ims/000001.jpg'), class (1-196), test, bbox_*
    car_ims/000001.jpg ... car_ims/016185.jpg"""

CARS_LAST_TRAIN_CLASS = 98


def read_cars196(root: str | Path) -> dict[str, list[Item]]:
    """Read Cars196 at ``root``: ``{"train": classes 1-98, "test": classes 99-196}``.

    ``cars_annos.mat`` is read with ``scipy.io.loadmat``; items are ``(relative_im_path, class)``
    in file order, paths relative to ``root``, labels the dataset's class ids (1-196). The
    annotation's ``test`` flag (the classification split) is not used: DML splits by class.

    Raises:
        LayoutError: ``root`` does not follow :data:`CARS_LAYOUT` (missing file or folder, an
            unreadable .mat, no ``annotations`` with ``relative_im_path`` and ``class``).
    """
    from scipy.io import loadmat  # only this reader needs scipy.io

    root = require(
        root, dataset="Cars196", layout=CARS_LAYOUT, files=("cars_annos.mat",), dirs=("car_ims",)
    )
    try:
        mat = loadmat(root / "cars_annos.mat", squeeze_me=True)
    except Exception as err:  # scipy raises several types for a bad file
        raise LayoutError(
            f"Cars196: cannot read {root / 'cars_annos.mat'} as a .mat file ({err}). "
            f"Expected layout:\n{CARS_LAYOUT}"
        ) from err
    annos = mat.get("annotations")
    fields = getattr(getattr(annos, "dtype", None), "names", None) or ()
    if annos is None or not {"relative_im_path", "class"} <= set(fields):
        variables = sorted(k for k in mat if not k.startswith("__"))
        raise LayoutError(
            f"Cars196: {root / 'cars_annos.mat'} has no struct array 'annotations' with fields "
            f"relative_im_path and class (found variables {variables}, fields {list(fields)}). "
            f"Expected layout:\n{CARS_LAYOUT}"
        )
    annos = np.atleast_1d(annos)  # squeeze_me turns a single annotation into a 0-d record
    out: dict[str, list[Item]] = {"train": [], "test": []}
    for record in annos:
        path, label = str(record["relative_im_path"]), int(record["class"])
        out["train" if label <= CARS_LAST_TRAIN_CLASS else "test"].append((path, label))
    return out
