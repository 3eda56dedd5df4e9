from __future__ import annotations

import math

import pytest
import torch
from pytorch_metric_learning.distances import CosineSimilarity, LpDistance

from trainables.dml.distances import (
    DISTANCES,
    PoincareDistance,
    PoincareSimilarity,
    make_distance,
)
from trainables.dml.hyperbolic import HyperbolicHead

C = 0.4


def points(seed, n=7, dim=5, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    frac = 0.9 * torch.rand(n, 1, generator=gen, dtype=torch.float64)
    return (x / x.norm(dim=1, keepdim=True) * frac / math.sqrt(C)).to(dtype)


def mobius_dist(a, b, c):
    """(2/sqrt c) artanh(sqrt c ||(-a) (+)_c b||) with python floats."""
    u = [-v for v in a]
    ub = sum(p * q for p, q in zip(u, b, strict=True))
    uu, bb = sum(p * p for p in u), sum(q * q for q in b)
    den = 1 + 2 * c * ub + c * c * uu * bb
    num = [
        ((1 + 2 * c * ub + c * bb) * p + (1 - c * uu) * q) / den for p, q in zip(u, b, strict=True)
    ]
    return 2 / math.sqrt(c) * math.atanh(math.sqrt(c) * math.sqrt(sum(v * v for v in num)))


def loops(fn, x, y):
    return torch.tensor([[fn(a, b) for b in y.tolist()] for a in x.tolist()], dtype=torch.float64)


def _unit(a):
    n = math.sqrt(sum(v * v for v in a))
    return [v / n for v in a]


@pytest.mark.parametrize("seed", [0, 1])
def test_euclidean_is_pml_lp_on_normalised_embeddings(seed):
    dist = make_distance("euclidean")
    assert isinstance(dist, LpDistance) and dist.normalize_embeddings and not dist.is_inverted
    x, y = points(seed), points(seed + 10, n=4)
    expected = loops(lambda a, b: math.dist(_unit(a), _unit(b)), x, y)
    torch.testing.assert_close(dist(x * 3.0, y), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_cosine_is_pml_cosine(seed):
    dist = make_distance("cosine")
    assert isinstance(dist, CosineSimilarity) and dist.is_inverted
    x, y = points(seed), points(seed + 10, n=4)
    expected = loops(lambda a, b: sum(p * q for p, q in zip(_unit(a), _unit(b), strict=True)), x, y)
    torch.testing.assert_close(dist(x, y), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_poincare_distance_matches_mobius_loops_and_does_not_normalise(seed):
    dist = make_distance("poincare", curvature=C)
    assert isinstance(dist, PoincareDistance)
    assert not dist.is_inverted and not dist.normalize_embeddings
    x, y = points(seed), points(seed + 10, n=4)
    expected = loops(lambda a, b: mobius_dist(a, b, C), x, y)
    torch.testing.assert_close(dist(x, y), expected, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(dist(0.5 * x, y), expected)  # the norm matters: no normalisation
    torch.testing.assert_close(dist.pairwise_distance(x[:4], y), expected[:4].diagonal())


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("tau", [0.1, 1.0])
def test_poincare_similarity_is_exp_of_minus_distance_over_tau(seed, tau):
    sim = make_distance("poincare_similarity", curvature=C, tau=tau)
    assert isinstance(sim, PoincareSimilarity) and sim.is_inverted and not sim.normalize_embeddings
    x, y = points(seed), points(seed + 10, n=4)
    expected = loops(lambda a, b: math.exp(-mobius_dist(a, b, C) / tau), x, y)
    torch.testing.assert_close(sim(x, y), expected, rtol=1e-6, atol=1e-6)
    self_sim = sim(x)
    assert ((self_sim > 0) & (self_sim <= 1)).all()
    torch.testing.assert_close(self_sim.diagonal(), torch.ones(len(x), dtype=torch.float64))
    torch.testing.assert_close(sim.pairwise_distance(x[:4], y), expected[:4].diagonal())
    # PML reads "closer" from is_inverted: the nearest reference has the largest similarity
    assert torch.equal(sim.smallest_dist(self_sim, dim=1).values, self_sim.max(dim=1).values)


def test_curvature_sources_are_read_live_and_not_registered():
    x = points(0)
    c = torch.tensor(C, dtype=torch.float64)
    by_tensor = PoincareDistance(curvature=c)
    by_callable = PoincareDistance(curvature=lambda: 2 * C)
    expected = make_distance("poincare", curvature=C)(x)
    torch.testing.assert_close(by_tensor(x), expected)
    torch.testing.assert_close(by_callable(x), make_distance("poincare", curvature=2 * C)(x))
    c.fill_(2 * C)  # the tensor is read at each call
    torch.testing.assert_close(by_tensor(x), by_callable(x))
    param = torch.nn.Parameter(torch.tensor(C))
    by_param = PoincareDistance(curvature=param)
    assert list(by_param.parameters()) == [] and by_param.state_dict() == {}


def test_learnable_head_curvature_trains_through_the_distance():
    head = HyperbolicHead(curvature=C, learnable=True)
    dist = PoincareDistance(curvature=head)
    assert list(dist.parameters()) == []
    assert dist.curvature.item() == pytest.approx(C, rel=1e-6)
    z = head(torch.randn(5, 4, generator=torch.Generator().manual_seed(0)))
    dist(z).sum().backward()
    assert head.ball.isp_c.grad is not None and head.ball.isp_c.grad.abs() > 0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"curvature": 0.0}, ValueError),
        ({"curvature": -1.0}, ValueError),
        ({"curvature": float("nan")}, ValueError),
        ({"curvature": True}, TypeError),
        ({"curvature": "0.1"}, TypeError),
        ({"curvature": torch.ones(2)}, ValueError),
    ],
)
def test_poincare_rejects_bad_curvature(kwargs, error):
    with pytest.raises(error, match="curvature"):
        PoincareDistance(**kwargs)


@pytest.mark.parametrize("tau", [0.0, -1.0, float("inf")])
def test_poincare_similarity_rejects_bad_tau(tau):
    with pytest.raises(ValueError, match="tau"):
        PoincareSimilarity(curvature=C, tau=tau)


def test_factory_errors_name_the_problem():
    assert sorted(DISTANCES) == ["cosine", "euclidean", "poincare", "poincare_similarity"]
    with pytest.raises(ValueError, match=r"unknown distance 'lorentz'.*'cosine'.*'poincare'"):
        make_distance("lorentz")
    with pytest.raises(ValueError, match=r"unknown arguments \['tau'\].*\['curvature'\]"):
        make_distance("poincare", curvature=C, tau=0.1)
    with pytest.raises(ValueError, match=r"missing arguments \['tau'\]"):
        make_distance("poincare_similarity", curvature=C)
    with pytest.raises(ValueError, match=r"unknown arguments \['curvature'\].*none"):
        make_distance("cosine", curvature=C)


def test_half_embeddings_give_float32_matrices():
    x = points(0, dtype=torch.float16)
    assert make_distance("poincare", curvature=C)(x).dtype == torch.float32
