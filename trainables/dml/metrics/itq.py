"""Iterative quantisation (ITQ; Gong & Lazebnik, CVPR 2011) and Hamming distance (methods.md 2).

Fit on ``X`` (``N x D``): centre on the mean ``mu``; PCA to ``B`` dims, ``V = (X - mu) W``
(``W``: the ``B`` leading eigenvectors of the covariance); then alternate, from a random
orthogonal ``R``, for ``iterations`` rounds:

- codes ``Bin = sign(V R)`` (``0 -> +1``);
- rotation: the orthogonal Procrustes solution ``R = argmin ||Bin - V R||_F``, i.e. with the SVD
  ``Bin^T V = S Omega S_hat^T``, ``R = S_hat S^T``.

Each step cannot increase the quantisation loss ``||Bin - V R||_F^2``. ``encode(x)`` is
``(x - mu) W R >= 0``, one bit per column.

**Published code** [code: DSN ``tool.py``, MATHM ``itq.py``, SAKE, the same numpy port]:
``fit_itq(..., published=True)`` gives its codes (for comparisons with reported numbers; up to
float64 rounding of projections within ~1e-12 of 0). It differs from the algorithm above in
five places:

- the rotation update: it writes ``UB, sigma, UA = np.linalg.svd(C); R = UA @ UB.T``, but numpy
  returns ``UA`` already transposed (``V^T``), so its update is ``R = S_hat^T S^T``, not the
  Procrustes solution (each step can raise the quantisation loss);
- the start rotation: the left singular vectors of ``randn(B, B)`` drawn after
  ``np.random.seed(n_iter)`` (the legacy global generator seeded with the iteration count, 50),
  not a seeded draw of its own;
- the PCA: ``np.linalg.eigh(C, 'U')`` reads the upper triangle of the covariance (we read the
  lower one, numpy's default): LAPACK then returns about half the directions with the other
  sign, which flips those bits of every code (Hamming distances are unchanged by a flip of the
  same bit on both sides, but ITQ's rotation is not, so the codes and rankings differ);
- each set (queries, gallery) is centred on its *own* mean;
- a bit is set where the projection is ``> 0`` (ITQ's own iterations use ``>= 0``).

The published code also keeps all ``D`` PCA dims (bits = feature size): pass ``bits=D`` to
match it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["ITQ", "fit_itq", "hamming_distance"]


@dataclass(frozen=True)
class ITQ:
    """A fitted ITQ quantiser (float64 tensors on the fit data's device).

    Attributes:
        mean: ``(D,)`` centre of the fit data.
        projection: ``(D, B)`` PCA directions, leading first.
        rotation: ``(B, B)`` orthogonal rotation.
        losses: quantisation loss ``||Bin - V R||_F^2 / N`` after each iteration.
        published: encode as the published code does (its own mean, ``> 0``).
    """

    mean: Tensor
    projection: Tensor
    rotation: Tensor
    losses: tuple[float, ...]
    published: bool = False

    @property
    def bits(self) -> int:
        return self.rotation.shape[0]

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Binary codes ``(x - mu) W R >= 0``: ``(N, D) -> (N, B)`` bool.

        When ``published``, as the published DSN/MATHM code: ``x`` is centred on its own mean
        instead of the fit mean, and a bit is set where the projection is ``> 0``.
        """
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"x must have shape (N, {self.mean.shape[0]}), got {tuple(x.shape)}")
        x = x.detach().to(device=self.mean.device, dtype=torch.float64)
        if self.published:  # its order of products too: ((x - mean) W) R
            return ((x - x.mean(dim=0)) @ self.projection) @ self.rotation > 0
        return (x - self.mean) @ (self.projection @ self.rotation) >= 0


@torch.no_grad()
def fit_itq(
    x: Tensor,
    *,
    bits: int,
    iterations: int = 50,
    seed: int,
    published: bool = False,
) -> ITQ:
    """Fit ITQ on ``x`` (formulas: module docstring); computed in float64 on the CPU, the
    result on ``x``'s device.

    Args:
        x: ``(N, D)`` features to fit on, ``N > bits``.
        bits: code length ``B <= D``.
        iterations: alternating rounds (50 in the paper and the ZS-SBIR code).
        seed: seed of the random initial rotation (numpy ``default_rng``); unused when
            ``published``.
        published: the published code's ITQ (module docstring): its start rotation, PCA,
            update and encoding.

    Raises:
        ValueError: bad shapes, ``bits``, ``iterations`` or non-finite features.
    """
    if not isinstance(x, Tensor) or x.ndim != 2:
        raise ValueError("x must be a 2-D tensor (N, D)")
    n, d = x.shape
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= d:
        raise ValueError(f"bits must be an int in [1, D={d}], got {bits!r}")
    if n <= bits:
        raise ValueError(f"ITQ with {bits} bits needs more than {bits} samples to fit, got {n}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be a positive int, got {iterations!r}")
    device = x.device
    # Small dense algebra (B x B SVDs, N x B products): numpy/OpenBLAS on the CPU runs it far
    # faster than torch's threaded CPU GEMM on a shared machine, and it is cheap next to ranking.
    a = x.detach().to(device="cpu", dtype=torch.float64).numpy()
    if not np.isfinite(a).all():
        raise ValueError("x contains NaN or infinite values")

    mean = a.mean(axis=0)
    centred = a - mean
    values, vectors = np.linalg.eigh(
        np.cov(centred, rowvar=False) if published else centred.T @ centred / (n - 1),
        UPLO="U" if published else "L",
    )
    order = values.argsort()[::-1] if published else np.arange(d)[::-1]  # leading first
    projection = np.ascontiguousarray(vectors[:, order][:, :bits])  # (D, B)
    v = centred @ projection  # (N, B)

    if published:  # np.random.seed(n_iter); randn: the legacy generator, seeded by the count
        start = np.random.RandomState(iterations).randn(bits, bits)
    else:
        start = np.random.default_rng(seed).standard_normal((bits, bits))
    rotation = np.linalg.svd(start)[0]
    losses = []
    for _ in range(iterations):
        codes = np.where(v @ rotation >= 0, 1.0, -1.0)  # (N, B)
        u, _, vh = np.linalg.svd(codes.T @ v)  # codes^T V = U diag(s) Vh
        # numpy's port: R = Vh @ U^T (its `UA` is already Vh); Procrustes: R = Vh^T @ U^T.
        rotation = vh @ u.T if published else vh.T @ u.T
        losses.append(float(((codes - v @ rotation) ** 2).sum()) / n)

    def back(t: np.ndarray) -> Tensor:
        return torch.from_numpy(t).to(device)

    return ITQ(
        mean=back(mean),
        projection=back(projection),
        rotation=back(rotation),
        losses=tuple(losses),
        published=published,
    )


@torch.no_grad()
def hamming_distance(a_codes: Tensor, b_codes: Tensor) -> Tensor:
    """Hamming distance between binary codes: ``H[i, j] = #{b : a_ib != b_jb}``.

    Codes are bool or 0/1 numbers. Computed as ``|a_i| + |b_j| - 2 <a_i, b_j>`` with one matrix
    product in float32 (exact: every partial sum is an integer below 2^24); returned as int32.

    Shapes: ``(N, B), (M, B) -> (N, M)``.
    """
    if a_codes.ndim != 2 or b_codes.ndim != 2 or a_codes.shape[1] != b_codes.shape[1]:
        raise ValueError(
            "codes must be 2-D with the same number of bits, got shapes "
            f"{tuple(a_codes.shape)} and {tuple(b_codes.shape)}"
        )
    if a_codes.shape[1] >= 2**24:
        raise ValueError("codes longer than 2^24 bits are not supported")
    a = a_codes.to(torch.float32)
    b = b_codes.to(device=a.device, dtype=torch.float32)
    if not bool(((a == 0) | (a == 1)).all()) or not bool(((b == 0) | (b == 1)).all()):
        raise ValueError("codes must be bool or contain only 0 and 1")
    h = a.sum(dim=1)[:, None] + b.sum(dim=1)[None, :] - 2.0 * (a @ b.T)
    return h.round_().to(torch.int32)
