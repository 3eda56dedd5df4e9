"""Chunk kernels: the ranks of each query's relevant gallery items from a ``(c, M)`` distance
block, under the tie rule ``(distance, gallery index)`` ascending (see :mod:`._ranking`).

How, and why it is fast on 2 CPU cores:

- Each distance becomes an integer key that sorts like it (the IEEE bits of a float; for
  negatives and -0.0 sign-corrected), its lowest bit replaced by the relevance flag. Sorting
  the keys without indices (numpy's SIMD sort on CPU, ``torch.sort``/``torch.topk`` elsewhere)
  gives the relevance pattern of the ranking directly: no argsort, no label gather.
- When only the first ``depth`` ranks are needed (Recall@K, MAP@R), a partial selection
  (``np.partition`` / ``torch.topk``) replaces the full sort.
- Clearing the low bit merges distances that are equal or 1 ulp apart, so an irrelevant item
  could end up before a relevant one against the tie rule. That shows as an irrelevant key
  ``2h`` right before a relevant ``2h + 1``, or as a tie across the ``depth`` cut; those rows
  are re-ranked exactly with a stable argsort of the true distances (with continuous features
  this almost never happens).
- Integer distances (Hamming) tie everywhere; their key ``(d * M + index) * 2 + relevant`` is
  exact and needs no fallback.

On CPU the kernel runs in numpy, in place in a reused buffer (fresh 200 MB allocations cost
page faults, and torch's CPU sort and bool/int mixing are several times slower); elsewhere
(GPU) in torch. Both give identical ranks.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

__all__ = ["NumpyRanker", "torch_chunk_ranks"]


# --------------------------------------------------------------------------- torch kernel


def torch_chunk_ranks(
    dist: Tensor,
    query_labels: Tensor,
    gallery_labels: Tensor,
    *,
    self_cols: Tensor | None,
    depth: int,
    width: int,
) -> Tensor:
    """``(c, M)`` distances -> ``(c, width)`` int64 ranks (see ``RankedChunk``), in torch."""
    c, m = dist.shape
    relevant = query_labels[:, None] == gallery_labels[None, :]  # (c, M)
    skip = 0 if self_cols is None else 1
    n = min(skip + depth + 1, m)  # one key past the cut, to see a tie that straddles it
    keys, exact = _torch_keys(dist, signed=False)
    smallest = _torch_smallest(_torch_flag(keys, relevant, self_cols), n)[:, skip:]
    if not exact and bool((smallest[:, 0] < 0).any()):
        keys, _ = _torch_keys(dist, signed=True)  # negative distances or -0.0 (rare)
        smallest = _torch_smallest(_torch_flag(keys, relevant, self_cols), n)[:, skip:]
    head = smallest[:, :depth]
    rows, cols = (head & 1).nonzero(as_tuple=True)  # row-major: positions ascend in each row
    ranks = pack_ranks(rows, cols, rows_total=c, width=width, fill=depth + 1)
    if not exact:
        after_first = cols > 0
        r, p = rows[after_first], cols[after_first]
        suspect = torch.zeros(c, dtype=torch.bool, device=dist.device)
        suspect[r[head[r, p - 1] == head[r, p] - 1]] = True
        if smallest.shape[1] > depth:
            suspect |= (smallest[:, depth - 1] >> 1) == (smallest[:, depth] >> 1)
        if bool(suspect.any()):
            fix = suspect.nonzero().squeeze(1)
            ranks[fix] = exact_ranks(
                dist[fix],
                relevant[fix],
                None if self_cols is None else self_cols[fix],
                depth=depth,
                width=width,
            )
    return ranks


def _torch_keys(dist: Tensor, *, signed: bool) -> tuple[Tensor, bool]:
    """Integer keys that sort like ``dist``, low bit cleared; ``exact`` for integer input."""
    m = dist.shape[1]
    if not dist.is_floating_point():
        d = dist.to(torch.int64)
        if d.numel() == 0 or int(d.abs().max()) <= _int_bound(m):
            return (d * m + torch.arange(m, device=d.device)) * 2, True
        dist = d.to(torch.float64)
    if dist.dtype not in (torch.float32, torch.float64):
        dist = dist.to(torch.float32)  # float16 / bfloat16
    int_dtype = torch.int32 if dist.dtype == torch.float32 else torch.int64
    if not signed:
        return dist.view(int_dtype) & -2, False
    # +0.0 turns -0.0 into 0.0; flipping the magnitude bits of negatives makes signed-integer
    # order float order.
    bits = (dist + 0.0).view(int_dtype)
    return torch.where(bits < 0, bits ^ torch.iinfo(int_dtype).max, bits) & -2, False


def _torch_flag(keys: Tensor, relevant: Tensor, self_cols: Tensor | None) -> Tensor:
    """Set the relevance bit; give the query itself the smallest key (sorted first, dropped)."""
    keys |= relevant
    if self_cols is not None:
        rows = torch.arange(keys.shape[0], device=keys.device)
        keys[rows, self_cols] = torch.iinfo(keys.dtype).min
    return keys


def _torch_smallest(keys: Tensor, n: int) -> Tensor:
    """The ``n`` smallest keys of each row, ascending: ``(c, M) -> (c, n)``."""
    if n < keys.shape[1]:
        return torch.topk(keys, n, dim=1, largest=False, sorted=True).values
    return torch.sort(keys, dim=1).values


# --------------------------------------------------------------------------- numpy kernel


class NumpyRanker:
    """The same kernel in numpy, for CPU tensors. Holds the gallery's class index, a key buffer
    reused from chunk to chunk, and a thread pool: numpy's sort releases the GIL, so blocks of
    rows are keyed and sorted in parallel.

    Args:
        gallery_labels: ``(M,)`` int64 CPU tensor.
        threads: row blocks sorted in parallel (``torch.get_num_threads()`` is a good value).
    """

    def __init__(self, gallery_labels: Tensor, *, threads: int) -> None:
        labels = gallery_labels.numpy()
        self._gallery_labels = gallery_labels
        self._order = np.argsort(labels, kind="stable")  # gallery indices grouped by class
        self._classes, self._starts, self._counts = np.unique(
            labels[self._order], return_index=True, return_counts=True
        )
        self._buffer: np.ndarray | None = None
        self._threads = max(1, threads)
        self._pool = ThreadPoolExecutor(self._threads) if self._threads > 1 else None

    def close(self) -> None:
        """Stop the thread pool."""
        if self._pool is not None:
            self._pool.shutdown()

    def chunk_ranks(
        self,
        dist: Tensor,
        query_labels: Tensor,
        *,
        self_cols: Tensor | None,
        depth: int,
        width: int,
    ) -> Tensor:
        """``(c, M)`` CPU distances -> ``(c, width)`` int64 ranks, as :func:`torch_chunk_ranks`."""
        c, m = dist.shape
        a = dist.numpy() if dist.dtype != torch.bfloat16 else dist.float().numpy()
        skip = 0 if self_cols is None else 1
        n = min(skip + depth + 1, m)
        keys = self._keys_buffer(c, m, a.dtype)
        labels = query_labels.numpy()
        own = None if self_cols is None else self_cols.numpy()
        exact = self._select(a, keys, labels, own, n, signed=False)
        head = keys[:, skip:n]
        if not exact and bool((head[:, 0] < 0).any()):
            self._select(a, keys, labels, own, n, signed=True)  # negative distances, -0.0 (rare)
        top = head[:, :depth]
        flags = np.empty(top.shape, dtype=bool)
        np.bitwise_and(top, 1, out=flags, casting="unsafe")
        flat = np.flatnonzero(flags)  # much faster than 2-D nonzero
        rows, cols = np.divmod(flat, top.shape[1])
        ranks = pack_ranks(
            torch.from_numpy(rows),
            torch.from_numpy(cols),
            rows_total=c,
            width=width,
            fill=depth + 1,
        )
        if not exact:
            after_first = cols > 0
            r, p = rows[after_first], cols[after_first]
            suspect = np.zeros(c, dtype=bool)
            suspect[r[top[r, p - 1] == top[r, p] - 1]] = True
            if head.shape[1] > depth:
                suspect |= (head[:, depth - 1] >> 1) == (head[:, depth] >> 1)
            if suspect.any():
                fix = torch.from_numpy(np.flatnonzero(suspect))
                relevant = query_labels[fix][:, None] == self._gallery_labels[None, :]
                ranks[fix] = exact_ranks(
                    dist[fix],
                    relevant,
                    None if self_cols is None else self_cols[fix],
                    depth=depth,
                    width=width,
                )
        return ranks

    def _keys_buffer(self, c: int, m: int, dist_dtype: np.dtype) -> np.ndarray:
        dtype = np.int32 if dist_dtype in (np.float32, np.float16) else np.int64
        buf = self._buffer
        if buf is None or buf.dtype != dtype or buf.shape[1] != m or buf.shape[0] < c:
            buf = self._buffer = np.empty((c, m), dtype=dtype)
        return buf[:c]

    def _select(
        self,
        a: np.ndarray,
        keys: np.ndarray,
        labels: np.ndarray,
        own: np.ndarray | None,
        n: int,
        *,
        signed: bool,
    ) -> bool:
        """Key, flag and sort in place: afterwards ``keys[:, :n]`` holds each row's ``n``
        smallest keys, ascending. Returns whether the keys are exact."""

        def work(rows: slice) -> bool:
            block = keys[rows]
            exact = _numpy_keys(a[rows], block, signed=signed)
            self._flag(block, labels[rows], None if own is None else own[rows])
            if n < block.shape[1]:
                block.partition(n - 1, axis=1)
                block[:, :n].sort(axis=1)
            else:
                block.sort(axis=1)
            return exact

        step = -(-keys.shape[0] // self._threads)
        blocks = [slice(s, s + step) for s in range(0, keys.shape[0], step)]
        if self._pool is None or len(blocks) == 1:
            return all([work(b) for b in blocks])
        return all(list(self._pool.map(work, blocks)))

    def _flag(self, keys: np.ndarray, labels: np.ndarray, own: np.ndarray | None) -> None:
        """Set the relevance bits; give each query's own key the minimum (sorted first)."""
        slot = np.searchsorted(self._classes, labels).clip(max=len(self._classes) - 1)
        present = self._classes[slot] == labels
        # One block per class of these queries: its queries x its gallery items.
        for k in np.unique(slot[present]):
            members = self._order[self._starts[k] : self._starts[k] + self._counts[k]]
            keys[np.ix_(np.flatnonzero(present & (slot == k)), members)] |= 1
        if own is not None:
            keys[np.arange(keys.shape[0]), own] = np.iinfo(keys.dtype).min


def _numpy_keys(a: np.ndarray, keys: np.ndarray, *, signed: bool) -> bool:
    """Write the keys of distances ``a`` into ``keys``; ``True`` when they are exact."""
    m = a.shape[1]
    if a.dtype.kind in "iu":
        if a.size == 0 or int(np.abs(a).max()) <= _int_bound(m):
            np.multiply(a.astype(np.int64, copy=False), m, out=keys)
            keys += np.arange(m)
            keys <<= 1
            return True
        a = a.astype(np.float64)
    if a.dtype == np.float16:
        a = a.astype(np.float32)
    int_dtype = np.int32 if a.dtype == np.float32 else np.int64
    if not signed:
        np.bitwise_and(a.view(int_dtype), -2, out=keys)
        return False
    # +0.0 turns -0.0 into 0.0; flipping the magnitude bits of negatives makes signed-integer
    # order float order.
    bits = (a + 0.0).view(int_dtype)
    flipped = np.bitwise_xor(bits, np.iinfo(int_dtype).max)
    np.bitwise_and(np.where(np.less(bits, 0), flipped, bits), -2, out=keys)
    return False


# --------------------------------------------------------------------------- shared


def _int_bound(m: int) -> int:
    """Largest |d| for which ``(d * M + index) * 2 + flag`` fits in int64."""
    return (2**62) // (2 * m) - 1


def pack_ranks(rows: Tensor, cols: Tensor, *, rows_total: int, width: int, fill: int) -> Tensor:
    """Positions ``(rows, cols)`` of the relevant items, row-major -> ``(rows_total, width)``
    1-based ranks, ascending in each row, padded with ``fill``."""
    counts = torch.bincount(rows, minlength=rows_total)
    first = counts.cumsum(0) - counts
    j = torch.arange(rows.numel(), device=rows.device) - first[rows]
    out = torch.full((rows_total, width), fill, dtype=torch.int64, device=rows.device)
    out[rows, j] = cols + 1
    return out


def exact_ranks(
    dist: Tensor, relevant: Tensor, self_cols: Tensor | None, *, depth: int, width: int
) -> Tensor:
    """Ranks by a stable argsort of the true distances: the tie rule, exactly."""
    if dist.dtype == torch.bfloat16:
        dist = dist.float()  # numpy has no bfloat16
    if dist.device.type == "cpu":
        order = torch.from_numpy(np.argsort(dist.numpy(), axis=1, kind="stable"))
    else:
        order = torch.sort(dist, dim=1, stable=True).indices
    ranked = relevant.gather(1, order)
    if self_cols is not None:
        keep = order != self_cols[:, None]
        ranked = ranked[keep].view(dist.shape[0], dist.shape[1] - 1)
    rows, cols = ranked[:, :depth].nonzero(as_tuple=True)
    return pack_ranks(rows, cols, rows_total=dist.shape[0], width=width, fill=depth + 1)
