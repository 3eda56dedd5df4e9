"""Readers of the benchmarks' published layouts, by name (methods.md sections 1 and 7).

Each reader takes the directory the user points at (plus keyword options with defaults) and
returns the file lists, ``(path relative to that directory, label)``; a missing or malformed
layout raises :class:`LayoutError` whose message shows the expected layout. Feed the lists to
:class:`trainables.dml.data.images.ImageListDataset`. Example::

    from trainables.dml.data.readers import get_reader

    lists = get_reader("cub200")("/data/CUB_200_2011")  # {"train": [...], "test": [...]}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trainables.dml.data.readers._layout import LayoutError
from trainables.dml.data.readers.cars import read_cars196
from trainables.dml.data.readers.cub import read_cub200
from trainables.dml.data.readers.prism import PrismLists, read_prism
from trainables.dml.data.readers.sake import SakeLists, read_sketchy, read_tuberlin
from trainables.dml.data.readers.sop import read_sop

__all__ = [
    "READERS",
    "LayoutError",
    "PrismLists",
    "SakeLists",
    "get_reader",
    "read_cars196",
    "read_cub200",
    "read_prism",
    "read_sketchy",
    "read_sop",
    "read_tuberlin",
]

READERS: dict[str, Callable[..., Any]] = {
    "cub200": read_cub200,
    "cars196": read_cars196,
    "sop": read_sop,
    "sketchy": read_sketchy,
    "tuberlin": read_tuberlin,
    "prism": read_prism,
}


def get_reader(name: str) -> Callable[..., Any]:
    """The reader registered as ``name``.

    Raises:
        ValueError: an unknown name; the message lists the known ones.
    """
    if name not in READERS:
        raise ValueError(f"unknown dataset reader {name!r}; known readers: {sorted(READERS)}")
    return READERS[name]
