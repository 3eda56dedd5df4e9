"""The image-file pipeline: random views that depend only on ``(key, item)``, whatever the
number of workers, across the passes of a persistent loader and after a resume."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torchvision.transforms import v2

from trainables.dml.data.augment import AugmentedPair, strong_augment, weak_augment
from trainables.dml.data.images import ImageListDataset
from trainables.dml.data.pipeline import SeededItems, WorkerLoader
from trainables.dml_data import DMLData, TrainBatches

CLASSES, PER_CLASS, SIDE, CROP = 3, 4, 12, 8
INDEX_BATCHES = [[0, 5, 9, 2], [11, 3, 7, 1], [4, 8, 10, 6]]
OTHER_BATCHES = [[6, 6, 1], [10, 0, 3], [2, 11, 5]]

Batch = tuple[Any, torch.Tensor]


@pytest.fixture
def dataset(tmp_path: Path, write_png: Callable[..., Path]) -> ImageListDataset:
    """3 classes x 4 random-pixel 12x12 RGB PNGs."""
    items = []
    for i in range(CLASSES * PER_CLASS):
        rel = f"class_{i % CLASSES}/img_{i}.png"
        write_png(tmp_path / rel, value=i, size=SIDE)
        items.append((rel, i % CLASSES))
    return ImageListDataset(tmp_path, items)


def _transform() -> v2.Compose:
    return v2.Compose([v2.RandomResizedCrop(CROP), v2.ColorJitter(0.4, 0.4, 0.4, 0.1)])


def _pair() -> AugmentedPair:
    return AugmentedPair(weak=weak_augment(size=CROP), strong=strong_augment(0.8, size=CROP))


def _shutdown(loader: WorkerLoader) -> None:
    iterator = getattr(loader.loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()


@pytest.fixture
def make_loader() -> Iterator[Callable[..., WorkerLoader]]:
    """``make_loader(dataset, workers)``: a WorkerLoader with the random crop and jitter; its
    worker processes are stopped after the test."""
    made: list[WorkerLoader] = []

    def make(dataset: ImageListDataset, workers: int) -> WorkerLoader:
        loader = WorkerLoader(dataset, _transform(), workers=workers, pin_memory=False)
        made.append(loader)
        return loader

    yield make
    for loader in made:
        _shutdown(loader)


def _pass(loader: WorkerLoader, key: int, batches: list[list[int]] = INDEX_BATCHES) -> list[Batch]:
    return list(loader.batches(batches, key=key))


def _same(a: list[Batch], b: list[Batch]) -> bool:
    return len(a) == len(b) and all(
        torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b, strict=True)
    )


def _labels_of(dataset: ImageListDataset, batches: list[list[int]]) -> list[list[int]]:
    return [[dataset.labels[i] for i in batch] for batch in batches]


def test_batches_do_not_depend_on_the_number_of_workers(
    dataset: ImageListDataset, make_loader: Callable[..., WorkerLoader]
) -> None:
    """In-process and two-worker loading give identical images and labels for the same index
    batches and key, whatever state the global generator is in."""
    torch.manual_seed(123)
    in_process = _pass(make_loader(dataset, 0), key=7)
    torch.manual_seed(456)
    workers = _pass(make_loader(dataset, 2), key=7)
    assert _same(in_process, workers)
    assert [x.shape for x, _ in in_process] == [(4, 3, CROP, CROP)] * 3
    assert [y.tolist() for _, y in in_process] == _labels_of(dataset, INDEX_BATCHES)
    # the transform is random: the same item under another key is another view
    assert not torch.equal(in_process[0][0], _pass(make_loader(dataset, 0), key=8)[0][0])


def test_another_key_draws_other_views(
    dataset: ImageListDataset, make_loader: Callable[..., WorkerLoader]
) -> None:
    """A different key gives different images for every batch (labels unchanged)."""
    loader = make_loader(dataset, 0)
    first, second = _pass(loader, key=1), _pass(loader, key=2)
    for (x1, y1), (x2, y2) in zip(first, second, strict=True):
        assert torch.equal(y1, y2)
        assert not torch.equal(x1, x2)


def test_a_fresh_loader_redraws_the_same_views(
    dataset: ImageListDataset, make_loader: Callable[..., WorkerLoader]
) -> None:
    """As after a resume: a new loader given the key of an epoch draws that epoch's views, even
    when the original loader had run other passes before."""
    original = make_loader(dataset, 2)
    _pass(original, key=1)
    epoch_two = _pass(original, key=2)
    resumed = make_loader(dataset, 2)
    assert _same(_pass(resumed, key=2), epoch_two)


def test_successive_passes_of_a_persistent_loader(
    dataset: ImageListDataset, make_loader: Callable[..., WorkerLoader]
) -> None:
    """Two passes of one persistent two-worker loader, with other keys and other index batches:
    they differ, and each is what a fresh in-process loader gives for its key and batches."""
    persistent = make_loader(dataset, 2)
    first = _pass(persistent, key=11)
    second = _pass(persistent, key=12, batches=OTHER_BATCHES)
    assert [y.tolist() for _, y in second] == _labels_of(dataset, OTHER_BATCHES)
    assert not any(torch.equal(a[0], b[0]) for a, b in zip(first, second, strict=True))
    assert _same(first, _pass(make_loader(dataset, 0), key=11))
    assert _same(second, _pass(make_loader(dataset, 0), key=12, batches=OTHER_BATCHES))
    # the same key again on the same loader repeats the first pass
    assert _same(_pass(persistent, key=11), first)


def test_seeded_items_leave_the_global_generator_alone(dataset: ImageListDataset) -> None:
    """Transforming an item under its (key, index) seed restores the process's RNG state."""
    items = SeededItems(dataset, _transform())
    torch.manual_seed(5)
    before = torch.get_rng_state()
    image, label = items[(3, 4)]
    assert torch.equal(torch.get_rng_state(), before)
    assert image.shape == (3, CROP, CROP) and label == dataset.labels[4]
    assert torch.equal(items[(3, 4)][0], image)


def test_an_in_process_pass_leaves_the_global_generator_alone(
    dataset: ImageListDataset, make_loader: Callable[..., WorkerLoader]
) -> None:
    """A workers=0 pass leaves the process's torch RNG state as it was."""
    loader = make_loader(dataset, 0)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    assert len(_pass(loader, key=3)) == len(INDEX_BATCHES)
    assert torch.equal(torch.get_rng_state(), before)


# --- TrainBatches over image files ------------------------------------------------------------

BATCH, M, SEED = 6, 2, 3


def _train_batches(dataset: ImageListDataset, workers: int) -> TrainBatches:
    labels = torch.tensor(dataset.labels)
    data = DMLData(
        train=dataset,
        train_labels=labels,
        val=dataset,
        val_labels=labels,
        realised_noise_rate=0.0,
    )
    return TrainBatches(data, batch_size=BATCH, m=M, seed=SEED, views=_pair(), num_workers=workers)


@pytest.fixture
def make_train_batches() -> Iterator[Callable[[ImageListDataset, int], TrainBatches]]:
    made: list[TrainBatches] = []

    def make(dataset: ImageListDataset, workers: int) -> TrainBatches:
        batches = _train_batches(dataset, workers)
        made.append(batches)
        return batches

    yield make
    for batches in made:
        if batches.loader is not None:
            _shutdown(batches.loader)


def _epoch_indices(batches: TrainBatches, epoch: int) -> list[int]:
    batches.sampler.set_epoch(epoch)
    return [i for batch in batches.batches for i in batch]


def _views(batches: TrainBatches, epoch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weak, strong, labels) of a whole epoch, batches concatenated."""
    weak, strong, labels = [], [], []
    for pairs, y in batches.epoch(epoch):
        weak.append(pairs[:, 0])
        strong.append(pairs[:, 1])
        labels.append(y)
    return torch.cat(weak), torch.cat(strong), torch.cat(labels)


def test_train_batches_yield_weak_and_strong_views(
    dataset: ImageListDataset, make_train_batches: Callable[[ImageListDataset, int], TrainBatches]
) -> None:
    """Each batch is (pairs, labels): pairs (B, 2, C, H, W), the weak then the strong view of
    the sampled items, the labels theirs, m per class."""
    batches = make_train_batches(dataset, 0)
    indices = _epoch_indices(batches, 1)
    out = list(batches.epoch(1))
    assert len(out) == len(dataset) // BATCH
    for pairs, labels in out:
        assert pairs.shape == (BATCH, 2, 3, CROP, CROP)
        weak, strong = pairs[:, 0], pairs[:, 1]
        assert weak.dtype == strong.dtype == torch.float32
        assert labels.shape == (BATCH,)
        assert sorted(torch.bincount(labels).tolist()) == [M] * (BATCH // M)
        assert not torch.equal(weak, strong)
    labels = torch.cat([y for _, y in out])
    assert labels.tolist() == [dataset.labels[i] for i in indices]


def test_train_batches_are_the_same_with_workers(
    dataset: ImageListDataset, make_train_batches: Callable[[ImageListDataset, int], TrainBatches]
) -> None:
    """Zero or two workers, and a persistent or fresh loader, give the same views per epoch."""
    in_process = make_train_batches(dataset, 0)
    workers = make_train_batches(dataset, 2)
    for epoch in (1, 2):
        expected = _views(in_process, epoch)
        got = _views(workers, epoch)
        assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))
    resumed = make_train_batches(dataset, 2)  # a fresh loader starting at epoch 2
    assert all(
        torch.equal(a, b) for a, b in zip(_views(resumed, 2), _views(in_process, 2), strict=True)
    )


def test_train_batches_differ_between_epochs(
    dataset: ImageListDataset, make_train_batches: Callable[[ImageListDataset, int], TrainBatches]
) -> None:
    """Epoch 2 draws other batches and, for an item sampled in both epochs, other views."""
    batches = make_train_batches(dataset, 0)
    first_indices, second_indices = _epoch_indices(batches, 1), _epoch_indices(batches, 2)
    weak1, strong1, _ = _views(batches, 1)
    weak2, strong2, _ = _views(batches, 2)
    assert not torch.equal(weak1, weak2) and not torch.equal(strong1, strong2)
    common = sorted(set(first_indices) & set(second_indices))
    assert common, "the seeded sampler shares no item between epochs 1 and 2"
    item = common[0]
    a, b = first_indices.index(item), second_indices.index(item)
    assert not torch.equal(weak1[a], weak2[b])
    assert not torch.equal(strong1[a], strong2[b])


def test_a_gpu_loader_without_workers_warns(dataset: ImageListDataset) -> None:
    """Pinned batches (a CUDA trial) decoded in the training loop: the trial is told to take
    CPUs; a CPU trial without workers is not warned."""
    with pytest.warns(UserWarning, match="0 loader workers"):
        WorkerLoader(dataset, None, workers=0, pin_memory=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        WorkerLoader(dataset, None, workers=0, pin_memory=False)
