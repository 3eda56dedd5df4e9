from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from trainables.dml.data.samplers import MPerClassSampler, PKModalitySampler

# 8 classes of varied size; class 7 has 2 samples (< m): drawn with replacement
LABELS = np.concatenate([np.repeat(np.arange(7), [5, 9, 4, 12, 6, 7, 20]), [7, 7]])


def _batches(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i : i + size] for i in range(0, len(indices), size)]


def test_m_per_class_batches_hold_m_samples_of_distinct_classes() -> None:
    sampler = MPerClassSampler(LABELS, m=4, batch_size=16, length_before_new_iter=160, seed=0)
    indices = list(sampler)
    assert len(sampler) == len(indices) == 160
    for batch in _batches(indices, 16):
        counts = Counter(LABELS[batch].tolist())
        assert len(counts) == 4 and set(counts.values()) == {4}
        for c in counts:  # m consecutive indices per class
            block = [i for i in batch if LABELS[i] == c]
            available = int((LABELS == c).sum())
            if available >= 4:
                assert len(set(block)) == 4  # without replacement
            else:
                assert len(set(block)) <= available  # with replacement
    assert {int(LABELS[i]) for i in indices} == set(range(8))


def test_m_per_class_is_seeded_per_epoch_and_leaves_global_rng_alone() -> None:
    state = np.random.get_state()[1].copy()
    a = MPerClassSampler(LABELS, m=2, batch_size=8, length_before_new_iter=64, seed=5)
    b = MPerClassSampler(LABELS, m=2, batch_size=8, length_before_new_iter=64, seed=5)
    first = list(a)
    assert first == list(b) == list(a)  # same seed and epoch: same batches
    a.set_epoch(1)
    assert list(a) != first
    assert np.array_equal(np.random.get_state()[1], state)


def test_m_per_class_feeds_a_dataloader() -> None:
    data = TensorDataset(torch.arange(LABELS.size), torch.from_numpy(LABELS))
    sampler = MPerClassSampler(LABELS, m=3, batch_size=12, length_before_new_iter=48, seed=0)
    batches = list(DataLoader(data, batch_size=12, sampler=sampler, drop_last=True))
    assert len(batches) == 4
    for _, labels in batches:
        assert sorted(Counter(labels.tolist()).values()) == [3, 3, 3, 3]


@pytest.mark.parametrize(("m", "batch_size"), [(3, 8), (2, 18)])
def test_m_per_class_rejects_impossible_batches(m: int, batch_size: int) -> None:
    with pytest.raises(ValueError, match="must be a multiple of m"):
        MPerClassSampler(LABELS, m=m, batch_size=batch_size)


def test_m_per_class_rejects_an_epoch_shorter_than_a_batch() -> None:
    with pytest.raises(ValueError, match="shorter than one batch"):
        MPerClassSampler(LABELS, m=2, batch_size=8, length_before_new_iter=4)


def _two_modalities() -> tuple[np.ndarray, np.ndarray]:
    # class 0..4: sketches and photos (class 3 has a single photo); class 5: sketches only
    labels, modalities = [], []
    for c, (n_sketch, n_photo) in enumerate([(6, 5), (4, 7), (5, 5), (6, 1), (8, 3), (5, 0)]):
        labels += [c] * (n_sketch + n_photo)
        modalities += [0] * n_sketch + [1] * n_photo
    return np.array(labels), np.array(modalities)


def test_pk_modality_batches_are_p_classes_of_k_sketches_then_k_photos() -> None:
    labels, modalities = _two_modalities()
    sampler = PKModalitySampler(
        labels, modalities, classes_per_batch=3, per_modality=2, iterations=50, seed=0
    )
    batches = list(sampler)
    assert len(batches) == len(sampler) == 50
    seen: set[int] = set()
    for batch in batches:
        assert len(batch) == 3 * 2 * 2
        blocks = [batch[i : i + 4] for i in range(0, 12, 4)]
        classes = [int(labels[b[0]]) for b in blocks]
        assert len(set(classes)) == 3  # P distinct classes
        for c, block in zip(classes, blocks, strict=True):
            assert (labels[block] == c).all()
            assert modalities[block].tolist() == [0, 0, 1, 1]  # K sketches, then K photos
            if c != 3:  # enough of each modality: no repeats
                assert len(set(block)) == 4
        seen.update(classes)
    assert seen == {0, 1, 2, 3, 4}  # class 5 (no photos) is never drawn


def test_pk_modality_is_seeded_per_epoch() -> None:
    labels, modalities = _two_modalities()

    def make() -> PKModalitySampler:
        return PKModalitySampler(
            torch.from_numpy(labels),
            modalities,
            classes_per_batch=2,
            per_modality=3,
            iterations=5,
            seed=1,
        )

    a = make()
    first = list(a)
    assert first == list(make())
    a.set_epoch(3)
    assert list(a) != first


@pytest.mark.parametrize(
    ("modalities", "kwargs", "message"),
    [
        ([0, 1, 2, 1], {}, "must be 0 \\(sketch\\) or 1 \\(photo\\)"),
        ([0, 1, 1], {}, "4 labels but 3 modality tags"),
        ([0, 1, 0, 0], {}, "only 1 classes have both sketches and photos"),
        ([0, 1, 0, 1], {"per_modality": 0}, "must be >= 1"),
    ],
)
def test_pk_modality_rejects_bad_input(modalities: list[int], kwargs: dict, message: str) -> None:
    options = {"classes_per_batch": 2, "per_modality": 1, "iterations": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        PKModalitySampler([0, 0, 1, 1], modalities, **options)
