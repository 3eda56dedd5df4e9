"""Ranking core of the retrieval metrics: the default distance, the tie rule, input checks, and
the ranks of each query's relevant gallery items, computed one chunk of queries at a time.

**Tie rule** [ours]: the gallery is ranked by ``(distance, gallery index)`` ascending; of two
items at exactly the same distance the one with the smaller gallery index comes first. The
rule is deterministic and does not depend on the chunk size, the device or the sort used.

For the rule to hold, equal inputs must give equal distances, wherever they sit in the
matrices (a matrix product rounds each entry differently by its place in the tiles): the
gallery's duplicate rows are computed once (:func:`iter_relevant_ranks`), and the default
distance computes close pairs from their differences (:func:`euclidean_normalized`), so
coinciding embeddings are at distance exactly 0. Collapsed models and duplicate images are
where this matters.

Every metric of this package is a function of one thing per query: the 1-based ranks
``rank_1 < rank_2 < ... < rank_R`` of its ``R`` relevant gallery items (same label; in
leave-one-out mode the query itself is removed from the gallery). :func:`iter_relevant_ranks`
yields them; the chunk kernels that compute them live in :mod:`._keys`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.dml.metrics._keys import NumpyRanker, torch_chunk_ranks

__all__ = [
    "Distance",
    "RankedChunk",
    "check_chunk_size",
    "check_embeddings",
    "check_ks",
    "check_labels",
    "euclidean_normalized",
    "iter_relevant_ranks",
]

# (N, D) queries x (M, D) gallery -> (N, M) distances, smaller = closer. Floating or integer.
Distance = Callable[[Tensor, Tensor], Tensor]


# Squared distances below this are recomputed from the differences: there the Gram form
# ``2 - 2 <x, y>`` has lost most of its digits (its error is ~D eps whatever the distance).
CLOSE_SQUARED = 1e-2  # d < 0.1
_PAIRS_PER_STEP = 1 << 22  # (pairs x D) elements gathered at once while refining


def euclidean_normalized(x: Tensor, y: Tensor) -> Tensor:
    """Euclidean distance between L2-normalised features (the default distance).

    ``d(x, y) = ||x/||x|| - y/||y|| ||_2``, in ``[0, 2]``, in the inputs' dtype. Pairs farther
    apart than 0.1 take ``sqrt(max(0, 2 - 2 <x/||x||, y/||y||>))`` from one matrix product;
    closer pairs are recomputed from their differences (``CLOSE_SQUARED``), so that coinciding
    embeddings are at distance exactly 0 and close ones keep their digits. A zero row stays
    zero after normalisation (it is at distance ``sqrt(2)`` from everything).

    Shapes: ``(N, D), (M, D) -> (N, M)``.
    """
    return _unit_euclidean(F.normalize(x, dim=1), F.normalize(y, dim=1))


def _unit_euclidean(x: Tensor, y: Tensor, *, out: Tensor | None = None) -> Tensor:
    """``||x_i - y_j||`` for unit rows: one fused GEMM (into ``out``), close pairs refined."""
    two = torch.tensor(2.0, dtype=x.dtype, device=x.device)
    sq = torch.addmm(two, x, y.T, alpha=-2.0, out=out).clamp_min_(0.0)  # (N, M)
    rows, cols = torch.nonzero(sq < CLOSE_SQUARED, as_tuple=True)
    step = max(1, _PAIRS_PER_STEP // max(1, x.shape[1]))
    for start in range(0, rows.numel(), step):
        r, c = rows[start : start + step], cols[start : start + step]
        sq[r, c] = (x[r] - y[c]).pow_(2).sum(dim=1)  # each pair alone: no place in a tile
    return sq.sqrt_()


def _block_distance(distance: Distance, gallery: Tensor) -> Callable[[Tensor], Tensor]:
    """``query block -> distance(query block, gallery)``. For the default distance the gallery
    is normalised once and the output buffer reused (fresh 200 MB blocks cost page faults);
    the values are those of :func:`euclidean_normalized`."""
    if distance is not euclidean_normalized:
        return lambda q: distance(q, gallery)
    unit = F.normalize(gallery, dim=1)
    buffers: list[Tensor] = []

    def block(q: Tensor) -> Tensor:
        if not buffers or buffers[0].shape[0] < q.shape[0] or buffers[0].dtype != q.dtype:
            buffers[:] = [torch.empty(q.shape[0], unit.shape[0], dtype=q.dtype, device=q.device)]
        return _unit_euclidean(F.normalize(q, dim=1), unit, out=buffers[0][: q.shape[0]])

    return block


def _deduplicated(distance: Distance, gallery: Tensor) -> Callable[[Tensor], Tensor]:
    """:func:`_block_distance` computing each distinct gallery row once: duplicate rows get
    the same column, bit for bit, so the tie rule orders them by index."""
    unique, inverse = torch.unique(gallery, dim=0, return_inverse=True)
    if unique.shape[0] == gallery.shape[0]:
        return _block_distance(distance, gallery)
    block = _block_distance(distance, unique)
    return lambda q: block(q)[:, inverse]


# --------------------------------------------------------------------------- input checks


def check_embeddings(x: object, *, name: str) -> Tensor:
    """``x`` must be a non-empty ``(N, D)`` tensor; floating ones must be finite."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D tensor (N, D), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}): nothing to evaluate")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has no feature dimension (shape {tuple(x.shape)})")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x.detach()


def check_labels(labels: object, n: int, *, name: str, device: torch.device) -> Tensor:
    """``labels`` must be a 1-D integer tensor of length ``n``; returned on ``device``."""
    if not isinstance(labels, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"{name} must be an integer tensor, got {labels.dtype}")
    return labels.detach().to(device=device, dtype=torch.int64)


def check_ks(ks: Sequence[int], *, name: str = "ks") -> tuple[int, ...]:
    """``ks`` must be a non-empty sequence of positive ints."""
    out = tuple(ks)
    if not out or not all(isinstance(k, int) and not isinstance(k, bool) and k > 0 for k in out):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {ks!r}")
    return out


def check_chunk_size(chunk_size: int) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    return chunk_size


# --------------------------------------------------------------------------- ranking


def use_numpy(device: torch.device) -> bool:
    """Whether the chunk kernel runs in numpy (CPU tensors) or torch (anything else)."""
    return device.type == "cpu"


@dataclass(frozen=True)
class RankedChunk:
    """Ranks of the relevant gallery items of queries ``rows``.

    Attributes:
        rows: the queries of this chunk, as a slice of the query set.
        ranks: ``(c, W)`` int64; ``ranks[i, j]`` is the 1-based rank of the ``(j+1)``-th
            nearest relevant item of query ``i``, exact whenever it is ``<= depth``; entries
            beyond the ``depth`` cut or beyond ``num_relevant[i]`` hold ``depth + 1``.
        num_relevant: ``(c,)`` int64, ``R_i``, the number of relevant gallery items.
        depth: how far down the ranking ranks are exact.
    """

    rows: slice
    ranks: Tensor
    num_relevant: Tensor
    depth: int


def iter_relevant_ranks(
    query: Tensor,
    query_labels: Tensor,
    gallery: Tensor,
    gallery_labels: Tensor,
    *,
    distance: Distance,
    depth: int | None,
    leave_one_out: bool,
    chunk_size: int,
) -> Iterator[RankedChunk]:
    """Yield, chunk by chunk of ``chunk_size`` queries, the ranks of each query's relevant items.

    A gallery item is relevant to a query when their labels are equal. With ``leave_one_out``
    the query set *is* the gallery and query ``i`` is removed from its own ranking (the ranks
    then run over the ``M - 1`` other items). Ranks follow the tie rule of this module.

    Args:
        query, gallery: ``(N, D)`` and ``(M, D)``, already in the dtype to rank in.
        query_labels, gallery_labels: ``(N,)`` and ``(M,)`` int64 on the same device.
        distance: ``(c, D), (M, D) -> (c, M)``, smaller = closer.
        depth: ranks are exact up to this value; ``None`` = the whole ranking.
        leave_one_out: rank query ``i`` against the gallery without item ``i``.
        chunk_size: queries per distance call; memory is ``O(chunk_size * M)``.

    Raises:
        ValueError: the distance returned a wrong shape or dtype.
        FloatingPointError: the distance returned NaN.
    """
    num_items = gallery.shape[0]
    ranked = num_items - 1 if leave_one_out else num_items
    depth = ranked if depth is None else max(1, min(depth, ranked))
    num_relevant = _count_relevant(query_labels, gallery_labels) - int(leave_one_out)
    block_distance = _deduplicated(distance, gallery)
    ranker = None
    if use_numpy(query.device):
        ranker = NumpyRanker(gallery_labels, threads=torch.get_num_threads())
    try:
        yield from _iter_chunks(
            query,
            query_labels,
            gallery_labels,
            block_distance=block_distance,
            # Finite features give finite default distances: no NaN scan of each block.
            scan_nan=distance is not euclidean_normalized,
            ranker=ranker,
            num_relevant=num_relevant,
            depth=depth,
            leave_one_out=leave_one_out,
            chunk_size=chunk_size,
        )
    finally:
        if ranker is not None:
            ranker.close()


def _iter_chunks(
    query: Tensor,
    query_labels: Tensor,
    gallery_labels: Tensor,
    *,
    block_distance: Callable[[Tensor], Tensor],
    scan_nan: bool,
    ranker: NumpyRanker | None,
    num_relevant: Tensor,
    depth: int,
    leave_one_out: bool,
    chunk_size: int,
) -> Iterator[RankedChunk]:
    num_items = gallery_labels.shape[0]
    for start in range(0, query.shape[0], chunk_size):
        rows = slice(start, min(start + chunk_size, query.shape[0]))
        dist = block_distance(query[rows])
        _check_distance(dist, (rows.stop - rows.start, num_items), scan_nan=scan_nan)
        self_cols = (
            torch.arange(rows.start, rows.stop, device=dist.device) if leave_one_out else None
        )
        width = max(1, int(num_relevant[rows].max()))
        if ranker is None:
            ranks = torch_chunk_ranks(
                dist,
                query_labels[rows],
                gallery_labels,
                self_cols=self_cols,
                depth=depth,
                width=width,
            )
        else:
            ranks = ranker.chunk_ranks(
                dist, query_labels[rows], self_cols=self_cols, depth=depth, width=width
            )
        yield RankedChunk(rows=rows, ranks=ranks, num_relevant=num_relevant[rows], depth=depth)


def _count_relevant(query_labels: Tensor, gallery_labels: Tensor) -> Tensor:
    """``(N,)``: how many gallery items share each query's label."""
    classes, counts = torch.unique(gallery_labels, return_counts=True)
    pos = torch.searchsorted(classes, query_labels).clamp_(max=classes.numel() - 1)
    return torch.where(classes[pos] == query_labels, counts[pos], 0)


def _check_distance(dist: object, shape: tuple[int, int], *, scan_nan: bool) -> None:
    if not isinstance(dist, Tensor) or tuple(dist.shape) != shape:
        got = tuple(dist.shape) if isinstance(dist, Tensor) else type(dist).__name__
        raise ValueError(f"distance must return a tensor of shape {shape}, got {got}")
    if dist.is_complex() or dist.dtype == torch.bool:
        raise ValueError(f"distance must return real numbers, got dtype {dist.dtype}")
    if scan_nan and dist.is_floating_point() and bool(torch.isnan(dist).any()):
        raise FloatingPointError("distance returned NaN; the metrics cannot rank NaN distances")
