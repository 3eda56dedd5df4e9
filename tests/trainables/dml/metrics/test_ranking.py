"""Ties between coinciding embeddings follow the (distance, gallery index) rule: references in
50-digit arithmetic, float32 and float64, several chunk sizes, both chunk kernels."""

from __future__ import annotations

import mpmath
import pytest
import torch

from tests.trainables.dml.metrics.test_retrieval import naive_retrieval
from tests.trainables.dml.metrics.test_sbir import naive_sbir
from trainables.dml.metrics import euclidean_normalized, retrieval_metrics, sbir_metrics
from trainables.dml.metrics._ranking import CLOSE_SQUARED

CHUNKS = (1, 7, 1024)
DTYPES = (torch.float32, torch.float64)


def mp_unit_distances(q: torch.Tensor, g: torch.Tensor) -> list[list[mpmath.mpf]]:
    """``||q/|q| - g/|g| ||`` at 50 digits on the exact binary values: equal rows give equal
    values, distinct ones differ far beyond float rounding."""
    with mpmath.workdps(50):

        def unit(rows: torch.Tensor) -> list[list[mpmath.mpf]]:
            out = []
            for r in rows.double().tolist():
                v = [mpmath.mpf(a) for a in r]
                n = mpmath.sqrt(mpmath.fsum(a * a for a in v))
                out.append([a / n for a in v])
            return out

        qs, gs = unit(q), unit(g)
        return [
            [mpmath.sqrt(mpmath.fsum((a - b) ** 2 for a, b in zip(x, y, strict=True))) for y in gs]
            for x in qs
        ]


def assert_same(got: dict[str, float], want: dict[str, float]) -> None:
    assert set(got) == set(want)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("dtype", DTYPES)
def test_identical_rows_rank_by_index(dtype: torch.dtype) -> None:
    """50 copies of one embedding, labels i % 5: every distance is 0, so the exact rule alone
    decides (R-precision 0.1822; a tile-dependent 1.3e-8 had given 0.1844)."""
    x = torch.randn(1, 16, generator=torch.Generator().manual_seed(0)).repeat(50, 1).to(dtype)
    y = torch.arange(50) % 5
    want = naive_retrieval([[0.0] * 50 for _ in range(50)], y.tolist(), (1, 2, 4, 8))
    assert want["r_precision"] == pytest.approx(0.1822, abs=1e-4)
    for chunk in CHUNKS:
        assert_same(retrieval_metrics(x, y, chunk_size=chunk), want)
    assert (euclidean_normalized(x, x) == 0).all()


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, None])
def test_sketches_identical_to_photos_rank_by_index(dtype: torch.dtype | None) -> None:
    """10 queries identical to 50 photos: mAP@all is the exact rule's at every chunk size
    (it was 0.2280 at chunk_size 1024 and 0.2447 at 1)."""
    v = torch.randn(1, 32, generator=torch.Generator().manual_seed(1))
    q, g = v.repeat(10, 1), v.repeat(50, 1)
    ql, gl = torch.arange(10) % 5, torch.arange(50) % 5
    want = naive_sbir([[0.0] * 50] * 10, ql.tolist(), gl.tolist(), (100, 200), True)
    for chunk in CHUNKS:
        assert_same(sbir_metrics(q, ql, g, gl, chunk_size=chunk, dtype=dtype), want)


def duplicated_problem(seed: int, dtype: torch.dtype):
    """Random embeddings with exact duplicates (gallery copies of gallery items, queries copies
    of gallery items), near duplicates (1e-4 apart: refined pairs) and far points."""
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(60, 12, generator=gen, dtype=torch.float64)
    g[40:50] = g[:10]  # gallery duplicates
    g[50:55] = g[10:15] + 1e-4 * torch.randn(5, 12, generator=gen, dtype=torch.float64)
    q = torch.randn(20, 12, generator=gen, dtype=torch.float64)
    q[:8] = g[[0, 1, 2, 3, 10, 11, 40, 41]]  # queries that coincide with gallery items
    gl = torch.randint(0, 4, (60,), generator=gen)
    ql = torch.randint(0, 4, (20,), generator=gen)
    return q.to(dtype), ql, g.to(dtype), gl


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_sbir_with_duplicates_matches_50_digit_reference(seed: int, dtype: torch.dtype) -> None:
    q, ql, g, gl = duplicated_problem(seed, dtype)
    dist = mp_unit_distances(q, g)
    want = naive_sbir(dist, ql.tolist(), gl.tolist(), (5, 20), True)
    for chunk in CHUNKS:
        got = sbir_metrics(q, ql, g, gl, ks=(5, 20), chunk_size=chunk, dtype=None)
        assert_same(got, want)


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_leave_one_out_with_duplicates_matches_50_digit_reference(
    seed: int, dtype: torch.dtype
) -> None:
    _, _, x, y = duplicated_problem(seed, dtype)
    want = naive_retrieval(mp_unit_distances(x, x), y.tolist(), (1, 2, 4, 8))
    for chunk in CHUNKS:
        assert_same(retrieval_metrics(x, y, chunk_size=chunk), want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_close_pairs_keep_their_digits(dtype: torch.dtype) -> None:
    """Pairs closer than sqrt(CLOSE_SQUARED) are computed from their differences: the error
    is the normalisation's rounding, ~eps absolute (the Gram form's is ~sqrt(D eps): 3e-4 in
    float32, 1e-8 in float64)."""
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(30, 64, generator=gen, dtype=torch.float64)
    offsets = torch.logspace(-6, -1.2, 30, dtype=torch.float64)[:, None]
    b = a + offsets * torch.randn(30, 64, generator=gen, dtype=torch.float64) / 8
    a, b = a.to(dtype), b.to(dtype)
    got = euclidean_normalized(a, b).diagonal().double()
    with mpmath.workdps(50):
        want = torch.tensor(
            [float(mp_unit_distances(a[i : i + 1], b[i : i + 1])[0][0]) for i in range(30)],
            dtype=torch.float64,
        )
    assert (want**2 < CLOSE_SQUARED).all()
    tol = 1e-7 if dtype == torch.float32 else 1e-15
    assert (got - want).abs().max() < tol
