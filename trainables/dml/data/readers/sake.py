"""Zero-shot SBIR splits in the SAKE layout (as shipped by SAKE, DSN and MATHM): Sketchy-Extended
split 1 (100 seen / 25 unseen classes) and split 2 (104 / 21), TU-Berlin-Extended (220 / 30).

Each split directory holds, per modality, ``<prefix>_filelist_{train,test,zero}.txt`` with one
image a line, ``relative/path label`` (the path may contain spaces: the label is the last field),
plus ``cname_cid.txt`` / ``cname_cid_zero.txt`` (``class name id``, seen and unseen classes).
``train`` = seen classes, ``test`` = held-out sketches of the seen classes (same classes as
``train``, so NOT a class-disjoint validation set: our validation classes are drawn from the
seen classes with :func:`trainables.dml.data.splits.split_classes`), ``zero`` = unseen classes,
the zero-shot evaluation (sketch queries against the photo gallery). SAKE ships no photo
``test`` list.

Label policy: a label is the id of the image's class folder (the path's parent directory
name) in ``cname_cid.txt`` (train, test) or ``cname_cid_zero.txt`` (zero). The label column of
each list is checked against it; a list whose column is a consistent one-to-one renumbering of
the classes is accepted, relabelled to the ``cname_cid`` ids and named in
:attr:`SakeLists.relabelled` (the published Sketchy split-2 photo train list numbers classes
0, 100, 200, ... alphabetically, unlike its sketch lists). Anything else is an error. Seen and
unseen labels both start at 0: they index ``seen_classes`` and ``unseen_classes`` respectively.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from trainables.dml.data.images import Item
from trainables.dml.data.readers._layout import LayoutError, malformed, read_lines, require

__all__ = ["SAKE_MODALITIES", "SAKE_PARTS", "SakeLists", "read_sketchy", "read_tuberlin"]

SAKE_PARTS = ("train", "test", "zero")
SAKE_MODALITIES = ("sketch", "photo")
_PHOTO_PARTS = ("train", "zero")  # SAKE has no photo test list

_LAYOUT_FILES = (
    ("{sketch}_filelist_train.txt", '"<relative path> <label>" a line: seen-class sketches'),
    ("{sketch}_filelist_test.txt", "held-out sketches of the seen classes"),
    ("{sketch}_filelist_zero.txt", "unseen-class sketches (zero-shot queries)"),
    ("{photo}_filelist_train.txt", "seen-class photos"),
    ("{photo}_filelist_zero.txt", "unseen-class photos (zero-shot gallery)"),
    ("cname_cid.txt", '"<class name> <id>" a line, seen classes (names may hold spaces)'),
    ("cname_cid_zero.txt", '"<class name> <id>" a line, unseen classes'),
)


def _layout(*, name: str, split: str, example: str, prefixes: dict[str, str]) -> str:
    files = [(f.format(**prefixes), what) for f, what in _LAYOUT_FILES]
    width = max(len(f) for f, _ in files) + 2
    lines = [f"  {name}/  (the directory to pass; list paths are relative to it)", f"    {split}/"]
    lines += [f"      {f:<{width}}{what}" for f, what in files]
    lines.append(f"    {example}")
    return "\n".join(lines)


_SKETCHY = {"sketch": "sketch_tx_000000000000_ready", "photo": "all_photo"}
_TUBERLIN = {"sketch": "png_ready", "photo": "ImageResized_ready"}


@dataclass(frozen=True)
class SakeLists:
    """The file lists of one zero-shot SBIR split.

    Attributes:
        sketch: ``{"train" | "test" | "zero": [(relative path, label), ...]}`` (parts read).
        photo: ``{"train" | "zero": [...]}`` (parts read).
        seen_classes: class names, indexed by the label of ``train`` / ``test`` items.
        unseen_classes: class names, indexed by the label of ``zero`` items.
        relabelled: list files whose label column was renumbered to the ``cname_cid`` ids.
    """

    sketch: dict[str, list[Item]]
    photo: dict[str, list[Item]]
    seen_classes: tuple[str, ...]
    unseen_classes: tuple[str, ...]
    relabelled: tuple[str, ...]


def _read_classes(path: Path, layout: str) -> tuple[str, ...]:
    ids: dict[int, str] = {}
    for n, line in read_lines(path):
        name, _, cid = line.rpartition(" ")
        if not name.strip() or not cid.isdigit() or int(cid) in ids:
            raise malformed(
                path, (n, line), expected="'<class name> <new integer id>'", layout=layout
            )
        ids[int(cid)] = name.strip()
    if sorted(ids) != list(range(len(ids))) or len(set(ids.values())) != len(ids):
        raise LayoutError(
            f"{path}: class ids must be 0..{len(ids) - 1} once each, with distinct "
            f"names. Expected layout:\n{layout}"
        )
    return tuple(ids[i] for i in range(len(ids)))


def _read_list(path: Path, classes: tuple[str, ...], *, layout: str) -> tuple[list[Item], bool]:
    """Items labelled by ``classes``, and whether the file's label column differed."""
    index = {name: i for i, name in enumerate(classes)}
    items: list[Item] = []
    column: dict[int, int] = {}  # file label -> our label, to check the renumbering is 1-1
    for n, line in read_lines(path):
        relpath, _, label = line.rpartition(" ")
        if not relpath or not label.isdigit():
            raise malformed(
                path, (n, line), expected="'<relative path> <integer label>'", layout=layout
            )
        folder = Path(relpath).parent.name
        if folder not in index:
            raise malformed(
                path,
                (n, line),
                expected=f"a class folder listed in the class "
                f"table ({len(classes)} classes; {folder!r} is not one)",
                layout=layout,
            )
        ours = index[folder]
        if column.setdefault(int(label), ours) != ours:
            raise malformed(
                path,
                (n, line),
                expected=f"label {label} to name one class (it is "
                f"also used for {classes[column[int(label)]]!r})",
                layout=layout,
            )
        items.append((relpath, ours))
    if len(set(column.values())) != len(column):
        raise LayoutError(f"{path}: one class carries several labels. Expected layout:\n{layout}")
    return items, any(k != v for k, v in column.items())


def _read_sake(
    root: str | Path,
    *,
    name: str,
    split: str,
    prefixes: dict[str, str],
    example: str,
    parts: Sequence[str],
    modalities: Sequence[str],
) -> SakeLists:
    layout = _layout(name=name, split=split, example=example, prefixes=prefixes)
    unknown = sorted(set(parts) - set(SAKE_PARTS))
    if unknown or not parts:
        raise ValueError(f"parts must be a non-empty subset of {SAKE_PARTS}, got {list(parts)}")
    if not modalities or not set(modalities) <= {"sketch", "photo"}:
        raise ValueError(
            f"modalities must be a non-empty subset of ('sketch', 'photo'), got {list(modalities)}"
        )
    wanted = [("sketch", p) for p in SAKE_PARTS if p in parts and "sketch" in modalities]
    wanted += [("photo", p) for p in _PHOTO_PARTS if p in parts and "photo" in modalities]
    files = {key: f"{split}/{prefixes[key[0]]}_filelist_{key[1]}.txt" for key in wanted}
    root = require(
        root,
        dataset=f"{name} {split}",
        layout=layout,
        files=[*files.values(), f"{split}/cname_cid.txt", f"{split}/cname_cid_zero.txt"],
    )
    seen = _read_classes(root / split / "cname_cid.txt", layout)
    unseen = _read_classes(root / split / "cname_cid_zero.txt", layout)
    lists: dict[str, dict[str, list[Item]]] = {"sketch": {}, "photo": {}}
    relabelled = []
    for (modality, part), relname in files.items():
        classes = unseen if part == "zero" else seen
        items, renumbered = _read_list(root / relname, classes, layout=layout)
        lists[modality][part] = items
        if renumbered:
            relabelled.append(relname)
    return SakeLists(
        sketch=lists["sketch"],
        photo=lists["photo"],
        seen_classes=seen,
        unseen_classes=unseen,
        relabelled=tuple(relabelled),
    )


def read_sketchy(
    root: str | Path,
    *,
    split: int = 1,
    parts: Sequence[str] = SAKE_PARTS,
    modalities: Sequence[str] = SAKE_MODALITIES,
) -> SakeLists:
    """Read Sketchy-Extended split ``split`` (1: ``zeroshot1``, 100/25 classes; 2:
    ``zeroshot2``, 104/21) under ``root`` (the ``Sketchy`` directory), reading the lists of
    ``parts`` and ``modalities`` only. Published split 1 zero: 15,229 sketches, 17,101 photos,
    25 classes.

    Raises:
        ValueError: ``split`` not 1 or 2, or unknown ``parts`` / ``modalities``.
        LayoutError: a missing or malformed file (the message shows the expected layout).
    """
    if split not in (1, 2):
        raise ValueError(f"Sketchy split must be 1 or 2, got {split!r}")
    return _read_sake(
        root,
        name="Sketchy",
        split=f"zeroshot{split}",
        prefixes=_SKETCHY,
        example="256x256/sketch/tx_000000000000_ready/<class>/<image>.png, "
        "256x256/photo/tx_000000000000_ready/<class>/<image>.jpg",
        parts=parts,
        modalities=modalities,
    )


def read_tuberlin(
    root: str | Path,
    *,
    parts: Sequence[str] = SAKE_PARTS,
    modalities: Sequence[str] = SAKE_MODALITIES,
) -> SakeLists:
    """Read TU-Berlin-Extended (``zeroshot``, 220/30 classes) under ``root`` (the ``TUBerlin``
    directory), reading the lists of ``parts`` and ``modalities`` only. Published zero: 2,400
    sketches, 27,989 photos, 30 classes.

    Raises:
        ValueError: unknown ``parts`` / ``modalities``.
        LayoutError: a missing or malformed file (the message shows the expected layout).
    """
    return _read_sake(
        root,
        name="TUBerlin",
        split="zeroshot",
        prefixes=_TUBERLIN,
        example="png_ready/<class>/<image>.png, ImageResized_ready/<class>/<image>.JPEG",
        parts=parts,
        modalities=modalities,
    )
