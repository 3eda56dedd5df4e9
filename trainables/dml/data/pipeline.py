"""Loading image files at benchmark scale: decoding and augmenting in persistent DataLoader
workers that prefetch, with random draws that depend only on ``(key, item)``.

A GPU trains a ResNet-50 at 224 px on well over a thousand images a second; one CPU core
decodes and augments a few hundred (``benchmarks/bench_gpu.py`` measures it), so the work is
spread over the trial's CPUs in workers that live as long as the loader (no start-up per
epoch) and keep ``prefetch`` batches each ready.

Reproducibility with persistent workers: a worker's random state would carry over from epoch
to epoch and depend on which worker loads which item, so a resumed trial would draw other
augmentations than an uninterrupted one. Instead each item is transformed under torch's CPU
generator seeded from ``(key, index)`` (a forked generator: the process's own state is left as
it was), ``key`` naming the epoch; the views are then the same whatever the number of workers,
and after a resume.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["BatchFeed", "SeededItems", "WorkerLoader", "mix_seed"]

PREFETCH = 2  # batches each worker keeps ready (shared memory: a 224-px batch is ~100 MB)


def mix_seed(*parts: int) -> int:
    """One seed from several integers (a trial's seed, an epoch, an item...): distinct tuples
    of small parts give distinct seeds (each part below 1,000,003), in torch's seed range."""
    seed = 0
    for part in parts:
        seed = seed * 1_000_003 + part
    return seed % (2**63)


class BatchFeed(Sampler[list[tuple[int, int]]]):
    """The batch sampler of a persistent loader: the batches of the next pass are set before
    it, as ``(key, index)`` pairs."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def set(self, batches: Sequence[Sequence[int]], *, key: int) -> None:
        self.batches = [[(key, int(i)) for i in batch] for batch in batches]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class SeededItems(Dataset):
    """``items[(key, i)]`` is ``dataset[i]`` with its image passed through ``transform`` under
    torch's CPU generator seeded from ``(key, i)``."""

    def __init__(
        self, dataset: Dataset, transform: Callable[[torch.Tensor], torch.Tensor] | None
    ) -> None:
        self.dataset = dataset
        self.transform = transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key_index: tuple[int, int]) -> tuple[Any, ...]:
        key, index = key_index
        image, *rest = self.dataset[index]
        if self.transform is not None:
            with torch.random.fork_rng(devices=[]):
                # the CPU generator only (torch.manual_seed would reseed the CUDA ones too)
                torch.default_generator.manual_seed(mix_seed(key, index))
                image = self.transform(image)
        return (image, *rest)


class WorkerLoader:
    """A persistent, prefetching DataLoader over ``SeededItems(dataset, transform)``.

    ``loader.batches(index_batches, key=k)`` yields the collated batches of one pass.
    ``workers = 0`` loads in the calling process (same draws).
    """

    def __init__(
        self,
        dataset: Dataset,
        transform: Callable[[torch.Tensor], torch.Tensor] | None,
        *,
        workers: int,
        pin_memory: bool,
    ) -> None:
        if workers == 0 and pin_memory:  # pinned batches: a CUDA trial
            warnings.warn(
                "a GPU trial decodes its images in its training loop (0 loader workers): it "
                "will wait for data; give it CPUs (--cpus-per-trial, README 'Training on GPUs')",
                stacklevel=3,
            )
        self.feed = BatchFeed()
        self.loader = DataLoader(
            SeededItems(dataset, transform),
            batch_sampler=self.feed,
            num_workers=workers,
            pin_memory=pin_memory,
            persistent_workers=workers > 0,
            prefetch_factor=PREFETCH if workers > 0 else None,
            # its own generator for the workers' base seed, which a pass would otherwise draw
            # from the process's
            generator=torch.Generator(),
        )

    def batches(self, index_batches: Sequence[Sequence[int]], *, key: int) -> Iterator[Any]:
        self.feed.set(index_batches, key=key)
        return iter(self.loader)
