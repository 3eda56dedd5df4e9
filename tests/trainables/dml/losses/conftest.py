"""Shared test data and a naive float64 reference for the distances the losses run on.

The references here use only python floats and ``math`` (no torch, no PML, no geoopt), so
they are independent of the code under test.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from trainables.dml.distances import make_distance

CURVATURE = 0.7  # not a default anywhere, so a hard-coded c would show
TAU = 0.3
DISTANCE_NAMES = ["euclidean", "cosine", "poincare", "poincare_similarity"]
SEEDS = [0, 1, 2]


def build_distance(name: str):
    kwargs = {
        "euclidean": {},
        "cosine": {},
        "poincare": {"curvature": CURVATURE},
        "poincare_similarity": {"curvature": CURVATURE, "tau": TAU},
    }[name]
    return make_distance(name, **kwargs)


def make_batch(
    seed: int,
    *,
    size: int = 18,
    n_classes: int = 5,
    dim: int = 6,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points inside the ball of curvature CURVATURE (at 5%-90% of its radius), random labels
    (so classes of uneven sizes, singletons included)."""
    gen = torch.Generator().manual_seed(seed)
    direction = torch.randn(size, dim, generator=gen, dtype=torch.float64)
    direction = direction / direction.norm(dim=1, keepdim=True)
    radius = 0.05 + 0.85 * torch.rand(size, 1, generator=gen, dtype=torch.float64)
    x = direction * radius / math.sqrt(CURVATURE)
    labels = torch.randint(0, n_classes, (size,), generator=gen)
    return x.to(dtype), labels


def _norm(a: list[float]) -> float:
    return math.sqrt(sum(v * v for v in a))


def _mobius_dist(x: list[float], y: list[float], c: float) -> float:
    u = [-v for v in x]  # (-x) (+)_c y
    uy = sum(a * b for a, b in zip(u, y, strict=True))
    uu = sum(a * a for a in u)
    yy = sum(b * b for b in y)
    den = 1 + 2 * c * uy + c * c * uu * yy
    num = [
        ((1 + 2 * c * uy + c * yy) * a + (1 - c * uu) * b) / den for a, b in zip(u, y, strict=True)
    ]
    return 2 / math.sqrt(c) * math.atanh(math.sqrt(c) * _norm(num))


def reference_matrix(name: str, x: torch.Tensor) -> tuple[list[list[float]], bool]:
    """The ``(B, B)`` matrix of distance ``name`` by python loops; is it a similarity?"""
    rows = x.double().tolist()
    out = []
    for a in rows:
        row = []
        for b in rows:
            if name == "euclidean":
                na, nb = _norm(a), _norm(b)
                row.append(
                    math.sqrt(sum((p / na - q / nb) ** 2 for p, q in zip(a, b, strict=True)))
                )
            elif name == "cosine":
                row.append(sum(p * q for p, q in zip(a, b, strict=True)) / (_norm(a) * _norm(b)))
            elif name == "poincare":
                row.append(0.0 if a == b else _mobius_dist(a, b, CURVATURE))
            elif name == "poincare_similarity":
                row.append(math.exp(-(0.0 if a == b else _mobius_dist(a, b, CURVATURE)) / TAU))
            else:
                raise KeyError(name)
        out.append(row)
    return out, name in ("cosine", "poincare_similarity")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests asking for ``distance_name`` / ``seed`` run over every distance / seed."""
    if "distance_name" in metafunc.fixturenames:
        metafunc.parametrize("distance_name", DISTANCE_NAMES)
    if "seed" in metafunc.fixturenames:
        metafunc.parametrize("seed", SEEDS)


@pytest.fixture
def ref() -> SimpleNamespace:
    """Helpers for the loss tests: ``ref.batch``, ``ref.matrix``, ``ref.distance``."""
    return SimpleNamespace(
        batch=make_batch,
        matrix=reference_matrix,
        distance=build_distance,
        curvature=CURVATURE,
    )
