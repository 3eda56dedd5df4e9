"""Two-modality data for zero-shot SBIR: train-fit / validation / test parts.

Datasets (``dataset`` setting):

- ``"digits"`` (default): THE EMBEDDED SMOKE-SCALE TASK, scikit-learn's 8x8 digits upsampled to
  ``image_size`` with a derived sketch modality
  (:func:`trainables.dml.data.digits.load_two_modality_digits`): 6 train-fit, 2 validation and
  2 test classes (8, 9). It makes the objectives runnable on a CPU in seconds; its numbers say
  nothing about Sketchy or TU-Berlin.
- ``"sketchy"`` (Sketchy-Extended, split ``sketchy_split`` 1 or 2) and ``"tuberlin"``
  (TU-Berlin-Extended): read from ``data_root`` in the SAKE layout
  (:mod:`trainables.dml.data.readers.sake`). The seen classes are split into train-fit and
  validation classes (``val_fraction``, seeded with ``seed``); the unseen (``zero``) classes are
  the test classes.

Cross-validation (``folds > 1``): the fixed validation classes are replaced by fold ``fold`` of
a class-disjoint k-fold over all the seen classes (:func:`trainables.dml.data.folds.fold_split`,
seeded with ``seed``; ``val_fraction`` is then unused); the test classes stay out of every fold.

Parts: ``train`` (train-fit classes, labels renumbered ``0..C-1`` for the classifier),
``val`` (validation classes: sketches are the queries, photos the gallery; original labels) and
``test`` (unseen classes, loaded only for the final evaluation). Sketch modality 0, photo 1.

``data_root``: the setting, with ``$VAR`` / ``${VAR}`` expanded in the trial's process; when it
is empty, the environment variable of the dataset (:data:`DATA_ROOT_ENV`) is read there. A
missing root is a :class:`~trainables.dml.data.readers.LayoutError` that shows the expected
layout.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import ConcatDataset
from torchvision.transforms import v2

from trainables.dml.data.augment import dsn_color_augment
from trainables.dml.data.digits import DIGITS_TEST_CLASSES, load_two_modality_digits
from trainables.dml.data.folds import check_fold, fold_split
from trainables.dml.data.images import ImageListDataset, Item
from trainables.dml.data.pipeline import WorkerLoader
from trainables.dml.data.readers import LayoutError, SakeLists, read_sketchy, read_tuberlin
from trainables.dml.data.splits import ClassSplit, split_classes
from trainables.sbir.views import random_views

__all__ = [
    "DATASETS",
    "DATA_ROOT_ENV",
    "PHOTO",
    "SKETCH",
    "SEEN_CLASSES",
    "FilePart",
    "Part",
    "SBIRData",
    "SBIRSettings",
    "TensorPart",
    "load_sbir_data",
    "num_train_classes",
    "resolve_data_root",
    "sbir_settings",
]

Dataset = Literal["digits", "sketchy", "tuberlin"]
DATASETS: tuple[str, ...] = ("digits", "sketchy", "tuberlin")
SKETCH, PHOTO = 0, 1

# Read in the trial's process when the data_root setting is empty.
DATA_ROOT_ENV: dict[str, str] = {
    "sketchy": "DMLSWEEP_SKETCHY_ROOT",
    "tuberlin": "DMLSWEEP_TUBERLIN_ROOT",
}
# Seen classes of the published splits (methods.md section 1), so the classifier's size is
# known from the config alone (build_model reads no data).
SEEN_CLASSES: dict[tuple[str, int], int] = {
    ("sketchy", 1): 100,
    ("sketchy", 2): 104,
    ("tuberlin", 1): 220,
}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class SBIRSettings:
    """The data and network settings both SBIR objectives share (their configs carry these
    fields, documented there); :func:`sbir_settings` extracts them from a config."""

    dataset: Dataset = "digits"
    sketchy_split: int = 1
    data_root: str = ""
    val_fraction: float = 0.25
    val_max_per_class: int = 0
    image_size: int = 16
    num_workers: int = 0  # resolved loader workers (trainables.runtime.loader_workers)
    pin_memory: bool = False  # resolved: pinned batches for a CUDA device
    eval_batch_size: int = 256
    seed: int = 0
    folds: int = 1  # > 1: class-disjoint k-fold over the seen classes instead of val_fraction
    fold: int = 0  # which fold, in [0, folds)


def sbir_settings(config: Any, runtime: Any = None) -> SBIRSettings:
    """The :class:`SBIRSettings` fields of an objective's config dataclass; the loader's
    workers and pinning from ``runtime`` (a :class:`~trainables.runtime.Runtime`; None: no
    workers, no pinning)."""
    resolved = {"num_workers", "pin_memory"}
    names = [f.name for f in dataclasses.fields(SBIRSettings) if f.name not in resolved]
    values = {n: getattr(config, n) for n in names}
    if runtime is not None:
        values.update(num_workers=runtime.num_workers, pin_memory=runtime.pin_memory)
    return SBIRSettings(**values)


def _seen(settings: SBIRSettings) -> int:
    split = settings.sketchy_split if settings.dataset == "sketchy" else 1
    if (settings.dataset, split) not in SEEN_CLASSES:
        raise ValueError(f"sketchy_split must be 1 or 2, got {settings.sketchy_split}")
    return SEEN_CLASSES[(settings.dataset, split)]


def _fit_val_classes(settings: SBIRSettings) -> tuple[tuple[int, ...], tuple[int, ...]]:
    check_fold(settings.folds, settings.fold)
    if settings.folds > 1:
        seen = (
            [c for c in range(10) if c not in DIGITS_TEST_CLASSES]
            if settings.dataset == "digits"
            else list(range(_seen(settings)))
        )
        return fold_split(seen, folds=settings.folds, fold=settings.fold, seed=settings.seed)
    if settings.dataset == "digits":
        split = split_classes(
            range(10),
            test_classes=DIGITS_TEST_CLASSES,
            val_fraction=settings.val_fraction,
            seed=settings.seed,
        )
    else:
        split = split_classes(
            range(_seen(settings)), val_fraction=settings.val_fraction, seed=settings.seed
        )
    if not split.val:
        raise ValueError("val_fraction must be > 0: the objective metric needs validation classes")
    return split.train, split.val


def num_train_classes(settings: SBIRSettings) -> int:
    """Train-fit classes (the classifier's size), from the settings alone."""
    if settings.dataset not in DATASETS:
        raise ValueError(f"unknown dataset {settings.dataset!r}; known: {list(DATASETS)}")
    return len(_fit_val_classes(settings)[0])


def resolve_data_root(settings: SBIRSettings) -> Path:
    """The directory of a real benchmark: ``data_root`` (``$VAR`` expanded), else the dataset's
    environment variable (:data:`DATA_ROOT_ENV`).

    Raises:
        LayoutError: neither is set, a variable is undefined, or the directory does not hold
            the SAKE layout; the message names the setting, the variable and the layout.
    """
    env = DATA_ROOT_ENV[settings.dataset]
    raw = os.path.expandvars(settings.data_root) if settings.data_root else os.environ.get(env, "")
    how = (
        f"set it with --set data_root=DIR (or the space's data_root setting) or export "
        f"{env}=DIR where the trials run"
    )
    if not raw:
        problem = f"no data directory for dataset {settings.dataset!r}: data_root is empty; {how}"
        raise LayoutError(f"{problem}.\n{_layout_message(settings)}")
    if "$" in raw:
        raise LayoutError(
            f"data_root {settings.data_root!r} names an undefined environment variable "
            f"(expanded: {raw!r}); {how}.\n{_layout_message(settings)}"
        )
    return Path(raw)


def check_sbir_data(settings: SBIRSettings) -> None:
    """Raise a clear error (naming the setting and the expected layout) unless a real benchmark
    is on disk in the SAKE layout with its published number of seen classes; the digits are
    embedded. Reads the lists only, not the images."""
    if settings.dataset == "digits":
        return
    _seen(settings)  # a valid split
    root = resolve_data_root(settings)
    lists = _read(settings, root, ("train", "test", "zero"))
    if len(lists.seen_classes) != _seen(settings):
        raise LayoutError(
            f"{root}: {len(lists.seen_classes)} seen classes in cname_cid.txt, expected "
            f"{_seen(settings)} for {settings.dataset}"
        )


def check_sbir_inputs(config: Any) -> None:
    """What both SBIR objectives' ``validate`` checks of their config (a dataclass with the
    :class:`SBIRSettings` fields and ``pretrained``): the benchmark on disk, the backbone's
    weights file."""
    from trainables.dml.backbones.weights import check_weights

    check_sbir_data(sbir_settings(config))
    check_weights("pretrained", config.pretrained, arch="resnet50")


def _read(settings: SBIRSettings, root: Path | str, parts: Sequence[str]) -> SakeLists:
    if settings.dataset == "sketchy":
        return read_sketchy(root, split=settings.sketchy_split, parts=parts)
    return read_tuberlin(root, parts=parts)


def _layout_message(settings: SBIRSettings) -> str:
    # the reader's own error for an absent directory carries the expected layout
    try:
        _read(settings, Path("<data_root unset>"), ("train",))
    except LayoutError as err:
        return str(err)
    return ""  # pragma: no cover - a directory of that name exists


class Part(Protocol):
    """One part of a two-modality set. ``labels`` and ``modalities`` are ``(N,)`` int64.

    ``batches`` yields ``(images, labels, modalities)`` for each list of indices; with
    ``views = v > 0`` the images are ``(B, 1 + v, C, H, W)``: the clean image then ``v`` random
    views (else ``(B, C, H, W)``). ``eval_batches`` yields the whole part in order, clean.
    """

    @property
    def labels(self) -> Tensor: ...

    @property
    def modalities(self) -> Tensor: ...

    def batches(
        self, index_batches: Iterable[Sequence[int]], *, views: int, generator: torch.Generator
    ) -> Iterator[tuple[Tensor, Tensor, Tensor]]: ...

    def eval_batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]: ...


@dataclass(frozen=True)
class TensorPart:
    """A part held in memory: ``images (N, C, H, W)`` in ``[0, 1]``; views by
    :func:`~trainables.sbir.views.random_views`."""

    images: Tensor
    labels: Tensor
    modalities: Tensor

    def __len__(self) -> int:
        return int(self.labels.numel())

    def batches(
        self, index_batches: Iterable[Sequence[int]], *, views: int, generator: torch.Generator
    ) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        for indices in index_batches:
            idx = torch.as_tensor(indices, dtype=torch.long)
            x = self.images[idx]  # (B, C, H, W)
            if views:
                x = torch.stack(
                    [x, *(random_views(x, generator=generator) for _ in range(views))], dim=1
                )  # (B, 1 + v, C, H, W)
            yield x, self.labels[idx], self.modalities[idx]

    def eval_batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        for start in range(0, len(self), batch_size):
            sl = slice(start, start + batch_size)
            yield self.images[sl], self.labels[sl], self.modalities[sl]


class _Views:
    """``image -> (1 + v, C, H, W)``: the clean transform, then ``v`` draws of ``view``."""

    def __init__(self, clean: v2.Transform, view: v2.Transform, views: int) -> None:
        self.clean, self.view, self.views = clean, view, views

    def __call__(self, image: Tensor) -> Tensor:
        return torch.stack([self.clean(image), *(self.view(image) for _ in range(self.views))])


@dataclass(frozen=True)
class FilePart:
    """A part read from image files (a SAKE benchmark): sketches then photos, each item
    ``(path relative to root, label)``. Train images: resize, horizontal flip; views add DSN's
    colour jitter and grayscale; all ImageNet-normalised. Decoding and views run in
    ``num_workers`` persistent, prefetching loader workers
    (:class:`~trainables.dml.data.pipeline.WorkerLoader`), one loader per kind of pass; a
    pass's draws are seeded from its ``generator``, per item."""

    root: Path
    sketches: tuple[Item, ...]
    photos: tuple[Item, ...]
    image_size: int
    num_workers: int
    pin_memory: bool = False
    labels: Tensor = dataclasses.field(init=False)
    modalities: Tensor = dataclasses.field(init=False)
    _loaders: dict[int, WorkerLoader] = dataclasses.field(
        init=False, default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        labels = [label for _, label in self.sketches] + [label for _, label in self.photos]
        tags = [SKETCH] * len(self.sketches) + [PHOTO] * len(self.photos)
        object.__setattr__(self, "labels", torch.tensor(labels, dtype=torch.long))
        object.__setattr__(self, "modalities", torch.tensor(tags, dtype=torch.long))

    def __len__(self) -> int:
        return int(self.labels.numel())

    def _loader(self, views: int) -> WorkerLoader:
        """The loader of passes with ``views`` views (``-1``: evaluation), built once."""
        if views not in self._loaders:
            size = (self.image_size, self.image_size)
            norm = v2.Normalize(_IMAGENET_MEAN, _IMAGENET_STD)
            if views < 0:
                transform: Any = v2.Compose([v2.Resize(size, antialias=True), norm])
            else:
                flip = v2.RandomHorizontalFlip(p=0.5)
                transform = v2.Compose([v2.Resize(size, antialias=True), flip, norm])
                if views:
                    view = v2.Compose(
                        [v2.Resize(size, antialias=True), flip, dsn_color_augment(), norm]
                    )
                    transform = _Views(transform, view, views)
            dataset: ConcatDataset = ConcatDataset(
                [
                    ImageListDataset(self.root, items, modality=tag)
                    for items, tag in ((self.sketches, SKETCH), (self.photos, PHOTO))
                    if items
                ]
            )
            self._loaders[views] = WorkerLoader(
                dataset, transform, workers=self.num_workers, pin_memory=self.pin_memory
            )
        return self._loaders[views]

    def batches(
        self, index_batches: Iterable[Sequence[int]], *, views: int, generator: torch.Generator
    ) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        key = int(torch.randint(0, 2**62, (1,), generator=generator))
        batches = [list(b) for b in index_batches]
        for images, labels, modalities in self._loader(views).batches(batches, key=key):
            yield images, labels.long(), modalities.long()

    def eval_batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        n = len(self)
        batches = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
        for images, labels, modalities in self._loader(-1).batches(batches, key=0):
            yield images, labels.long(), modalities.long()


@dataclass(frozen=True)
class SBIRData:
    """The parts of one run. ``test`` is ``None`` unless requested. ``train_classes`` are the
    original ids of the classifier's classes ``0..C-1``; ``val_classes`` / ``test_classes``
    the original ids of those parts (their labels)."""

    train: Part | None
    val: Part | None
    test: Part | None
    train_classes: tuple[int, ...]
    val_classes: tuple[int, ...]
    test_classes: tuple[int, ...]
    in_channels: int
    description: str

    @property
    def num_classes(self) -> int:
        return len(self.train_classes)


def _cap_per_class(items: list[Item], cap: int, rng: np.random.Generator) -> list[Item]:
    if cap <= 0:
        return items
    by_class: dict[int, list[Item]] = {}
    for item in items:
        by_class.setdefault(item[1], []).append(item)
    out: list[Item] = []
    for label in sorted(by_class):
        group = by_class[label]
        keep = sorted(rng.permutation(len(group))[:cap]) if len(group) > cap else range(len(group))
        out.extend(group[i] for i in keep)
    return out


def _relabel(items: Iterable[Item], mapping: dict[int, int]) -> list[Item]:
    return [(path, mapping[label]) for path, label in items if label in mapping]


def _digits(settings: SBIRSettings, parts: Sequence[str]) -> SBIRData:
    fit, val_classes = _fit_val_classes(settings)
    data = load_two_modality_digits(
        seed=settings.seed,
        size=settings.image_size,
        split=ClassSplit(train=fit, val=val_classes, test=DIGITS_TEST_CLASSES),
    )
    train_classes = data.split.train
    remap = torch.full((10,), -1, dtype=torch.long)
    remap[list(train_classes)] = torch.arange(len(train_classes))
    rng = np.random.default_rng((settings.seed, 1))
    val = data.val
    keep = torch.ones(val.labels.numel(), dtype=torch.bool)
    if settings.val_max_per_class > 0:
        keep = torch.zeros_like(keep)
        for c in data.split.val:
            for m in (SKETCH, PHOTO):
                idx = np.flatnonzero(((val.labels == c) & (val.modalities == m)).numpy())
                keep[rng.permutation(idx)[: settings.val_max_per_class]] = True
    return SBIRData(
        train=TensorPart(data.train.images, remap[data.train.labels], data.train.modalities)
        if "train" in parts
        else None,
        val=TensorPart(val.images[keep], val.labels[keep], val.modalities[keep])
        if "val" in parts
        else None,
        test=TensorPart(data.test.images, data.test.labels, data.test.modalities)
        if "test" in parts
        else None,
        train_classes=tuple(train_classes),
        val_classes=tuple(data.split.val),
        test_classes=tuple(data.split.test),
        in_channels=1,
        description=(
            "SMOKE-SCALE TASK: embedded sklearn digits with a derived sketch modality "
            f"({settings.image_size}x{settings.image_size}); train classes {train_classes}, "
            f"validation classes {data.split.val}, test classes {data.split.test}"
        ),
    )


def _sake(settings: SBIRSettings, parts: Sequence[str]) -> SBIRData:
    root = resolve_data_root(settings)
    reader_parts = (["train", "test"] if {"train", "val"} & set(parts) else []) + (
        ["zero"] if "test" in parts else []
    )
    lists = _read(settings, root, reader_parts)
    fit, val_classes = _fit_val_classes(settings)
    if len(lists.seen_classes) != _seen(settings):
        raise LayoutError(
            f"{root}: {len(lists.seen_classes)} seen classes in cname_cid.txt, expected "
            f"{_seen(settings)} for {settings.dataset}"
        )
    fit_map = {c: i for i, c in enumerate(fit)}
    val_map = {c: c for c in val_classes}
    rng = np.random.default_rng((settings.seed, 1))

    def part(sketches: list[Item], photos: list[Item]) -> FilePart:
        if not sketches or not photos:
            raise LayoutError(f"{root}: a part of {settings.dataset} has no sketches or no photos")
        return FilePart(
            root=root,
            sketches=tuple(sketches),
            photos=tuple(photos),
            image_size=settings.image_size,
            num_workers=settings.num_workers,
            pin_memory=settings.pin_memory,
        )

    sketch_seen = lists.sketch.get("train", []) + lists.sketch.get("test", [])
    cap = settings.val_max_per_class
    return SBIRData(
        train=part(
            _relabel(lists.sketch.get("train", []), fit_map),
            _relabel(lists.photo.get("train", []), fit_map),
        )
        if "train" in parts
        else None,
        val=part(
            _cap_per_class(_relabel(sketch_seen, val_map), cap, rng),
            _cap_per_class(_relabel(lists.photo.get("train", []), val_map), cap, rng),
        )
        if "val" in parts
        else None,
        test=part(lists.sketch["zero"], lists.photo["zero"]) if "test" in parts else None,
        train_classes=fit,
        val_classes=val_classes,
        test_classes=tuple(range(len(lists.unseen_classes))),
        in_channels=3,
        description=(
            f"{settings.dataset} ({root}): {len(fit)} train / {len(val_classes)} validation "
            f"seen classes, {len(lists.unseen_classes)} unseen test classes"
        ),
    )


def load_sbir_data(settings: SBIRSettings, *, parts: Sequence[str] = ("train", "val")) -> SBIRData:
    """Load the requested ``parts`` (of ``"train"``, ``"val"``, ``"test"``).

    Raises:
        ValueError: an unknown dataset or part.
        LayoutError: (real benchmarks) no ``data_root``, or a directory without the SAKE layout.
    """
    unknown = sorted(set(parts) - {"train", "val", "test"})
    if unknown or not parts:
        raise ValueError(f"parts must be a non-empty subset of train, val, test; got {list(parts)}")
    if settings.dataset == "digits":
        return _digits(settings, parts)
    if settings.dataset in ("sketchy", "tuberlin"):
        return _sake(settings, parts)
    raise ValueError(f"unknown dataset {settings.dataset!r}; known: {list(DATASETS)}")
