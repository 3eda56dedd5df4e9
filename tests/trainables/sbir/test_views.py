"""``random_views`` against a naive per-pixel reference (float64 loops)."""

from __future__ import annotations

import math

import pytest
import torch

from trainables.sbir.views import random_views


def _draws(seed: int, b: int) -> torch.Tensor:
    return torch.rand(b, 7, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _bilinear_border(img: list[list[float]], x: float, y: float) -> float:
    h, w = len(img), len(img[0])
    x, y = min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0)
    x0, y0 = math.floor(x), math.floor(y)
    x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    top = img[y0][x0] * (1 - fx) + img[y0][x1] * fx
    bottom = img[y1][x0] * (1 - fx) + img[y1][x1] * fx
    return top * (1 - fy) + bottom * fy


def _reference_affine(
    image: torch.Tensor, u: torch.Tensor, *, degrees: float, translate: float, scale: float
) -> torch.Tensor:
    """Output pixel centre p (normalised, align_corners=False) reads the input at
    A^-1 (p - t), A = zoom * rotation, bilinear with border clamping."""
    _, h, w = image.shape
    img = image[0].double().tolist()
    angle = float(u[0]) * math.radians(degrees)
    zoom = 1.0 + scale * float(u[1])
    tx, ty = 2 * translate * float(u[2]), 2 * translate * float(u[3])
    out = torch.zeros(1, h, w, dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            px, py = (2 * j + 1) / w - 1 - tx, (2 * i + 1) / h - 1 - ty
            sx = (math.cos(angle) * px + math.sin(angle) * py) / zoom
            sy = (-math.sin(angle) * px + math.cos(angle) * py) / zoom
            out[0, i, j] = _bilinear_border(img, ((sx + 1) * w - 1) / 2, ((sy + 1) * h - 1) / 2)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_affine_matches_the_naive_reference(seed: int) -> None:
    images = torch.rand(3, 1, 7, 6, generator=torch.Generator().manual_seed(100 + seed))
    kw = {"degrees": 25.0, "translate": 0.15, "scale": 0.2}
    out = random_views(images, generator=torch.Generator().manual_seed(seed), jitter=0.0, **kw)
    u = _draws(seed, 3)
    for b in range(3):
        expected = _reference_affine(images[b], u[b], **kw)
        torch.testing.assert_close(out[b].double(), expected, atol=1e-5, rtol=0)


def test_jitter_matches_brightness_then_contrast() -> None:
    images = torch.rand(4, 1, 5, 5, generator=torch.Generator().manual_seed(7))
    out = random_views(images, generator=torch.Generator().manual_seed(3), degrees=0.0,
                       translate=0.0, scale=0.0, jitter=0.4, p_jitter=1.0)  # fmt: skip
    u = _draws(3, 4)
    for b in range(4):
        x = images[b].double() * (1 + 0.4 * float(u[b, 5]))
        m = float(x.mean())
        expected = (m + (x - m) * (1 + 0.4 * float(u[b, 6]))).clamp(0, 1)
        torch.testing.assert_close(out[b].double(), expected, atol=1e-6, rtol=0)


def test_zero_magnitudes_give_the_identity() -> None:
    images = torch.rand(5, 1, 16, 16)
    out = random_views(images, generator=torch.Generator().manual_seed(0), degrees=0.0,
                       translate=0.0, scale=0.0, jitter=0.0)  # fmt: skip
    torch.testing.assert_close(out, images, atol=1e-6, rtol=0)


def test_each_image_gets_its_own_draw_and_seeds_reproduce() -> None:
    images = torch.rand(1, 1, 16, 16).expand(6, 1, 16, 16).contiguous()
    a = random_views(images, generator=torch.Generator().manual_seed(5))
    b = random_views(images, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert len({tuple(x.flatten().tolist()) for x in a}) == 6
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_rejects_non_batches() -> None:
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        random_views(torch.rand(1, 8, 8), generator=torch.Generator())
