"""Zero-shot sketch-based image retrieval metrics: sketch queries against a photo gallery
(methods.md 2).

For a query with ``R`` relevant photos (same label) ranked ``rank_1 < ... < rank_R`` in the
whole gallery of ``M`` photos (1-based; tie rule ``(distance, gallery index)`` ascending, see
:mod:`._ranking`), with ``p_j = j / rank_j`` the precision at the ``j``-th relevant photo:

- **AP over the whole ranking** (``map_all``): with ``interpolated_ap=True`` (default) the
  VOC-style interpolated AP of the ZS-SBIR code (SAKE ``eval_AP_inner``/``VOCap``, copied by DSN
  and MATHM): ``(1/R) sum_j max_{j' >= j} p_j'``; with ``False`` the non-interpolated
  ``(1/R) sum_j p_j``, equal to ``sklearn.metrics.average_precision_score``.
- ``prec_{K}``: ``|{j : rank_j <= K'}| / K'`` with ``K' = min(K, M)`` (SAKE ``eval_precision``).
- ``map_{K}``: AP over the top ``K'`` only, in one of three forms (``map_at_k``), with
  ``T = {j : rank_j <= K'}`` the relevant photos retrieved there and ``n_K = |T|``:

  * ``"standard"`` (default; the textbook AP@K): ``(1/min(K', R)) sum_{j in T} p_j``, 1 only
    for a perfect top ``K'``;
  * ``"sake"``: ``(1/min(K', R)) sum_{j in T} max_{j' in T, j' >= j} p_j'``, interpolated within
    the top ``K'`` (SAKE ``eval_AP_inner(top=K)``, in both the DSN and the MATHM code);
  * ``"sempcyc"``: ``(1/n_K) sum_{j in T} p_j``, normalised by the relevant photos *retrieved*
    (SEM-PCYC's ``apsak``, ``average_precision_score`` on the top-K list: the code behind the
    Sketchy split-2 mAP@200 numbers). A query with one relevant photo at rank 1 and none after
    scores 1 whatever ``R`` is.

  All three are 0 when ``n_K = 0``. They are far apart: on random data of TU-Berlin's size
  (2,400 queries, 27,989 photos, 30 classes) ``"sake"`` and ``"sempcyc"`` differed by 0.075 to
  0.23 at K = 100 and 0.10 to 0.23 at K = 200, depending on how separated the classes are.

**Averaging** (both are reported, named apart): ``map_all``, ``prec_{K}``, ``map_{K}`` average
over all queries (MATHM ``test.py``); ``map_all_per_class``, ``prec_{K}_per_class``,
``map_{K}_per_class`` average within each query class, then over the classes (DSN's
``test_cse_resnet_*_zeroshot.py``).

**Queries with no relevant photo** in the gallery (``queries_without_relevant``): their AP is
undefined. ``"drop"`` (default) leaves them out of every average; ``"zero_precision"`` leaves
them out of the AP averages only and counts their Prec@K as 0, as SAKE's ``eval_precision``
averaged by MATHM's ``test.py`` does (the released codes drop their NaN APs through ``nanmean``;
DSN's per-class mean of a class with only such queries is NaN, which is not reproduced: the
class is left out). If no query has a relevant photo, the metrics raise.

Published code ranks with ``scipy.spatial.distance.cdist`` in float64, so the features are
cast to float64 by default here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import torch
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
from trainables.dml.metrics.itq import fit_itq, hamming_distance

__all__ = ["MapAtK", "QueriesWithoutRelevant", "sbir_binary_metrics", "sbir_metrics"]

MapAtK = Literal["standard", "sake", "sempcyc"]
QueriesWithoutRelevant = Literal["drop", "zero_precision"]


@torch.no_grad()
def sbir_metrics(
    query: Tensor,
    query_labels: Tensor,
    gallery: Tensor,
    gallery_labels: Tensor,
    *,
    distance: Distance = euclidean_normalized,
    ks: Sequence[int] = (100, 200),
    chunk_size: int = 1024,
    dtype: torch.dtype | None = torch.float64,
    interpolated_ap: bool = True,
    map_at_k: MapAtK = "standard",
    queries_without_relevant: QueriesWithoutRelevant = "drop",
) -> dict[str, float]:
    """mAP@all, Prec@K and mAP@K of sketch queries against a photo gallery (module docstring).

    Args:
        query: ``(N, D)`` sketch features; the work runs on their device.
        query_labels: ``(N,)`` integer labels.
        gallery: ``(M, D)`` photo features.
        gallery_labels: ``(M,)`` integer labels.
        distance: ``(c, D), (M, D) -> (c, M)``, smaller = closer.
        ks: the ``K`` of ``prec_{K}`` and ``map_{K}``.
        chunk_size: queries per distance call (memory ``O(chunk_size * M)``); results do not
            depend on it.
        dtype: dtype both sides are cast to before ``distance`` (``None``: as given).
        interpolated_ap: VOC interpolated AP for ``map_all*`` (the ZS-SBIR code) or not.
        map_at_k: the form of ``map_{K}`` (module docstring).
        queries_without_relevant: ``"drop"`` or ``"zero_precision"`` (module docstring).

    Returns:
        ``map_all``, ``map_all_per_class`` and, for each ``K``, ``prec_{K}``, ``map_{K}``,
        ``prec_{K}_per_class``, ``map_{K}_per_class``.

    Raises:
        ValueError: empty or malformed input, or no query has a relevant photo.
        FloatingPointError: the distance returned NaN.
    """
    q = check_embeddings(query, name="query")
    g = check_embeddings(gallery, name="gallery")
    if dtype is not None:
        q, g = q.to(dtype), g.to(dtype)
    return _sbir(
        q,
        query_labels,
        g.to(q.device),
        gallery_labels,
        distance=distance,
        ks=ks,
        chunk_size=chunk_size,
        interpolated_ap=interpolated_ap,
        map_at_k=map_at_k,
        queries_without_relevant=queries_without_relevant,
    )


@torch.no_grad()
def sbir_binary_metrics(
    query: Tensor,
    query_labels: Tensor,
    gallery: Tensor,
    gallery_labels: Tensor,
    *,
    bits: int = 64,
    fit_on: Literal["query", "gallery"] = "query",
    seed: int = 0,
    iterations: int = 50,
    ks: Sequence[int] = (100, 200),
    chunk_size: int = 1024,
    interpolated_ap: bool = True,
    map_at_k: MapAtK = "standard",
    queries_without_relevant: QueriesWithoutRelevant = "drop",
    published_itq: bool = False,
) -> dict[str, float]:
    """:func:`sbir_metrics` on ITQ binary codes ranked by Hamming distance.

    ITQ (:mod:`.itq`) is fitted on one side and encodes both: ``fit_on="query"`` as DSN
    (``compressITQ(query, gallery)``), ``"gallery"`` as MATHM (``compressITQ(gallery,
    query)``). Hamming distances are integers, so ties are everywhere and the tie rule
    ``(distance, gallery index)`` decides much of the figure; the published code leaves it to
    numpy's unstable ``argsort``.

    Args:
        query, query_labels, gallery, gallery_labels: as in :func:`sbir_metrics`.
        bits: code length ``B``.
        fit_on: the side ITQ is fitted on.
        seed: seed of ITQ's initial rotation.
        iterations: ITQ iterations.
        ks, chunk_size, interpolated_ap, map_at_k, queries_without_relevant: as in
            :func:`sbir_metrics`.
        published_itq: reproduce the published ITQ codes (:func:`~.itq.fit_itq` ``published``:
            its fixed start rotation, upper-triangle PCA, transposed-SVD update; each side
            centred on its own mean; bits set where the projection is ``> 0``) instead of the
            corrected algorithm. ``seed`` is then unused.

    Returns:
        The keys of :func:`sbir_metrics`.
    """
    q = check_embeddings(query, name="query")
    g = check_embeddings(gallery, name="gallery").to(q.device)
    if fit_on not in ("query", "gallery"):
        raise ValueError(f"fit_on must be 'query' or 'gallery', got {fit_on!r}")
    itq = fit_itq(
        q if fit_on == "query" else g,
        bits=bits,
        iterations=iterations,
        seed=seed,
        published=published_itq,
    )
    return _sbir(
        itq.encode(q),
        query_labels,
        itq.encode(g),
        gallery_labels,
        distance=hamming_distance,
        ks=ks,
        chunk_size=chunk_size,
        interpolated_ap=interpolated_ap,
        map_at_k=map_at_k,
        queries_without_relevant=queries_without_relevant,
    )


def _sbir(
    q: Tensor,
    query_labels: Tensor,
    g: Tensor,
    gallery_labels: Tensor,
    *,
    distance: Distance,
    ks: Sequence[int],
    chunk_size: int,
    interpolated_ap: bool,
    map_at_k: MapAtK,
    queries_without_relevant: QueriesWithoutRelevant,
) -> dict[str, float]:
    ql = check_labels(query_labels, q.shape[0], name="query_labels", device=q.device)
    gl = check_labels(gallery_labels, g.shape[0], name="gallery_labels", device=q.device)
    ks = check_ks(ks)
    check_chunk_size(chunk_size)
    if map_at_k not in get_args(MapAtK):
        raise ValueError(f"map_at_k must be one of {list(get_args(MapAtK))}, got {map_at_k!r}")
    if queries_without_relevant not in get_args(QueriesWithoutRelevant):
        raise ValueError(
            f"queries_without_relevant must be one of {list(get_args(QueriesWithoutRelevant))}, "
            f"got {queries_without_relevant!r}"
        )
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query has {q.shape[1]} features but gallery has {g.shape[1]}")

    per_query: dict[str, list[Tensor]] = {}
    answerable: list[Tensor] = []
    for chunk in iter_relevant_ranks(
        q, ql, g, gl, distance=distance, depth=None, leave_one_out=False, chunk_size=chunk_size
    ):
        answerable.append(chunk.num_relevant > 0)
        values = _per_query(
            chunk.ranks, chunk.num_relevant, ks, g.shape[0], interpolated_ap, map_at_k
        )
        for name, value in values.items():
            per_query.setdefault(name, []).append(value)
    has_relevant = torch.cat(answerable)
    if not bool(has_relevant.any()):
        raise ValueError("no query label occurs in gallery_labels: every AP is undefined")
    # (queries counted, their class index): APs count the queries with a relevant photo;
    # Prec@K counts every query under "zero_precision"
    ap_group = (has_relevant, torch.unique(ql[has_relevant], return_inverse=True)[1])
    prec_group = ap_group
    if queries_without_relevant == "zero_precision":
        prec_group = (torch.ones_like(has_relevant), torch.unique(ql, return_inverse=True)[1])
    out: dict[str, float] = {}
    for name, chunks in per_query.items():
        counted, cls = prec_group if name.startswith("prec_") else ap_group
        v = torch.cat(chunks)[counted]
        out[name] = float(v.mean())
        out[f"{name}_per_class"] = _mean_of_class_means(v, cls)
    return out


def _per_query(
    ranks: Tensor,
    num_relevant: Tensor,
    ks: tuple[int, ...],
    gallery_size: int,
    interpolated: bool,
    map_at_k: MapAtK,
) -> dict[str, Tensor]:
    """Per-query AP@all, Prec@K, AP@K from ``(c, W)`` ranks of the relevant photos (APs of
    queries without a relevant photo are meaningless; the caller leaves them out)."""
    j = torch.arange(1, ranks.shape[1] + 1, device=ranks.device, dtype=torch.float64)
    valid = torch.arange(ranks.shape[1], device=ranks.device) < num_relevant[:, None]
    precision = torch.where(valid, j / ranks, 0.0)  # p_j, 0 on padding
    r = num_relevant.to(torch.float64).clamp_min(1.0)
    if interpolated:
        ap_all = _envelope(precision, valid).sum(dim=1) / r
    else:
        ap_all = precision.sum(dim=1) / r
    out = {"map_all": ap_all}
    for k in ks:
        top = min(k, gallery_size)
        in_top = valid & (ranks <= top)
        found = in_top.sum(dim=1).to(torch.float64)
        out[f"prec_{k}"] = found / top
        if map_at_k == "sake":
            terms = _envelope(torch.where(in_top, precision, 0.0), in_top)
        else:
            terms = torch.where(in_top, precision, 0.0)
        if map_at_k == "sempcyc":
            norm = found.clamp_min(1.0)
        else:
            norm = r.clamp_max(float(top))  # min(K', R)
        out[f"map_{k}"] = terms.sum(dim=1) / norm  # 0 when nothing relevant is in the top K
    return out


def _envelope(precision: Tensor, mask: Tensor) -> Tensor:
    """``max_{j' >= j} p_j'`` on ``mask`` (0 elsewhere); ``precision`` is 0 off the mask, so
    padding never wins."""
    return torch.where(mask, precision.flip(1).cummax(dim=1).values.flip(1), 0.0)


def _mean_of_class_means(values: Tensor, cls: Tensor) -> float:
    num_classes = int(cls.max()) + 1
    sums = torch.zeros(num_classes, dtype=torch.float64, device=values.device)
    sums.index_add_(0, cls, values.to(torch.float64))
    counts = torch.bincount(cls, minlength=num_classes)
    return float((sums / counts).mean())
