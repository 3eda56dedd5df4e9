"""AHSML's hierarchical similarity: ``s_ij = exp(-d_c(z_i, z_j) / tau)`` on the Poincaré ball.

The paper obtains its class-wise divergence from hyperbolic metric learning; turning the
geodesic distance into a similarity in ``(0, 1]`` with a temperature is this project's design
[ours] (shared/methods.md section 4), chosen so the adaptive margins (``gamma = 0.5`` plus at
most ``mu = 0.2``) live on the same scale as cosine Multi-Similarity. It is the quantity of
:class:`trainables.dml.distances.PoincareSimilarity`, here as a pure function of the batch.

The ``hyperbolic=False`` ablation [ours] replaces it by the cosine similarity of the
L2-normalised Euclidean embeddings, ``s_ij = <z_i, z_j> / (||z_i|| ||z_j||)`` in ``[-1, 1]``,
the similarity of the published MS loss; curvature and temperature play no part there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.dml.hyperbolic import pairwise_dist

__all__ = ["cosine_similarity", "hierarchical_similarity", "poincare_similarity"]


def poincare_similarity(z: Tensor, *, curvature: float | Tensor, tau: float) -> Tensor:
    """``s_ij = exp(-d_c(z_i, z_j) / tau)`` in ``(0, 1]``, ``s_ii = 1``, for ``z`` ``(B, D)``.

    ``d_c(x, y) = (2/sqrt c) artanh(sqrt c ||(-x) (+)_c y||)``, from
    :func:`trainables.dml.hyperbolic.pairwise_dist` (float64 accumulation; the result has
    ``z``'s dtype, at least float32). ``curvature`` is a float or a 0-dim tensor; a tensor gets
    its gradient.

    Raises ``FloatingPointError`` on non-finite embeddings (named here, before any distance)
    and ``ValueError`` when a point lies on or outside the ball of radius
    ``1/sqrt(c)`` (``pairwise_dist`` would silently project it, which hides Euclidean
    features fed to the hyperbolic loss by mistake).
    """
    _check_embeddings(z)
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau!r}")
    c = _check_curvature(curvature)
    radius = c**-0.5
    norms = z.detach().double().norm(dim=1)
    if not bool(norms.isfinite().all()):
        # Fail with the cause rather than a NaN loss a few steps later.
        raise FloatingPointError("embeddings are not finite (NaN or inf): training diverged")
    outside = norms >= radius
    if bool(outside.any()):
        raise ValueError(
            f"embeddings must lie inside the Poincaré ball of radius 1/sqrt(c) = {radius:.6g}; "
            f"{int(outside.sum())} of {z.shape[0]} do not (largest norm "
            f"{float(norms.max()):.6g}): map them with expmap0 and project first"
        )
    sim = torch.exp(-pairwise_dist(z, z, curvature=curvature) / tau)  # (B, B)
    # d(x, x) = 0, but the Gram-matrix form leaves ~1e-7 of rounding on the diagonal.
    self_pair = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    return torch.where(self_pair, 1.0, sim)


def cosine_similarity(z: Tensor) -> Tensor:
    """``s_ij = <z_i, z_j> / (||z_i|| ||z_j||)`` in ``[-1, 1]`` for ``z`` of shape ``(B, D)``.

    The ``hyperbolic=False`` ablation [ours]; runs in float32 or wider, outside autocast.
    """
    _check_embeddings(z)
    with torch.autocast(device_type=z.device.type, enabled=False):
        u = F.normalize(z.float() if torch.finfo(z.dtype).bits < 32 else z, dim=1)
        return u @ u.T  # (B, B)


def hierarchical_similarity(
    z: Tensor, *, curvature: float | Tensor, tau: float, hyperbolic: bool = True
) -> Tensor:
    """AHSML's pairwise similarity of the embeddings ``z`` ``(B, D)``, as ``(B, B)``.

    ``hyperbolic=True``: ``exp(-d_c(z_i, z_j) / tau)`` on the ball of curvature ``c``
    (:func:`poincare_similarity`); ``hyperbolic=False`` (ablation): cosine similarity of the
    Euclidean embeddings (:func:`cosine_similarity`), ignoring ``curvature`` and ``tau``.
    """
    if hyperbolic:
        return poincare_similarity(z, curvature=curvature, tau=tau)
    return cosine_similarity(z)


def _check_embeddings(z: Tensor) -> None:
    if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"embeddings must be a non-empty (B, D) tensor, got {shape}")
    if not z.is_floating_point():
        raise ValueError(f"embeddings must be floating point, got {z.dtype}")


def _check_curvature(curvature: float | Tensor) -> float:
    if isinstance(curvature, Tensor) and curvature.numel() != 1:
        raise ValueError(f"curvature must be a scalar, got shape {tuple(curvature.shape)}")
    value = float(curvature.detach()) if isinstance(curvature, Tensor) else float(curvature)
    if not (0 < value < float("inf")):
        raise ValueError(f"curvature must be a finite c > 0, got {value!r}")
    return value
