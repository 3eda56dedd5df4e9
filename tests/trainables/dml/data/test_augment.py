from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from trainables.dml.data.augment import (
    AugmentedPair,
    TwoViews,
    dsn_color_augment,
    per_sample,
    strong_augment,
    weak_augment,
)


def _digits_like(batch: int = 6) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(batch, 1, 8, 8)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 16, 16)])
@pytest.mark.parametrize(
    "make",
    [
        lambda: weak_augment(),
        lambda: strong_augment(0.7),
        lambda: strong_augment(1.0, flip=False),
        dsn_color_augment,
    ],
)
def test_augment_keeps_shape_and_range(shape: tuple[int, ...], make) -> None:
    torch.manual_seed(1)
    x = torch.rand(4, *shape)
    y = per_sample(make(), x)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert torch.isfinite(y).all()


def test_size_gives_a_resized_crop() -> None:
    x = torch.rand(3, 3, 32, 40)
    assert per_sample(weak_augment(size=24), x).shape == (3, 3, 24, 24)
    assert per_sample(strong_augment(0.5, size=16), x).shape == (3, 3, 16, 16)


def test_zero_strength_is_the_identity() -> None:
    x = _digits_like()
    assert torch.equal(per_sample(strong_augment(0.0, flip=False), x), x)


def test_strength_scales_the_change() -> None:
    x = _digits_like(batch=64)

    def change(strength: float) -> float:
        torch.manual_seed(2)
        return (per_sample(strong_augment(strength, flip=False), x) - x).abs().mean().item()

    low, mid, high = change(0.1), change(0.5), change(1.0)
    assert 0.0 < low < mid < high


@pytest.mark.parametrize("strength", [-0.1, 1.5])
def test_strength_outside_unit_interval_raises(strength: float) -> None:
    with pytest.raises(ValueError, match=r"strength must be in \[0, 1\]"):
        strong_augment(strength)


def test_augmented_pair_draws_per_image() -> None:
    x = _digits_like()[:1].expand(8, 1, 8, 8).clone()  # eight copies of one image
    torch.manual_seed(3)
    weak, strong = AugmentedPair(
        weak=weak_augment(flip=False), strong=strong_augment(1.0, flip=False)
    )(x)
    assert weak.shape == strong.shape == x.shape
    # one batch-wide draw would give identical rows
    assert len({tuple(row.flatten().tolist()) for row in strong}) == 8
    assert len({tuple(row.flatten().tolist()) for row in weak}) > 1
    assert not torch.equal(weak, strong)


def test_two_views_are_independent_and_seedable() -> None:
    x = _digits_like()
    views = TwoViews(strong_augment(0.8, flip=False))
    torch.manual_seed(4)
    a1, b1 = views(x)
    torch.manual_seed(4)
    a2, b2 = views(x)
    assert torch.equal(a1, a2) and torch.equal(b1, b2)
    assert not torch.equal(a1, b1)
    single = views(x[0])  # a single (C, H, W) image works too
    assert single[0].shape == (1, 8, 8)


def test_dsn_color_augment_is_the_published_recipe() -> None:
    apply, gray = dsn_color_augment().transforms
    assert isinstance(apply, v2.RandomApply) and apply.p == 0.8
    (jitter,) = apply.transforms
    assert isinstance(jitter, v2.ColorJitter)
    assert jitter.brightness == jitter.contrast == jitter.saturation == pytest.approx((0.6, 1.4))
    assert jitter.hue == pytest.approx((-0.1, 0.1))
    assert isinstance(gray, v2.RandomGrayscale) and gray.p == 0.2


def test_per_sample_rejects_other_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(C, H, W\) or \(B, C, H, W\)"):
        per_sample(weak_augment(), torch.rand(8, 8))
