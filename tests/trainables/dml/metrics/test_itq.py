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
    published = fit_itq(x, bits=8, seed=0, published=True)
    assert ours.losses[-1] < published.losses[-1]


def published_codes(train: np.ndarray, test: np.ndarray, n_iter: int = 50):
    """The published compressITQ, written from its definition: own-mean centring, covariance
    eigenvectors read from the upper triangle sorted by eigenvalue, start rotation from the
    legacy generator seeded with n_iter, update R = Vh U^T, codes where the projection > 0."""
    train = train - train.mean(axis=0, keepdims=True)
    test = test - test.mean(axis=0, keepdims=True)
    values, vectors = np.linalg.eigh(np.cov(train, rowvar=False), "U")
    pc = vectors[:, values.argsort()[::-1]]
    v_train, v_test = train @ pc, test @ pc
    bits = v_train.shape[1]
    np.random.seed(n_iter)
    r = np.linalg.svd(np.random.randn(bits, bits))[0][:, :bits]
    for _ in range(n_iter):
        b = np.where(v_train @ r >= 0, 1.0, -1.0)
        ub, _, ua = np.linalg.svd(b.T @ v_train)
        r = ua @ ub.T
    return (v_train @ r) > 0, (v_test @ r) > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_published_codes_are_the_published_compress_itq(seed):
    x = features(seed, n=300)
    train, test = x[:200], x[200:] + 0.5  # the test side has its own mean
    want_train, want_test = published_codes(train.numpy(), test.numpy())
    itq = fit_itq(train, bits=x.shape[1], seed=123, published=True)  # seed unused
    assert np.array_equal(itq.encode(train).numpy(), want_train)
    assert np.array_equal(itq.encode(test).numpy(), want_test)
    # the lower triangle (numpy's default) flips the sign of some PCA directions: other codes
    lower = np.linalg.eigh(np.cov(train.numpy() - train.numpy().mean(0), rowvar=False))[1]
    upper = np.linalg.eigh(np.cov(train.numpy() - train.numpy().mean(0), rowvar=False), "U")[1]
    flipped = (np.sign(lower[0]) != np.sign(upper[0])).sum()
    assert 0 < flipped < x.shape[1]
    ours = fit_itq(train, bits=x.shape[1], seed=seed)
    assert not np.array_equal(ours.encode(train).numpy(), want_train)


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


def test_published_encoding_centres_each_set_on_itself():
    x = features(6)
    itq = fit_itq(x, bits=6, seed=0, published=True)
    shifted = x[:50] + 2.0
    moved = ITQ(
        mean=shifted.mean(dim=0),
        projection=itq.projection,
        rotation=itq.rotation,
        losses=itq.losses,
    )
    assert torch.equal(itq.encode(shifted), moved.encode(shifted))
    assert not torch.equal(itq.encode(shifted), fit_itq(x, bits=6, seed=0).encode(shifted))


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
