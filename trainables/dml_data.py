"""Single-modality DML data for the objectives: the embedded digits or a real benchmark.

Either way a trial gets the training classes' samples (labels possibly noised, training labels
only) and the validation classes held out from the training classes; the test classes are not
loaded here at all (they belong to the final evaluation, shared/methods.md section 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    *, dataset: str, data_root: str, seed: int, noise: str, noise_rate: float, image_size: int
) -> DMLData:
    if dataset == "digits":
        from trainables.dml.data.digits import load_digits_split

        d = load_digits_split(seed=seed, noise=noise, noise_rate=noise_rate, size=image_size)
        return DMLData(
            train=TensorDataset(d.train_images, d.train_labels), train_labels=d.train_labels,
            val=TensorDataset(d.val_images, d.val_labels), val_labels=d.val_labels,
            realised_noise_rate=d.realised_noise_rate,
        )
    return _load_benchmark(dataset=dataset, root=data_root, seed=seed, noise=noise,
                           noise_rate=noise_rate, image_size=image_size)


def check_dml_data(*, dataset: str, data_root: str) -> None:
    """Raise a clear error (naming the expected layout) when a benchmark is not on disk."""
    if dataset == "digits":
        return
    if dataset not in BENCHMARKS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {['digits', *BENCHMARKS]}")
    if not data_root:
        raise ValueError(f"dataset {dataset!r} needs settings.data_root (the dataset directory)")
    from trainables.dml.data.readers import get_reader

    get_reader(dataset)(Path(data_root))  # raises LayoutError with the expected layout


def _load_benchmark(
    *, dataset: str, root: str, seed: int, noise: str, noise_rate: float, image_size: int
) -> DMLData:
    import numpy as np
    from torchvision.transforms import v2

    from trainables.dml.data.images import ImageListDataset
    from trainables.dml.data.noise import small_cluster_noise, symmetric_noise
    from trainables.dml.data.readers import get_reader
    from trainables.dml.data.splits import split_classes

    check_dml_data(dataset=dataset, data_root=root)
    items = get_reader(dataset)(Path(root))["train"]
    split = split_classes(sorted({y for _, y in items}), val_fraction=VAL_FRACTION, seed=seed)
    fit = [(p, y) for p, y in items if y in split.train]
    val = [(p, y) for p, y in items if y in split.val]
    labels = np.array([y for _, y in fit])
    realised = 0.0
    if noise != "none":
        make_noise = symmetric_noise if noise == "symmetric" else small_cluster_noise
        noisy = make_noise(labels, rate=noise_rate, seed=seed)
        labels, realised = noisy.labels, noisy.realised_rate
        fit = [(p, int(y)) for (p, _), y in zip(fit, labels, strict=True)]
    # Resize and crop once here; the objective's augmentations act on these tensors.
    transform = v2.Compose([
        v2.Resize(int(image_size * 1.14)), v2.CenterCrop(image_size),
        v2.ToDtype(torch.float32, scale=True),
    ])
    return DMLData(
        train=ImageListDataset(root, fit, transform=transform),
        train_labels=torch.as_tensor(labels),
        val=ImageListDataset(root, val, transform=transform),
        val_labels=torch.tensor([y for _, y in val]),
        realised_noise_rate=realised,
    )


class TrainBatches:
    """m-per-class batches of the training set, reseeded per epoch: ``(images, labels)``."""

    def __init__(self, data: DMLData, *, batch_size: int, m: int, seed: int,
                 num_workers: int = 0) -> None:
        from torch.utils.data import DataLoader

        from trainables.dml.data.samplers import MPerClassSampler

        self.sampler = MPerClassSampler(
            data.train_labels, m=m, batch_size=batch_size,
            length_before_new_iter=len(data.train_labels), seed=seed,
        )
        self.loader = DataLoader(data.train, batch_size=batch_size, sampler=self.sampler,
                                 drop_last=True, num_workers=num_workers)

    def epoch(self, epoch: int):  # -> Iterator[tuple[Tensor, Tensor]]
        self.sampler.set_epoch(epoch)
        return iter(self.loader)


@torch.no_grad()
def embed(model: torch.nn.Module, dataset: Dataset, *, batch_size: int = 512) -> torch.Tensor:
    """Embeddings ``(N, D)`` of a dataset in eval mode, in order."""
    from torch.utils.data import DataLoader

    was_training = model.training
    model.eval()
    out = torch.cat([model(x) for x, _ in DataLoader(dataset, batch_size=batch_size)])
    model.train(was_training)
    return out
