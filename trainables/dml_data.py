"""Single-modality DML data for the objectives: the embedded digits or a real benchmark.

Either way a trial gets the training classes' samples (labels possibly noised, training labels
only) and the validation classes held out from the training classes; the test classes are not
loaded here at all (they belong to the final evaluation, shared/methods.md section 1).

Cross-validation (``folds > 1``): the fixed validation split is replaced by fold ``fold`` of a
class-disjoint k-fold over all the non-test classes (:func:`trainables.dml.data.folds.fold_split`,
seeded with ``seed``); the test classes stay out of every fold.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

BENCHMARKS = ("cub200", "cars196", "sop")
VAL_FRACTION = 0.2  # of the training classes, held out for validation (Reality Check protocol)


@dataclass(frozen=True)
class DMLData:
    """``train[i]`` / ``val[i]`` are ``(image (C, H, W) float, label)``."""

    train: Dataset
    train_labels: torch.Tensor  # (N_train,) as trained on (noisy)
    val: Dataset
    val_labels: torch.Tensor  # (N_val,) clean
    realised_noise_rate: float


def load_dml_data(
    *,
    dataset: str,
    data_root: str,
    seed: int,
    noise: str,
    noise_rate: float,
    image_size: int,
    folds: int = 1,
    fold: int = 0,
) -> DMLData:
    """The train-fit and validation parts of ``dataset``; ``folds > 1``: of fold ``fold``.

    Raises:
        ValueError: an unknown dataset, bad ``folds`` / ``fold`` (``check_fold``, ``class_folds``),
            or (real benchmarks) a directory without the published layout.
    """
    from trainables.dml.data.folds import check_fold, fold_split

    check_fold(folds, fold)
    if dataset == "digits":
        from trainables.dml.data.digits import DIGITS_TEST_CLASSES, load_digits_split
        from trainables.dml.data.splits import ClassSplit

        split = None
        if folds > 1:
            pool = [c for c in range(10) if c not in DIGITS_TEST_CLASSES]
            fit, val = fold_split(pool, folds=folds, fold=fold, seed=seed)
            split = ClassSplit(train=fit, val=val, test=DIGITS_TEST_CLASSES)
        d = load_digits_split(
            seed=seed,
            noise=noise,  # type: ignore[arg-type]  # a str here; load_digits_split checks it
            noise_rate=noise_rate,
            size=image_size,
            split=split,
        )
        return DMLData(
            train=TensorDataset(d.train_images, d.train_labels),
            train_labels=d.train_labels,
            val=TensorDataset(d.val_images, d.val_labels),
            val_labels=d.val_labels,
            realised_noise_rate=d.realised_noise_rate,
        )
    return _load_benchmark(
        dataset=dataset,
        root=data_root,
        seed=seed,
        noise=noise,
        noise_rate=noise_rate,
        image_size=image_size,
        folds=folds,
        fold=fold,
    )


def check_dml_data(*, dataset: str, data_root: str) -> None:
    """Raise a clear error (naming the expected layout) when a benchmark is not on disk."""
    if dataset == "digits":
        return
    from trainables.dml.data.readers import LayoutError, get_reader

    if dataset not in BENCHMARKS:
        raise LayoutError(f"unknown dataset {dataset!r}; known: {['digits', *BENCHMARKS]}")
    if not data_root:
        raise LayoutError(
            f"dataset {dataset!r} needs settings.data_root (the dataset directory); set it "
            "with --set data_root=DIR"
        )

    get_reader(dataset)(Path(data_root))  # raises LayoutError with the expected layout


def _load_benchmark(
    *,
    dataset: str,
    root: str,
    seed: int,
    noise: str,
    noise_rate: float,
    image_size: int,
    folds: int,
    fold: int,
) -> DMLData:
    import numpy as np

    from trainables.dml.data.folds import fold_split
    from trainables.dml.data.images import ImageListDataset
    from trainables.dml.data.noise import small_cluster_noise, symmetric_noise
    from trainables.dml.data.readers import get_reader
    from trainables.dml.data.splits import split_classes

    check_dml_data(dataset=dataset, data_root=root)
    # the reader's "test" part (the standard test classes) is dropped here, never opened
    items = get_reader(dataset)(Path(root))["train"]
    pool = sorted({y for _, y in items})
    if folds > 1:
        fit_classes, val_classes = fold_split(pool, folds=folds, fold=fold, seed=seed)
    else:
        split = split_classes(pool, val_fraction=VAL_FRACTION, seed=seed)
        fit_classes, val_classes = split.train, split.val
    fit_set, val_set = set(fit_classes), set(val_classes)
    fit = [(p, y) for p, y in items if y in fit_set]
    val = [(p, y) for p, y in items if y in val_set]
    labels = np.array([y for _, y in fit])
    realised = 0.0
    if noise != "none":
        make_noise = symmetric_noise if noise == "symmetric" else small_cluster_noise
        noisy = make_noise(labels, rate=noise_rate, seed=seed)
        labels, realised = noisy.labels, noisy.realised_rate
        fit = [(p, int(y)) for (p, _), y in zip(fit, labels, strict=True)]
    transform = _eval_transform(image_size)
    return DMLData(
        train=ImageListDataset(root, fit, transform=transform),
        train_labels=torch.as_tensor(labels),
        val=ImageListDataset(root, val, transform=transform),
        val_labels=torch.tensor([y for _, y in val]),
        realised_noise_rate=realised,
    )


def _eval_transform(image_size: int) -> Any:
    from torchvision.transforms import v2

    # Resize and crop once here; the objective's augmentations act on these tensors.
    return v2.Compose(
        [
            v2.Resize(int(image_size * 1.14)),
            v2.CenterCrop(image_size),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )


def load_dml_test(*, dataset: str, data_root: str, image_size: int) -> tuple[Dataset, torch.Tensor]:
    """The test classes ``(images, labels)``: only the final evaluation (an objective's
    ``evaluate_test``) calls this, never a trial of the search."""
    if dataset == "digits":
        from trainables.dml.data.digits import load_digits_split

        d = load_digits_split(seed=0, noise="none", noise_rate=0.0, size=image_size)
        return TensorDataset(d.test_images, d.test_labels), d.test_labels
    from trainables.dml.data.images import ImageListDataset
    from trainables.dml.data.readers import get_reader

    check_dml_data(dataset=dataset, data_root=data_root)
    items = get_reader(dataset)(Path(data_root))["test"]
    dataset_ = ImageListDataset(data_root, items, transform=_eval_transform(image_size))
    return dataset_, torch.tensor([y for _, y in items])


class TrainBatches:
    """m-per-class batches of the training set, reseeded per epoch: ``(images, labels)``, or
    with ``views`` (a :class:`~trainables.dml.data.augment.AugmentedPair`) ``(pairs, labels)``,
    ``pairs (B, 2, C, H, W)`` the weak then the strong view (one tensor: it is copied to a GPU
    in one pinned, non-blocking transfer).

    In memory (the digits) a batch is one gather and the views are drawn per batch. Image files
    are decoded, and their views drawn, in persistent prefetching workers
    (:class:`~trainables.dml.data.pipeline.WorkerLoader`, ``num_workers``), seeded per
    ``(seed, epoch, item)``.
    """

    def __init__(
        self,
        data: DMLData,
        *,
        batch_size: int,
        m: int,
        seed: int,
        views: Any = None,
        num_workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        from torch.utils.data import BatchSampler

        from trainables.dml.data.pipeline import WorkerLoader
        from trainables.dml.data.samplers import MPerClassSampler

        self.seed, self.views = seed, views
        self.sampler = MPerClassSampler(
            data.train_labels,
            m=m,
            batch_size=batch_size,
            length_before_new_iter=len(data.train_labels),
            seed=seed,
        )
        self.batches = BatchSampler(self.sampler, batch_size=batch_size, drop_last=True)
        self.in_memory = data.train if isinstance(data.train, TensorDataset) else None
        self.loader = (
            None
            if self.in_memory is not None
            else WorkerLoader(
                data.train,
                None if views is None else views.stacked,
                workers=num_workers,
                pin_memory=pin_memory,
            )
        )

    def epoch(self, epoch: int) -> Iterator[tuple[Any, torch.Tensor]]:
        from trainables.dml.data.pipeline import mix_seed

        self.sampler.set_epoch(epoch)
        if self.in_memory is not None:
            # One gather per batch, the loader's batches exactly (fetching item by item cost a
            # tenth of a digits epoch).
            images, labels = self.in_memory.tensors
            for step, index in enumerate(map(torch.as_tensor, self.batches)):
                x = images[index]
                if self.views is not None:
                    # seeded per batch, as the workers seed per item: a resumed trial draws
                    # the views the uninterrupted one drew
                    with torch.random.fork_rng(devices=[]):
                        torch.default_generator.manual_seed(mix_seed(self.seed, epoch, step))
                        x = torch.stack(self.views(x), dim=1)
                yield x, labels[index]
            return
        assert self.loader is not None
        key = mix_seed(self.seed, epoch)
        yield from self.loader.batches(list(self.batches), key=key)


@torch.no_grad()
def embed(
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 512,
    runtime: Any = None,
    num_workers: int = 0,
) -> torch.Tensor:
    """Embeddings ``(N, D)`` float32 of a dataset in eval mode, in order, on ``runtime``'s
    device (a :class:`~trainables.runtime.Runtime`; None: the model's own, no autocast)."""

    from torch.utils.data import DataLoader

    was_training = model.training
    model.eval()
    if isinstance(dataset, TensorDataset):  # in memory: no item-by-item fetching
        batches: Any = dataset.tensors[0].split(batch_size)
    else:
        pin = runtime is not None and runtime.pin_memory
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, pin_memory=pin)
        batches = (x for x, _ in loader)
    out = []
    for x in batches:
        if runtime is None:
            out.append(model(x).float())
            continue
        with runtime.precision.autocast():
            out.append(model(runtime.tensor(x)).float())
    model.train(was_training)
    return torch.cat(out)
