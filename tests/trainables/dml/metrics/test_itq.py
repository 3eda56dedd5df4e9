from __future__ import annotations

import numpy as np
import pytest
import torch

from trainables.dml.metrics import ITQ, fit_itq, hamming_distance


def features(seed: int, n: int = 400, dim: int = 12) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    scales = torch.linspace(3.0, 0.3, dim, dtype=torch.float64)  # anisotropic, like embeddings
    mix = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64)).Q
    return 5.0 + (torch.randn(n, dim, generator=gen, dtype=torch.float64) * scales) @ mix


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rotation_and_projection_are_orthonormal(seed):
    itq = fit_itq(features(seed), bits=8, seed=seed)
    eye = torch.eye(8, dtype=torch.float64)
    torch.testing.assert_close(itq.rotation.T @ itq.rotation, eye, rtol=0, atol=1e-10)
    torch.testing.assert_close(itq.rotation @ itq.rotation.T, eye, rtol=0, atol=1e-10)
    torch.testing.assert_close(itq.projection.T @ itq.projection, eye, rtol=0, atol=1e-10)
    assert itq.bits == 8


def test_projection_spans_the_leading_principal_components():
    x = features(3)
    itq = fit_itq(x, bits=5, seed=0)
    values, vectors = np.linalg.eigh(np.cov(x.numpy(), rowvar=False))
    leading = torch.from_numpy(vectors[:, np.argsort(values)[::-1][:5]])
    # Same directions up to sign: |W^T W_numpy| = I.
    overlap = (itq.projection.T @ leading).abs()
    torch.testing.assert_close(overlap, torch.eye(5, dtype=torch.float64), rtol=0, atol=1e-8)
    torch.testing.assert_close(itq.mean, x.mean(dim=0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quantisation_loss_decreases_over_iterations(seed):
    itq = fit_itq(features(seed), bits=8, iterations=50, seed=seed)
    losses = itq.losses
    assert len(losses) == 50
    assert all(b <= a * (1 + 1e-12) for a, b in zip(losses, losses[1:], strict=False))
    assert losses[-1] < losses[0]


def test_published_transposed_update_is_not_the_procrustes_solution():
    x = features(4)
    ours = fit_itq(x, bits=8, seed=0)
    published = fit_itq(x, bits=8, seed=0, published_update=True)
    assert ours.losses[-1] < published.losses[-1]


@pytest.mark.parametrize("seed", [0, 1])
def test_codes_are_roughly_balanced(seed):
    x = features(seed, n=1000)
    codes = fit_itq(x, bits=8, seed=seed).encode(x)
    assert codes.dtype == torch.bool and codes.shape == (1000, 8)
    per_bit = codes.double().mean(dim=0)
    assert bool(((per_bit > 0.3) & (per_bit < 0.7)).all()), per_bit


def test_encode_is_deterministic_and_seeded():
    x = features(5)
    a, b = fit_itq(x, bits=6, seed=1), fit_itq(x, bits=6, seed=1)
    assert torch.equal(a.encode(x), b.encode(x))
    assert not torch.equal(a.rotation, fit_itq(x, bits=6, seed=2).rotation)


def test_own_mean_centres_each_set_on_itself():
    x = features(6)
    itq = fit_itq(x, bits=6, seed=0)
    shifted = x[:50] + 2.0
    moved = ITQ(
        mean=shifted.mean(dim=0),
        projection=itq.projection,
        rotation=itq.rotation,
        losses=itq.losses,
    )
    assert torch.equal(itq.encode(shifted, own_mean=True), moved.encode(shifted))


def test_bad_input_raises():
    x = features(7, n=20, dim=6)
    with pytest.raises(ValueError, match="bits"):
        fit_itq(x, bits=7, seed=0)
    with pytest.raises(ValueError, match="more than 6 samples"):
        fit_itq(x[:6], bits=6, seed=0)
    with pytest.raises(ValueError, match="iterations"):
        fit_itq(x, bits=4, iterations=0, seed=0)
    with pytest.raises(ValueError, match="shape"):
        fit_itq(x, bits=4, seed=0).encode(x[:, :3])


@pytest.mark.parametrize("seed", [0, 1])
def test_hamming_distance_matches_naive_loop(seed):
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(9, 13, generator=gen) < 0.5
    b = torch.rand(7, 13, generator=gen) < 0.5
    want = torch.tensor(
        [
            [sum(int(x != y) for x, y in zip(ra.tolist(), rb.tolist(), strict=True)) for rb in b]
            for ra in a
        ],
        dtype=torch.int32,
    )
    assert torch.equal(hamming_distance(a, b), want)
    assert torch.equal(hamming_distance(a.long(), b.double()), want)


def test_hamming_distance_rejects_bad_codes():
    with pytest.raises(ValueError, match="same number of bits"):
        hamming_distance(torch.zeros(2, 3, dtype=torch.bool), torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="only 0 and 1"):
        hamming_distance(torch.full((2, 3), 2.0), torch.zeros(2, 3))
