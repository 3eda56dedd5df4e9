"""Iterative quantisation (ITQ; Gong & Lazebnik, CVPR 2011) and Hamming distance (methods.md 2).

Fit on ``X`` (``N x D``): centre on the mean ``mu``; PCA to ``B`` dims, ``V = (X - mu) W``
(``W``: the ``B`` leading eigenvectors of the covariance); then alternate, from a random
orthogonal ``R``, for ``iterations`` rounds:

- codes ``Bin = sign(V R)`` (``0 -> +1``);
- rotation: the orthogonal Procrustes solution ``R = argmin ||Bin - V R||_F``, i.e. with the SVD
  ``Bin^T V = S Omega S_hat^T``, ``R = S_hat S^T``.

Each step cannot increase the quantisation loss ``||Bin - V R||_F^2``. ``encode(x)`` is
``(x - mu) W R >= 0``, one bit per column.

**Published code** [code: DSN ``tool.py``, MATHM ``itq.py``, SAKE, the same numpy port]: it
writes ``UB, sigma, UA = np.linalg.svd(C); R = UA @ UB.T``, but numpy returns ``UA`` already
transposed (``V^T``), so its update is ``R = S_hat^T S^T``, not the Procrustes solution; and
it centres each set (queries, gallery) on its *own* mean. Ours is the corrected algorithm;
``published_update=True`` and ``ITQ.encode(..., own_mean=True)`` reproduce the published one
for comparisons with reported numbers. The published code also keeps all ``D`` PCA dims (bits
= feature size) unless told otherwise; here ``bits`` is explicit.
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
    """

    mean: Tensor
    projection: Tensor
    rotation: Tensor
    losses: tuple[float, ...]

    @property
    def bits(self) -> int:
        return self.rotation.shape[0]

    @torch.no_grad()
    def encode(self, x: Tensor, *, own_mean: bool = False) -> Tensor:
        """Binary codes ``(x - mu) W R >= 0``: ``(N, D) -> (N, B)`` bool.

        ``own_mean=True`` centres ``x`` on its own mean instead of the fit mean, as the
        published DSN/MATHM code does.
        """
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"x must have shape (N, {self.mean.shape[0]}), got {tuple(x.shape)}")
        x = x.detach().to(device=self.mean.device, dtype=torch.float64)
        centre = x.mean(dim=0) if own_mean else self.mean
        return (x - centre) @ (self.projection @ self.rotation) >= 0


@torch.no_grad()
def fit_itq(
    x: Tensor,
    *,
    bits: int,
    iterations: int = 50,
    seed: int,
    published_update: bool = False,
) -> ITQ:
    """Fit ITQ on ``x`` (formulas: module docstring); computed in float64 on the CPU, the
    result on ``x``'s device.

    Args:
        x: ``(N, D)`` features to fit on, ``N > bits``.
        bits: code length ``B <= D``.
        iterations: alternating rounds (50 in the paper and the ZS-SBIR code).
        seed: seed of the random initial rotation (numpy ``default_rng``).
        published_update: use the published code's transposed-SVD rotation update.

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
    _, vectors = np.linalg.eigh(centred.T @ centred / (n - 1))  # eigenvalues ascending
    projection = np.ascontiguousarray(vectors[:, ::-1][:, :bits])  # (D, B), leading first
    v = centred @ projection  # (N, B)

    rotation = np.linalg.svd(np.random.default_rng(seed).standard_normal((bits, bits)))[0]
    losses = []
    for _ in range(iterations):
        codes = np.where(v @ rotation >= 0, 1.0, -1.0)  # (N, B)
        u, _, vh = np.linalg.svd(codes.T @ v)  # codes^T V = U diag(s) Vh
        # numpy's port: R = Vh @ U^T (its `UA` is already Vh); Procrustes: R = Vh^T @ U^T.
        rotation = vh @ u.T if published_update else vh.T @ u.T
        losses.append(float(((codes - v @ rotation) ** 2).sum()) / n)

    def back(t: np.ndarray) -> Tensor:
        return torch.from_numpy(t).to(device)

    return ITQ(
        mean=back(mean), projection=back(projection), rotation=back(rotation), losses=tuple(losses)
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
