"""PRISM's (CVPR'21) noisy-label lists for CUB and Cars, and the real-noise CARS-98N set.

Files (``path,label`` CSV lines, no header) in one directory::

    {CUB,CARS}_train.csv                              clean training classes
    {CUB,CARS}_test.csv                               test classes
    {CUB,CARS}_{0.1,0.2,0.5}noised_train.csv          symmetric flips
    {CUB,CARS}_{0.25,0.5}smallclusternoised_train.csv small-cluster noise (labels renumbered 0..)
    {CUB,CARS}_<noise>_cleaned_train.csv              the clean subset of a noisy list
    CARSN_train.csv, CARSN_test.csv                   CARS-98N (98 classes, 9,558 images)

The paths are those of the machine that wrote the lists (``/data/CUB_200_2011/images/...``);
only the part after the dataset root folder is kept, relative to that root:
``images/001.Black_footed_Albatross/...jpg`` under ``CUB_200_2011/``. PRISM's Cars root holds
class folders (``images/<class name>/<number>.jpg``), PRISM's own arrangement of Cars196, not
the published ``car_ims/`` (see :mod:`.cars`); CARS-98N's training images live under
``cars_noise/`` and its test images under ``cars196/``. Labels are kept as in the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from trainables.dml.data.images import Item
from trainables.dml.data.readers._layout import LayoutError, malformed, read_lines, require

__all__ = ["PRISM_LAYOUT", "PRISM_ROOTS", "PrismLists", "read_prism"]

PRISM_LAYOUT = """\
  <lists directory>/             (the directory to pass)
    CUB_train.csv, CUB_test.csv, CUB_0.1noised_train.csv, ..., CUB_0.25smallclusternoised_train.csv
    CARS_train.csv, CARS_test.csv, ...; CARSN_train.csv, CARSN_test.csv
    each line "<source path>,<label>", e.g.
    "/data/CUB_200_2011/images/001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg,1\""""

# dataset -> (root folder of the training paths, root folder of the test paths)
PRISM_ROOTS = {
    "CUB": ("CUB_200_2011", "CUB_200_2011"),
    "CARS": ("cars196", "cars196"),
    "CARSN": ("cars_noise", "cars196"),
}


@dataclass(frozen=True)
class PrismLists:
    """One PRISM training list and its test list.

    Attributes:
        train, test: ``[(path relative to the dataset root, label), ...]``.
        train_root, test_root: the dataset root folder the paths are relative to (e.g.
            ``CUB_200_2011``; for CARSN ``cars_noise`` and ``cars196``).
        train_file: the training list read (for logging).
    """

    train: list[Item]
    test: list[Item]
    train_root: str
    test_root: str
    train_file: str


def _train_file(dataset: str, noise: str, rate: float | None, cleaned: bool) -> str:
    if noise == "none":
        if rate is not None or cleaned:
            raise ValueError("rate and cleaned apply to noisy lists only (noise='none')")
        return f"{dataset}_train.csv"
    if dataset == "CARSN":
        raise ValueError("CARSN carries real noise: use noise='none'")
    if rate is None:
        raise ValueError(
            f"noise={noise!r} needs a rate (published: symmetric 0.1/0.2/0.5, "
            "small_cluster 0.25/0.5)"
        )
    kind = "noised" if noise == "symmetric" else "smallclusternoised"
    return f"{dataset}_{rate:g}{kind}{'_cleaned' if cleaned else ''}_train.csv"


def _read_csv(path: Path, marker: str) -> list[Item]:
    items: list[Item] = []
    for n, line in read_lines(path):
        source, _, label = line.rpartition(",")
        label = label.strip()
        if not source or not label.lstrip("-").isdigit():
            raise malformed(
                path, (n, line), expected="'<path>,<integer label>'", layout=PRISM_LAYOUT
            )
        parts = PurePosixPath(source.replace("\\", "/")).parts
        if marker not in parts[:-1]:
            raise malformed(
                path,
                (n, line),
                expected=f"a path through a {marker!r} folder (the dataset root)",
                layout=PRISM_LAYOUT,
            )
        rel = parts[parts.index(marker) + 1 :]
        items.append(("/".join(rel), int(label)))
    return items


def read_prism(
    root: str | Path,
    *,
    dataset: Literal["CUB", "CARS", "CARSN"] = "CUB",
    noise: Literal["none", "symmetric", "small_cluster"] = "none",
    rate: float | None = None,
    cleaned: bool = False,
    root_folder: str | None = None,
) -> PrismLists:
    """Read one PRISM training list and the matching test list from directory ``root``.

    The training file is ``{dataset}_train.csv`` (``noise="none"``),
    ``{dataset}_{rate}noised[_cleaned]_train.csv`` (symmetric) or
    ``{dataset}_{rate}smallclusternoised[_cleaned]_train.csv``; the test file
    ``{dataset}_test.csv``. ``root_folder`` overrides the dataset root folder searched for in
    the paths (default :data:`PRISM_ROOTS`).

    Raises:
        ValueError: an unknown dataset / noise, or inconsistent options.
        LayoutError: a missing list (the message lists the PRISM files found) or a line that
            does not parse or whose path does not pass through the dataset root folder.
    """
    if dataset not in PRISM_ROOTS:
        raise ValueError(f"unknown PRISM dataset {dataset!r}; known: {sorted(PRISM_ROOTS)}")
    if noise not in ("none", "symmetric", "small_cluster"):
        raise ValueError(f"unknown noise {noise!r}; known: ['none', 'small_cluster', 'symmetric']")
    train_file = _train_file(dataset, noise, rate, cleaned)
    test_file = f"{dataset}_test.csv"
    root = Path(root)
    try:
        root = require(
            root, dataset="PRISM lists", layout=PRISM_LAYOUT, files=(train_file, test_file)
        )
    except LayoutError as err:
        found = sorted(p.name for p in root.glob("*.csv")) if root.is_dir() else []
        raise LayoutError(f"{err}\nCSV files present: {found or 'none'}") from None
    train_root, test_root = PRISM_ROOTS[dataset]
    if root_folder is not None:
        train_root = test_root = root_folder
    return PrismLists(
        train=_read_csv(root / train_file, train_root),
        test=_read_csv(root / test_file, test_root),
        train_root=train_root,
        test_root=test_root,
        train_file=train_file,
    )
