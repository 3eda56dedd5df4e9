"""Deep-metric-learning retrieval metrics, leave-one-out over the evaluated set (methods.md 2).

Each sample is a query against all the *other* samples. For a query with ``R`` other samples of
its class, ranked ``rank_1 < ... < rank_R`` (1-based, tie rule: ``(distance, index)``
ascending, see :mod:`._ranking`):

- ``recall_at_{k}``: ``[rank_1 <= k]``, a hit if any of the ``k`` nearest neighbours shares the
  label (``k`` larger than ``N - 1`` means all the others);
- ``precision_at_1``: ``[rank_1 == 1]`` (equal to ``recall_at_1``);
- ``r_precision``: ``|{j : rank_j <= R}| / R``;
- ``map_at_r``: ``(1/R) sum_{j : rank_j <= R} j / rank_j`` (MAP@R, Musgrave et al. 2020).

Each is averaged over the queries. **Queries whose class has no other sample (R = 0) are
excluded** from every average (they have no correct answer), as pytorch-metric-learning's
``AccuracyCalculator`` does; if every query is such, :func:`retrieval_metrics` raises.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.dml.metrics._ranking import (
    Distance,
    check_chunk_size,
    check_embeddings,
    check_ks,
    check_labels,
    euclidean_normalized,
    iter_relevant_ranks,
)

__all__ = ["nmi", "retrieval_metrics"]


@torch.no_grad()
def retrieval_metrics(
    embeddings: Tensor,
    labels: Tensor,
    *,
    ks: Sequence[int] = (1, 2, 4, 8),
    distance: Distance = euclidean_normalized,
    chunk_size: int = 1024,
    dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Recall@K, Precision@1, R-Precision and MAP@R, leave-one-out (formulas: module docstring).

    Args:
        embeddings: ``(N, D)`` features, on any device; the work runs there.
        labels: ``(N,)`` integer class labels.
        ks: the ``K`` of ``recall_at_{K}``.
        distance: ``(c, D), (N, D) -> (c, N)``, smaller = closer; e.g. a hyperbolic ``d_c``.
        chunk_size: queries per distance call (memory ``O(chunk_size * N)``); results do not
            depend on it.
        dtype: dtype the features are cast to before ``distance``; ``None`` keeps float32 /
            float64 as given and casts anything else to float32.

    Returns:
        ``{"recall_at_{k}": ..., "precision_at_1": ..., "r_precision": ..., "map_at_r": ...}``.

    Raises:
        ValueError: empty or malformed input, or no query has another sample of its class.
        FloatingPointError: the distance returned NaN.
    """
    x = check_embeddings(embeddings, name="embeddings")
    y = check_labels(labels, x.shape[0], name="labels", device=x.device)
    ks = check_ks(ks)
    check_chunk_size(chunk_size)
    x = x.to(_working_dtype(x, dtype))
    max_others = int(torch.unique(y, return_counts=True)[1].max()) - 1
    if max_others == 0:
        raise ValueError("no query has another sample of its class: every class has one sample")

    per_query: dict[str, list[Tensor]] = {}
    for chunk in iter_relevant_ranks(
        x,
        y,
        x,
        y,
        distance=distance,
        depth=max(max(ks), max_others),
        leave_one_out=True,
        chunk_size=chunk_size,
    ):
        for name, value in _per_query(chunk.ranks, chunk.num_relevant, ks).items():
            per_query.setdefault(name, []).append(value)
    return {name: float(torch.cat(values).mean()) for name, values in per_query.items()}


def _per_query(ranks: Tensor, num_relevant: Tensor, ks: tuple[int, ...]) -> dict[str, Tensor]:
    """Per-query values of the included queries (``R > 0``); ``ranks`` as in RankedChunk."""
    keep = num_relevant > 0
    ranks, r = ranks[keep], num_relevant[keep]
    first = ranks[:, 0]
    j = torch.arange(1, ranks.shape[1] + 1, device=ranks.device, dtype=torch.float64)
    # ranks are ascending, so rank_j <= R already implies j <= R (padding is never <= R).
    within_r = ranks <= r[:, None]
    r64 = r.to(torch.float64)
    out = {f"recall_at_{k}": (first <= k).to(torch.float64) for k in ks}
    out["precision_at_1"] = (first == 1).to(torch.float64)
    out["r_precision"] = within_r.sum(dim=1) / r64
    out["map_at_r"] = torch.where(within_r, j / ranks, 0.0).sum(dim=1) / r64
    return out


def _working_dtype(x: Tensor, dtype: torch.dtype | None) -> torch.dtype:
    if dtype is not None:
        return dtype
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


@torch.no_grad()
def nmi(embeddings: Tensor, labels: Tensor, *, seed: int = 0, normalize: bool = True) -> float:
    """Normalised mutual information between the labels and a k-means clustering.

    k-means (scikit-learn, k-means++ init, ``n_init="auto"``, ``random_state=seed``) with as
    many clusters as classes, on the L2-normalised features when ``normalize`` (the geometry of
    :func:`euclidean_normalized`), then ``NMI = I(y; c) / mean(H(y), H(c))`` (scikit-learn's
    arithmetic normalisation).

    Shapes: ``(N, D), (N,) -> float``.

    Raises:
        ValueError: empty or malformed input.
    """
    # scikit-learn costs a trial worker ~2 s to import; only NMI needs it.
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    x = check_embeddings(embeddings, name="embeddings")
    y = check_labels(labels, x.shape[0], name="labels", device=x.device)
    num_classes = int(torch.unique(y).numel())
    x = x.to(torch.float64)
    if normalize:
        x = F.normalize(x, dim=1)
    clusters = KMeans(n_clusters=num_classes, n_init="auto", random_state=seed).fit_predict(
        x.cpu().numpy()
    )
    return float(normalized_mutual_info_score(y.cpu().numpy(), clusters))
