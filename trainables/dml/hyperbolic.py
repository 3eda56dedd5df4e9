"""Poincaré-ball geometry for hyperbolic metric learning (methods.md section 0).

Conventions: the curvature ``c > 0`` is named ``curvature`` everywhere; the ball
``{x : c ||x||^2 < 1}`` has radius ``1/sqrt(c)``; it is geoopt's ``PoincareBall(c=curvature)``
(whose sectional curvature is ``k = -c``). Ball operations run in float32 or wider, outside
autocast.

Public API:

- :func:`clip_features` -- feature clipping ``x <- min(1, r/||x||) x`` (Guo et al., CVPR'22).
- :func:`pairwise_dist` -- all-pairs geodesic distance ``(N, D) x (M, D) -> (N, M)``.
- :func:`paired_dist` -- row-by-row geodesic distance ``(N, D) x (N, D) -> (N,)``.
- :class:`HyperbolicHead` -- Euclidean feature -> clip -> ``expmap0`` -> project into the ball,
  with a fixed or learnable curvature.
- :func:`param_groups` -- optimizer groups that keep curvatures (and, by default, biases and
  normalisation parameters) out of weight decay.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor, nn

with warnings.catch_warnings():
    # geoopt 0.5 decorates a helper with torch.jit.script, which torch deprecates: a
    # FutureWarning on every import, in every trial's log and the sweep's console.
    warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", FutureWarning)
    import geoopt

__all__ = [
    "CURVATURE_PARAMETER",
    "HyperbolicHead",
    "ball_eps",
    "clip_features",
    "paired_dist",
    "pairwise_dist",
    "param_groups",
]

# Name of the unconstrained scalar behind a learnable curvature, c = softplus(isp_c): it is
# geoopt's own parametrisation of PoincareBall, so a HyperbolicHead's parameter is "ball.isp_c".
CURVATURE_PARAMETER = "isp_c"


def ball_eps(dtype: torch.dtype) -> float:
    """Relative margin kept from the boundary: points are projected to norm ``(1-eps)/sqrt(c)``.

    The same values as geoopt's ``project`` (4e-3 in float32 and narrower, 1e-5 in float64), so
    a point projected by :class:`HyperbolicHead` is left alone by :func:`pairwise_dist`.
    """
    return 1e-5 if dtype == torch.float64 else 4e-3


def clip_features(x: Tensor, *, radius: float) -> Tensor:
    """Feature clipping: ``x <- min(1, r / ||x||) x`` row by row.

    Args:
        x: ``(..., D)`` Euclidean features.
        radius: ``r > 0``, the largest Euclidean norm kept.

    Returns:
        ``(..., D)``, same dtype; rows with ``||x|| <= r`` are unchanged.
    """
    if not radius > 0 or not math.isfinite(radius):
        raise ValueError(f"clip radius must be a finite number > 0, got {radius!r}")
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    # clamp_min keeps r/norm finite at x = 0, so the unused branch of the clamp has no 0 * inf
    factor = (radius / norm.clamp_min(torch.finfo(x.dtype).tiny)).clamp(max=1.0)
    return x * factor


def _working_dtype(*tensors: Tensor) -> torch.dtype:
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _as_curvature(curvature: float | Tensor, like: Tensor) -> Tensor:
    """The curvature as a 0-dim tensor of ``like``'s dtype and device (keeps its autograd graph)."""
    if isinstance(curvature, Tensor):
        if curvature.numel() != 1:
            raise ValueError(f"curvature must be a scalar, got shape {tuple(curvature.shape)}")
        return curvature.reshape(()).to(device=like.device, dtype=like.dtype)
    if not curvature > 0 or not math.isfinite(curvature):
        raise ValueError(f"curvature must be a finite number > 0, got {curvature!r}")
    return torch.tensor(float(curvature), device=like.device, dtype=like.dtype)


def _project(x: Tensor, sqrt_c: Tensor, eps: float) -> Tensor:
    """Project rows onto the closed ball of radius ``(1 - eps)/sqrt(c)`` (geoopt's ``project``)."""
    # the clamp keeps the unused branch finite for rows at the origin (their gradient too)
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-15)
    max_norm = (1.0 - eps) / sqrt_c
    return torch.where(norm > max_norm, x * (max_norm / norm), x)


def _dist_from_sq(sq_diff: Tensor, x_sq: Tensor, y_sq: Tensor, c: Tensor) -> Tensor:
    """``d = (2/sqrt c) asinh( sqrt(c ||x-y||^2 / ((1 - c||x||^2)(1 - c||y||^2))) )``.

    The same value as ``(2/sqrt c) artanh(sqrt c ||(-x) (+)_c y||)``, written so that no term
    cancels near the boundary and the gradient is finite everywhere (asinh' <= 1).
    """
    denom = (1.0 - c * x_sq) * (1.0 - c * y_sq)  # > 0: both points were projected inside
    u_sq = c * sq_diff / denom
    positive = u_sq > 0
    # sqrt has an infinite slope at 0: take it only where u^2 > 0 (the rest is exactly 0)
    u = torch.where(positive, torch.sqrt(torch.where(positive, u_sq, 1.0)), 0.0)
    return (2.0 / torch.sqrt(c)) * torch.asinh(u)


def pairwise_dist(x: Tensor, y: Tensor, *, curvature: float | Tensor) -> Tensor:
    """All-pairs geodesic distance on the Poincaré ball of curvature ``c``.

    ``d_c(x, y) = (2/sqrt c) artanh(sqrt c ||(-x) (+)_c y||)
               = (2/sqrt c) asinh( sqrt c ||x - y|| / sqrt((1 - c||x||^2)(1 - c||y||^2)) )``.

    Both forms are the same function, since
    ``cosh(sqrt c d) = 1 + 2c ||x-y||^2 / ((1 - c||x||^2)(1 - c||y||^2))``; the second one has no
    Möbius addition and no term that cancels near the boundary.

    Numerics: rows are first projected onto the ball of radius ``(1 - eps)/sqrt c`` (geoopt's
    ``project``, :func:`ball_eps`), so any finite input -- on or beyond the boundary, huge norms
    included -- gives finite distances and finite gradients. Everything runs in float64, and
    ``||x - y||`` is summed from the differences (``torch.cdist`` without its matrix-product
    path): the Gram form ``||x||^2 + ||y||^2 - 2 x.y`` cancels for close points, and the
    conformal factor ``1/(1 - c||x||^2)`` multiplies that error (two copies of one point at
    ``1 - sqrt(c)||x|| = 1e-5`` came out ~6e-3 apart). Coinciding points are at distance exactly
    0, the gradient there is 0, and a pair's distance does not depend on where it sits in the
    matrix. Errors against 50-digit arithmetic are tested at <= 1e-9 for points at most
    ``1 - 1e-5`` of the radius out (tests/trainables/dml/test_hyperbolic.py). The cost is
    ``N M D`` multiply-adds without BLAS, e.g. ~0.8 s for 2,000 x 2,000 x 512 on one CPU core.
    Runs outside autocast; half-precision inputs are upcast.

    Args:
        x: ``(N, D)`` points (inside the ball of radius ``1/sqrt c``; others are projected).
        y: ``(M, D)`` points.
        curvature: ``c > 0``, a float or a scalar tensor (a learnable curvature gets gradients;
            a tensor's value is not checked, to avoid a host sync).

    Returns:
        ``(N, M)`` distances, dtype ``x``/``y``'s promoted with float32 (float64 stays float64).
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"pairwise_dist expects (N, D) and (M, D) tensors, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    out_dtype = _working_dtype(x, y)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x64, y64 = x.to(torch.float64), y.to(torch.float64)
        c = _as_curvature(curvature, x64)
        sqrt_c = torch.sqrt(c)
        eps = ball_eps(out_dtype)
        x64, y64 = _project(x64, sqrt_c, eps), _project(y64, sqrt_c, eps)
        x_sq = x64.pow(2).sum(-1)  # (N,)
        y_sq = y64.pow(2).sum(-1)  # (M,)
        # summed from the differences: no cancellation for close pairs (docstring)
        diff = torch.cdist(x64, y64, compute_mode="donot_use_mm_for_euclid_dist")  # (N, M)
        dist = _dist_from_sq(diff * diff, x_sq[:, None], y_sq[None, :], c)
        # The projection's masks turn a NaN point into a finite one: give NaN back, so a
        # diverged embedding fails the loss's finiteness check instead of passing unseen.
        bad = x_sq.isnan()[:, None] | y_sq.isnan()[None, :]  # (N, M)
        dist = dist.masked_fill(bad, float("nan"))
        return dist.to(out_dtype)


def paired_dist(x: Tensor, y: Tensor, *, curvature: float | Tensor) -> Tensor:
    """Row-by-row geodesic distance ``d_c(x_i, y_i)``; same formula and numerics as
    :func:`pairwise_dist` (``||x_i - y_i||^2`` is computed from the difference directly).

    Args:
        x: ``(N, D)`` points.
        y: ``(N, D)`` points.
        curvature: ``c > 0``, float or scalar tensor.

    Returns:
        ``(N,)`` distances.
    """
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(
            f"paired_dist expects two (N, D) tensors of one shape, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    out_dtype = _working_dtype(x, y)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x64, y64 = x.to(torch.float64), y.to(torch.float64)
        c = _as_curvature(curvature, x64)
        sqrt_c = torch.sqrt(c)
        eps = ball_eps(out_dtype)
        x64, y64 = _project(x64, sqrt_c, eps), _project(y64, sqrt_c, eps)
        sq_diff = (x64 - y64).pow(2).sum(-1)
        dist = _dist_from_sq(sq_diff, x64.pow(2).sum(-1), y64.pow(2).sum(-1), c)
        return dist.to(out_dtype)


class HyperbolicHead(nn.Module):
    """Maps Euclidean features into the Poincaré ball: ``x -> proj(expmap0_c(clip_r(x)))``.

    ``expmap0_c(u) = tanh(sqrt c ||u||) u / (sqrt c ||u||)`` (geoopt), then projection to norm at
    most ``(1 - eps)/sqrt c``. Features are never L2-normalised first (that would put every
    point on one sphere of the ball). Runs in float32 or wider, outside autocast.

    The curvature is geoopt's ``PoincareBall(c=curvature, learnable=learnable)``: a single
    scalar parameter ``ball.isp_c`` with ``c = softplus(isp_c) > 0``; it has
    ``requires_grad=learnable``. :func:`param_groups` keeps it out of weight decay.

    Example::

        head = HyperbolicHead(curvature=0.1, learnable=True, clip_radius=2.3)
        z = head(torch.randn(8, 128))            # (8, 128), ||z|| < 1/sqrt(c)
        d = pairwise_dist(z, z, curvature=head.curvature)

    Args:
        curvature: initial ``c > 0``.
        learnable: train ``c`` (one scalar).
        clip_radius: feature-clipping radius ``r`` (Hyp-ViT uses 2.3), or ``None`` for none.

    Shapes: ``(..., D) -> (..., D)``.
    """

    def __init__(
        self, *, curvature: float, learnable: bool = False, clip_radius: float | None = None
    ) -> None:
        super().__init__()
        if not curvature > 0 or not math.isfinite(curvature):
            raise ValueError(f"curvature must be a finite number > 0, got {curvature!r}")
        if clip_radius is not None and (not clip_radius > 0 or not math.isfinite(clip_radius)):
            raise ValueError(
                f"clip_radius must be a finite number > 0 or None, got {clip_radius!r}"
            )
        self.ball = geoopt.PoincareBall(c=curvature, learnable=learnable)
        with torch.no_grad():
            # geoopt sets isp_c = log(exp(c) - 1) in float32, which loses ~1e-4 of c when c is
            # small; the stable inverse softplus c + log(-expm1(-c)) keeps c exact.
            isp = getattr(self.ball, CURVATURE_PARAMETER)
            isp.copy_(torch.tensor(curvature + math.log(-math.expm1(-curvature))))
        self.learnable = learnable
        self.clip_radius = clip_radius

    @property
    def curvature(self) -> Tensor:
        """The current curvature ``c`` as a 0-dim tensor (carries gradient when learnable)."""
        return self.ball.c

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.to(_working_dtype(x))
            if self.clip_radius is not None:
                x = clip_features(x, radius=self.clip_radius)
            # geoopt's expmap0 and project, written out in eager torch: geoopt's are TorchScript
            # functions, whose profiling executor computes the first backward of a process
            # differently from the later ones (last bits), so a trial's training depended on
            # whether its worker process had trained before.
            sqrt_c = torch.sqrt(self.curvature.to(x.dtype))
            norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-15)
            z = torch.tanh(sqrt_c * norm) * (x / (sqrt_c * norm))  # expmap0
            return _project(z, sqrt_c, ball_eps(x.dtype))

    def extra_repr(self) -> str:
        return (
            f"curvature={float(self.curvature):.4g}, learnable={self.learnable}, "
            f"clip_radius={self.clip_radius}"
        )


_NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def param_groups(
    model: nn.Module, *, weight_decay: float, decay_biases_and_norms: bool = False
) -> list[dict]:
    """Split ``model``'s parameters into a weight-decay group and a no-weight-decay group.

    Never decayed: every parameter of a geoopt manifold (the curvature ``ball.isp_c`` of a
    :class:`HyperbolicHead`): decay would pull ``isp_c`` to 0, i.e. ``c`` to ``softplus(0)``.
    By default also not decayed (the usual practice of DINO / nanoGPT / timm): biases, 0-dim and
    1-dim parameters, and the parameters of normalisation layers, whose scale carries no
    capacity to regularise. ``decay_biases_and_norms=True`` decays those too, as the published
    AHSML/DSN recipes (Adam with L2 on every parameter) do. Frozen parameters are included, so
    unfreezing a backbone later needs no new optimizer.

    Returns:
        ``[{"params": [...], "weight_decay": weight_decay}, {"params": [...], "weight_decay":
        0.0}]`` without empty groups; pass it to any ``torch.optim`` optimizer.
    """
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    no_decay_ids: set[int] = set()
    for module in model.modules():
        if isinstance(module, geoopt.manifolds.Manifold) or (
            not decay_biases_and_norms and isinstance(module, _NORM_LAYERS)
        ):
            no_decay_ids.update(id(p) for p in module.parameters())
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        skip = id(p) in no_decay_ids or (
            not decay_biases_and_norms and (p.ndim <= 1 or name.endswith("bias"))
        )
        (no_decay if skip else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": float(weight_decay)},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]
