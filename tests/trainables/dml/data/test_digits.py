from __future__ import annotations

import pytest
import torch

from trainables.dml.data import digits
from trainables.dml.data.digits import (
    digits_images,
    load_digits_split,
    load_two_modality_digits,
    sketch_modality,
)


def test_digits_images_are_the_bundled_set_in_unit_range() -> None:
    images, labels = digits_images()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert labels.shape == (1797,) and set(labels.tolist()) == set(range(10))
    assert images.min() == 0.0 and images.max() == 1.0
    big, _ = digits_images(size=16)
    assert big.shape == (1797, 1, 16, 16) and 0.0 <= big.min() and big.max() <= 1.0
    with pytest.raises(ValueError, match="size must be >= 8"):
        digits_images(size=4)


def test_split_is_class_disjoint_six_two_two() -> None:
    data = load_digits_split(seed=0)
    assert data.split.test == (8, 9)
    assert len(data.split.train) == 6 and len(data.split.val) == 2
    parts = [
        set(data.train_labels.tolist()),
        set(data.val_labels.tolist()),
        set(data.test_labels.tolist()),
    ]
    assert parts == [set(data.split.train), set(data.split.val), set(data.split.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    total = data.train_images.shape[0] + data.val_images.shape[0] + data.test_images.shape[0]
    assert total == 1797
    assert data.train_images.shape[1:] == (1, 8, 8)
    assert torch.equal(data.train_labels, data.train_clean_labels)
    assert data.realised_noise_rate == 0.0
    assert load_digits_split(seed=0).split == data.split
    assert len({load_digits_split(seed=s).split.val for s in range(4)}) > 1  # seeded


@pytest.mark.parametrize("noise", ["symmetric", "small_cluster"])
def test_noise_touches_training_labels_only(noise: str) -> None:
    clean = load_digits_split(seed=3)
    noisy = load_digits_split(seed=3, noise=noise, noise_rate=0.2)
    assert torch.equal(noisy.train_clean_labels, clean.train_labels)
    assert torch.equal(noisy.val_labels, clean.val_labels)
    assert torch.equal(noisy.test_labels, clean.test_labels)
    assert torch.equal(noisy.train_images, clean.train_images)
    changed = (noisy.train_labels != noisy.train_clean_labels).float().mean().item()
    assert changed == pytest.approx(noisy.realised_noise_rate)
    assert set(noisy.train_labels.tolist()) <= set(noisy.split.train)
    if noise == "symmetric":
        n = noisy.train_labels.numel()
        assert noisy.realised_noise_rate == round(0.2 * n) / n
    else:
        assert noisy.realised_noise_rate >= 0.2
    again = load_digits_split(seed=3, noise=noise, noise_rate=0.2)
    assert torch.equal(again.train_labels, noisy.train_labels)


def test_split_rejects_bad_noise() -> None:
    with pytest.raises(ValueError, match=r"unknown noise 'gaussian'; known: \['none'"):
        load_digits_split(noise="gaussian")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="noise_rate=0.1 given with noise='none'"):
        load_digits_split(noise_rate=0.1)


def test_sketch_modality_differs_from_the_photo() -> None:
    photos, _ = digits_images(size=16)
    photos = photos[:50]
    sketches = sketch_modality(photos, seed=0)
    assert sketches.shape == photos.shape
    assert 0.0 <= sketches.min() and sketches.max() <= 1.0
    # dark strokes on white vs a bright digit on black: far apart pixel-wise
    assert (sketches - photos).abs().mean() > 0.3
    assert sketches.mean() > 0.5 > photos.mean()
    assert torch.equal(sketch_modality(photos, seed=0), sketches)
    assert not torch.equal(sketch_modality(photos, seed=1), sketches)  # the affine is seeded
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        sketch_modality(photos[:, 0], seed=0)


def test_two_modality_digits_are_split_and_tagged() -> None:
    data = load_two_modality_digits(seed=1)
    parts = (data.train, data.val, data.test)
    assert sum(p.labels.numel() for p in parts) == 1797
    assert data.split.test == (8, 9)
    for part, classes in zip(
        parts, (data.split.train, data.split.val, data.split.test), strict=True
    ):
        assert set(part.labels.tolist()) == set(classes)
        assert part.images.shape[1:] == (1, 16, 16)
        for c in classes:  # both modalities in every class, about half each
            tags = part.modalities[part.labels == c]
            assert abs((tags == 0).sum().item() - (tags == 1).sum().item()) <= 1
        sketches = part.images[part.modalities == 0]
        photos = part.images[part.modalities == 1]
        assert sketches.mean() > 0.5 > photos.mean()


def test_docstrings_say_smoke_scale() -> None:
    for doc in (digits.__doc__, load_digits_split.__doc__, load_two_modality_digits.__doc__):
        assert doc is not None and "smoke-scale" in doc.lower().replace("\n", " ")
