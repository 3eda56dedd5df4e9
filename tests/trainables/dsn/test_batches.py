"""DSN's sketch:photo batches."""

from __future__ import annotations

import pytest
import torch

from trainables.dsn.batches import modality_ratio_batches, sketches_per_batch


def test_sketches_per_batch() -> None:
    assert sketches_per_batch(96, 2) == (32, 64)
    assert sketches_per_batch(100, 9) == (10, 90)
    with pytest.raises(ValueError, match="no sketch"):
        sketches_per_batch(5, 9)


def test_batches_hold_the_ratio_without_repeats_until_a_modality_runs_out() -> None:
    tags = torch.tensor([0] * 23 + [1] * 50)[torch.randperm(73, generator=torch.Generator())]
    batches = modality_ratio_batches(tags, sketches=4, photos=10, seed=1, epoch=2)
    assert len(batches) == min(23 // 4, 50 // 10)
    seen: list[int] = []
    for batch in batches:
        assert [int(tags[i]) for i in batch] == [0] * 4 + [1] * 10
        seen += batch
    assert len(seen) == len(set(seen))
    assert batches == modality_ratio_batches(tags, sketches=4, photos=10, seed=1, epoch=2)
    assert batches != modality_ratio_batches(tags, sketches=4, photos=10, seed=1, epoch=3)


def test_too_few_samples_for_one_batch() -> None:
    with pytest.raises(ValueError, match="cannot fill one batch"):
        modality_ratio_batches(torch.tensor([0, 1, 1]), sketches=2, photos=1, seed=0, epoch=1)
