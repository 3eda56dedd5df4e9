"""The one distance interface of the losses: pytorch-metric-learning's ``BaseDistance``.

A distance maps ``(N, D)`` query and ``(M, D)`` reference embeddings to an ``(N, M)`` matrix.
``is_inverted`` tells the losses and miners which way is "closer": ``False`` for distances
(smaller = closer), ``True`` for similarities (larger = closer).

- ``euclidean``: ``||x/||x|| - y/||y||||_2`` (PML ``LpDistance``); distance; normalises.
- ``cosine``: ``<x/||x||, y/||y||>`` (PML ``CosineSimilarity``); similarity; normalises.
- ``poincare``: ``d_c(x, y)``, geodesic distance on the ball of curvature ``c``; distance.
- ``poincare_similarity``: ``exp(-d_c(x, y) / tau)`` in ``(0, 1]``; similarity.

PML distances L2-normalise embeddings by default; the hyperbolic ones never do (a point's norm
is its depth in the ball). The similarity ``exp(-d_c/tau)`` puts ball distances on the scale of
cosine similarities, so similarity-based losses with thresholds (Multi-Similarity's
``lambda=0.5``, AHSML's margins) work on the ball.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
from pytorch_metric_learning.distances import BaseDistance, CosineSimilarity, LpDistance
from torch import Tensor

from trainables.dml.hyperbolic import paired_dist, pairwise_dist

__all__ = [
    "DISTANCES",
    "CurvatureSource",
    "PoincareDistance",
    "PoincareSimilarity",
    "make_distance",
]


class _HasCurvature(Protocol):
    @property
    def curvature(self) -> Tensor: ...


# A fixed c, a scalar tensor (e.g. a parameter), an object with a ``.curvature`` attribute
# (e.g. a HyperbolicHead with a learnable curvature) or a zero-argument callable.
CurvatureSource = float | Tensor | _HasCurvature | Callable[[], float | Tensor]


class PoincareDistance(BaseDistance):
    """Geodesic distance on the Poincaré ball: ``mat[i, j] = d_c(q_i, r_j)``.

    ``d_c(x, y) = (2/sqrt c) artanh(sqrt c ||(-x) (+)_c y||)``, computed by
    :func:`trainables.dml.hyperbolic.pairwise_dist` (float64 accumulation, finite for any finite
    input). Embeddings are not normalised; ``is_inverted = False``.

    Args:
        curvature: ``c > 0`` or where to read the current ``c`` from at each call: a scalar
            tensor, an object with a ``.curvature`` attribute (e.g. a learnable
            ``HyperbolicHead``, so the loss trains the curvature too) or a zero-argument
            callable. The source is held by reference, not registered as a submodule: its
            parameters stay with their owner.

    Shapes: ``(N, D), (M, D) -> (N, M)``.
    """

    def __init__(self, *, curvature: CurvatureSource) -> None:
        super().__init__(normalize_embeddings=False, is_inverted=False)
        _check_curvature_source(curvature)
        # object.__setattr__: a module or parameter given as source must not be registered
        # here, or its parameters would also appear in the loss's parameters and state_dict.
        object.__setattr__(self, "_curvature_source", curvature)

    @property
    def curvature(self) -> float | Tensor:
        """The current curvature ``c``."""
        source = self._curvature_source
        if isinstance(source, float | int | Tensor):
            return source
        if hasattr(source, "curvature"):
            return source.curvature
        return source()

    def compute_mat(self, query_emb: Tensor, ref_emb: Tensor | None) -> Tensor:
        ref = query_emb if ref_emb is None else ref_emb
        return pairwise_dist(query_emb, ref, curvature=self.curvature)

    def pairwise_distance(self, query_emb: Tensor, ref_emb: Tensor) -> Tensor:
        """Row-by-row distances ``(N, D), (N, D) -> (N,)`` (PML's name for it)."""
        return paired_dist(query_emb, ref_emb, curvature=self.curvature)

    def extra_repr(self) -> str:
        return f"curvature={self._curvature_source!r}"


class PoincareSimilarity(PoincareDistance):
    """Similarity on the Poincaré ball: ``mat[i, j] = exp(-d_c(q_i, r_j) / tau)`` in ``(0, 1]``.

    Equal to 1 for identical points and decreasing with the geodesic distance; ``is_inverted =
    True`` like cosine similarity, so PML's similarity-based losses and miners (Multi-Similarity)
    apply unchanged. Embeddings are not normalised.

    Args:
        curvature: as for :class:`PoincareDistance`.
        tau: temperature ``> 0``; the distance at which the similarity is ``1/e``.

    Shapes: ``(N, D), (M, D) -> (N, M)``.
    """

    def __init__(self, *, curvature: CurvatureSource, tau: float) -> None:
        super().__init__(curvature=curvature)
        if not tau > 0 or not math.isfinite(tau):
            raise ValueError(f"tau must be a finite number > 0, got {tau!r}")
        self.is_inverted = True
        self.tau = float(tau)

    def compute_mat(self, query_emb: Tensor, ref_emb: Tensor | None) -> Tensor:
        return torch.exp(-super().compute_mat(query_emb, ref_emb) / self.tau)

    def pairwise_distance(self, query_emb: Tensor, ref_emb: Tensor) -> Tensor:
        return torch.exp(-super().pairwise_distance(query_emb, ref_emb) / self.tau)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, tau={self.tau}"


def _check_curvature_source(source: object) -> None:
    if isinstance(source, bool):
        raise TypeError("curvature must be a number, a tensor or a curvature source, not a bool")
    if isinstance(source, float | int):
        if not source > 0 or not math.isfinite(source):
            raise ValueError(f"curvature must be a finite number > 0, got {source!r}")
    elif isinstance(source, Tensor):
        if source.numel() != 1:
            raise ValueError(f"curvature tensor must be a scalar, got shape {tuple(source.shape)}")
    elif not hasattr(source, "curvature") and not callable(source):
        raise TypeError(
            "curvature must be a float, a scalar tensor, an object with a .curvature attribute "
            f"or a zero-argument callable, got {type(source).__name__}"
        )


def _euclidean() -> BaseDistance:
    return LpDistance(normalize_embeddings=True, p=2, power=1)


def _cosine() -> BaseDistance:
    return CosineSimilarity()


def _poincare(*, curvature: CurvatureSource) -> BaseDistance:
    return PoincareDistance(curvature=curvature)


def _poincare_similarity(*, curvature: CurvatureSource, tau: float) -> BaseDistance:
    return PoincareSimilarity(curvature=curvature, tau=tau)


DISTANCES: dict[str, Callable[..., BaseDistance]] = {
    "euclidean": _euclidean,
    "cosine": _cosine,
    "poincare": _poincare,
    "poincare_similarity": _poincare_similarity,
}


def make_distance(name: str, **kwargs: Any) -> BaseDistance:
    """Build a distance by name: ``"euclidean"``, ``"cosine"`` (no arguments), ``"poincare"``
    (``curvature``), ``"poincare_similarity"`` (``curvature``, ``tau``).

    Raises:
        ValueError: unknown name (the message lists the known ones), or an unknown or missing
            keyword argument (the message lists the accepted ones).
    """
    if name not in DISTANCES:
        raise ValueError(f"unknown distance {name!r}; known distances: {sorted(DISTANCES)}")
    builder = DISTANCES[name]
    params = inspect.signature(builder).parameters
    unknown = sorted(set(kwargs) - set(params))
    missing = sorted(n for n, p in params.items() if p.default is p.empty and n not in kwargs)
    if unknown or missing:
        problem = f"unknown arguments {unknown}" if unknown else f"missing arguments {missing}"
        raise ValueError(f"distance {name!r}: {problem}; it accepts {sorted(params) or 'none'}")
    return builder(**kwargs)
