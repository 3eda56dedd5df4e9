from __future__ import annotations

import math

import pytest
import torch

from trainables.ahsml.similarity import (
    cosine_similarity,
    hierarchical_similarity,
    poincare_similarity,
)
from trainables.dml.distances import PoincareSimilarity


def _as_matrix(rows):
    return torch.stack([torch.stack(r) for r in rows])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("curvature", [0.01, 0.3, 1.0])
def test_poincare_similarity_matches_loop_reference(ref, seed, curvature):
    z = ref.ball_points(7, 5, c=curvature, seed=seed)
    tau = 0.3 + seed
    got = poincare_similarity(z, curvature=curvature, tau=tau)
    want = _as_matrix(ref.similarity(z, c=curvature, tau=tau))
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, atol=1e-9, rtol=0)


def test_equals_the_shared_poincare_similarity_distance(ref):
    z = ref.ball_points(6, 3, c=0.7, seed=3)
    shared = PoincareSimilarity(curvature=0.7, tau=0.4)(z)
    torch.testing.assert_close(poincare_similarity(z, curvature=0.7, tau=0.4), shared)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_similarity_is_symmetric_in_unit_interval_and_one_on_diagonal(ref, dtype):
    # Norms up to 0.999 of the radius: near the boundary, where float32 suffers most.
    z = ref.ball_points(32, 8, c=0.1, seed=5, max_frac=0.999).to(dtype)
    s = poincare_similarity(z, curvature=0.1, tau=0.5)
    assert s.dtype == dtype and torch.isfinite(s).all()
    assert (s > 0).all() and (s <= 1).all()
    torch.testing.assert_close(s, s.T)
    torch.testing.assert_close(s.diagonal(), torch.ones(32, dtype=dtype))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_input_runs_in_float32(ref, dtype):
    z64 = ref.ball_points(6, 4, c=1.0, seed=6, max_frac=0.8)
    s = poincare_similarity(z64.to(dtype), curvature=1.0, tau=1.0)
    assert s.dtype == torch.float32
    want = poincare_similarity(z64.to(dtype).double(), curvature=1.0, tau=1.0)
    torch.testing.assert_close(s.double(), want, atol=1e-5, rtol=0)


def test_cosine_ablation_matches_loop_reference(ref):
    z = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(7)) * 5
    got = cosine_similarity(z)
    want = _as_matrix(ref.similarity(z, c=1.0, tau=1.0, hyperbolic=False))
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    # The ablation ignores curvature and temperature, and the ball (these points are outside).
    ablated = hierarchical_similarity(z, curvature=123.0, tau=0.01, hyperbolic=False)
    torch.testing.assert_close(ablated, want, atol=1e-12, rtol=0)


def test_hierarchical_similarity_dispatches_to_the_ball(ref):
    z = ref.ball_points(5, 3, c=0.2, seed=8)
    torch.testing.assert_close(
        hierarchical_similarity(z, curvature=0.2, tau=0.4),
        poincare_similarity(z, curvature=0.2, tau=0.4),
    )


def test_gradient_reaches_a_tensor_curvature_as_in_the_reference(ref):
    z = ref.ball_points(5, 3, c=0.5, seed=9, max_frac=0.7)
    c = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    poincare_similarity(z, curvature=c, tau=0.8).sum().backward()
    c_ref = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    sum(sum(row) for row in ref.similarity(z, c=c_ref, tau=0.8)).backward()
    assert c.grad is not None and c.grad != 0
    torch.testing.assert_close(c.grad, c_ref.grad, atol=1e-9, rtol=0)


def test_points_outside_the_ball_are_refused():
    z = torch.tensor([[0.1, 0.0], [0.0, 1.5]])
    with pytest.raises(ValueError, match="inside the Poincaré ball"):
        poincare_similarity(z, curvature=1.0, tau=1.0)
    # Inside the ball of c = 0.1 (radius 3.16), so accepted there.
    assert poincare_similarity(z, curvature=0.1, tau=1.0).shape == (2, 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"curvature": 0.0, "tau": 1.0}, "curvature"),
        ({"curvature": -1.0, "tau": 1.0}, "curvature"),
        ({"curvature": math.inf, "tau": 1.0}, "curvature"),
        ({"curvature": torch.ones(2), "tau": 1.0}, "scalar"),
        ({"curvature": 1.0, "tau": 0.0}, "tau"),
    ],
)
def test_bad_hyperparameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        poincare_similarity(torch.zeros(3, 2), **kwargs)


@pytest.mark.parametrize(
    "z", [torch.zeros(3), torch.zeros(0, 2), torch.zeros(3, 2, dtype=torch.long)]
)
def test_bad_embeddings_are_named(z):
    with pytest.raises(ValueError, match="embeddings"):
        hierarchical_similarity(z, curvature=1.0, tau=1.0)
