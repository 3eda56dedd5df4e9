"""Validation of a single-modality embedding: the DML metrics of methods.md section 2.

Leave-one-out over the evaluated set (the validation classes during a sweep, the test classes
only in the final evaluation), with the distance that matches the head: Euclidean on
L2-normalised features for a Euclidean head, the geodesic distance ``d_c`` for a hyperbolic one.
"""

from __future__ import annotations

from functools import partial

from torch import Tensor

from trainables.dml.hyperbolic import pairwise_dist
from trainables.dml.metrics import euclidean_normalized, nmi, retrieval_metrics


def evaluate_embeddings(
    embeddings: Tensor,
    labels: Tensor,
    *,
    curvature: float | Tensor | None,
    ks: tuple[int, ...] = (1, 2, 4, 8),
    seed: int = 0,
) -> dict[str, float]:
    """Recall@K, Precision@1, R-Precision, MAP@R and NMI of ``embeddings (N, D)``.

    ``curvature``: None for a Euclidean head, else the ball's ``c`` (distances are ``d_c``;
    NMI's k-means runs on the ball coordinates, a Euclidean approximation near the origin).
    """
    distance = (
        euclidean_normalized
        if curvature is None
        else partial(pairwise_dist, curvature=float(curvature))
    )
    metrics = retrieval_metrics(embeddings, labels, ks=ks, distance=distance)
    metrics["nmi"] = nmi(embeddings, labels, seed=seed)
    return metrics
