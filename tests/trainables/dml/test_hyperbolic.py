from __future__ import annotations

import math

import geoopt
import mpmath
import pytest
import torch

from trainables.dml.hyperbolic import (
    HyperbolicHead,
    clip_features,
    paired_dist,
    pairwise_dist,
    param_groups,
)

SEEDS = [0, 1, 2]


def ball_points(n, dim, c, seed, *, max_frac=0.9, dtype=torch.float64):
    """Random points at 0-``max_frac`` of the radius 1/sqrt(c) of the ball."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    frac = max_frac * torch.rand(n, 1, generator=gen, dtype=torch.float64)
    return (x / x.norm(dim=1, keepdim=True) * frac / math.sqrt(c)).to(dtype)


def geoopt_dist(x, y, c):
    """geoopt's broadcast distance, with the ball's curvature stored in float64."""
    ball = geoopt.PoincareBall(c=torch.tensor(c, dtype=torch.float64))
    return ball.dist(x.double()[:, None], y.double()[None])


def closed_form_loops(x, y, c):
    """d = (1/sqrt c) arcosh(1 + 2c||x-y||^2 / ((1-c||x||^2)(1-c||y||^2))), python floats."""
    out = []
    for a in x.double().tolist():
        row = []
        for b in y.double().tolist():
            sq = sum((p - q) ** 2 for p, q in zip(a, b, strict=True))
            na, nb = sum(p * p for p in a), sum(q * q for q in b)
            row.append(math.acosh(1 + 2 * c * sq / ((1 - c * na) * (1 - c * nb))) / math.sqrt(c))
        out.append(row)
    return torch.tensor(out, dtype=torch.float64)


# --- pairwise_dist -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("c", [0.1, 1.0, 3.0])
def test_pairwise_dist_float64_matches_geoopt_and_closed_form(seed, c):
    x, y = ball_points(9, 5, c, seed), ball_points(7, 5, c, seed + 100)
    ours = pairwise_dist(x, y, curvature=c)
    assert ours.dtype == torch.float64 and ours.shape == (9, 7)
    torch.testing.assert_close(ours, geoopt_dist(x, y, c), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours, closed_form_loops(x, y, c), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_pairwise_dist_float32_is_nan_free_and_accurate(seed):
    c = 0.1
    x, y = ball_points(9, 16, c, seed), ball_points(7, 16, c, seed + 100, max_frac=0.99)
    ours = pairwise_dist(x.float(), y.float(), curvature=c)
    assert ours.dtype == torch.float32 and not torch.isnan(ours).any()
    reference = geoopt_dist(x.float(), y.float(), c)  # same float32 inputs, float64 math
    torch.testing.assert_close(ours.double(), reference, rtol=1e-6, atol=1e-5)


def test_pairwise_dist_close_points_near_boundary_are_accurate_in_float32():
    """||x-y||^2 from norms and dot products cancels for close points near the boundary;
    the float64 accumulation keeps the float32 result within 1e-5 (float32 Gram: ~0.5)."""
    c = 0.1
    x = ball_points(32, 64, c, 0, max_frac=1.0)
    x = x / x.norm(dim=1, keepdim=True) * 0.99 / math.sqrt(c)
    gen = torch.Generator().manual_seed(1)
    y = x + 1e-4 * torch.randn(x.shape, generator=gen, dtype=torch.float64)
    ours = pairwise_dist(x.float(), y.float(), curvature=c).double()
    reference = closed_form_loops(x.float(), y.float(), c)
    assert (ours - reference).abs().max() < 1e-5


def test_pairwise_dist_is_symmetric_with_zero_diagonal():
    x = ball_points(8, 4, 0.5, 3)
    d = pairwise_dist(x, x, curvature=0.5)
    torch.testing.assert_close(d, d.T)
    assert (d.diagonal() == 0).all() and (d + torch.eye(8) > 0).all()
    # distinct tensors holding the same points: exactly 0 too (no Gram-form rounding)
    assert (pairwise_dist(x, x.clone(), curvature=0.5).diagonal() == 0).all()


def mp_dist(x, y, c):
    """The closed form in 50-digit arithmetic on the exact binary values of the inputs."""
    with mpmath.workdps(50):
        c = mpmath.mpf(float(c))
        out = []
        for a in x.double().tolist():
            row = []
            na = mpmath.fsum(mpmath.mpf(p) ** 2 for p in a)
            for b in y.double().tolist():
                nb = mpmath.fsum(mpmath.mpf(q) ** 2 for q in b)
                sq = mpmath.fsum(
                    (mpmath.mpf(p) - mpmath.mpf(q)) ** 2 for p, q in zip(a, b, strict=True)
                )
                u = mpmath.sqrt(c * sq / ((1 - c * na) * (1 - c * nb)))
                row.append(float(2 / mpmath.sqrt(c) * mpmath.asinh(u)))
            out.append(row)
    return torch.tensor(out, dtype=torch.float64)


def near_boundary_pairs(n, dim, c, seed, *, gaps, dtype):
    """Points at ``1 - sqrt(c)||x|| = gap`` and close copies of them (offsets 0 to 1e-3 of the
    radius): the case where the Gram form cancels most."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    gap = torch.tensor(gaps, dtype=torch.float64).repeat(n)[:n, None]
    x = u * (1 - gap) / math.sqrt(c)
    scale = torch.tensor([0.0, 1e-9, 1e-6, 1e-3], dtype=torch.float64).repeat(n)[:n, None]
    y = x + scale * gap / math.sqrt(c) * torch.randn(n, dim, generator=gen, dtype=torch.float64)
    y = y / torch.clamp(y.norm(dim=1, keepdim=True) * math.sqrt(c) / (1 - gap), min=1.0)
    x, y = x.to(dtype), y.to(dtype)
    y[::4] = x[::4]  # exact copies
    return x, y


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("c", [0.1, 1.0])
def test_pairwise_dist_near_the_boundary_matches_50_digit_arithmetic(seed, c):
    x, y = near_boundary_pairs(12, 8, c, seed, gaps=[1e-5, 3e-5, 1e-3], dtype=torch.float64)
    ours = pairwise_dist(x, y, curvature=c)
    reference = mp_dist(x, y, c)
    assert (ours - reference).abs().max() < 1e-9  # the Gram form: up to 3e-4
    assert (ours.diagonal()[::4] == 0).all()  # two copies of one point, held in two tensors
    assert (ours.diagonal()[1::4] > 0).all()  # 1e-9 apart is not 0 either
    x.requires_grad_(True)
    pairwise_dist(x, y, curvature=c).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_pairwise_dist_near_the_boundary_in_float32(seed):
    c = 0.1  # float32 points are projected to 1 - 4e-3 of the radius: stay inside that
    x, y = near_boundary_pairs(12, 8, c, seed, gaps=[5e-3, 1e-2], dtype=torch.float32)
    ours = pairwise_dist(x, y, curvature=c)
    assert ours.dtype == torch.float32
    reference = mp_dist(x, y, c)
    torch.testing.assert_close(ours.double(), reference, rtol=2e-7, atol=1e-6)
    assert (ours.diagonal()[::4] == 0).all()


def test_pairwise_dist_of_a_pair_does_not_depend_on_its_place():
    """The same two points give the same distance wherever they sit in the matrices."""
    x = ball_points(40, 24, 0.1, 4, max_frac=0.999)
    rows = torch.cat([x[7:8], x[:7], x[8:]])  # point 7 moved to the first row
    base = pairwise_dist(x, x, curvature=0.1)
    moved = pairwise_dist(rows, x.flip(0), curvature=0.1)
    assert moved[0, 40 - 1 - 7] == 0 and torch.equal(moved[0].flip(0), base[7])


def test_paired_dist_matches_geoopt():
    c = 0.3
    x, y = ball_points(10, 6, c, 4), ball_points(10, 6, c, 5)
    expected = geoopt.PoincareBall(c=torch.tensor(c, dtype=torch.float64)).dist(x, y)
    torch.testing.assert_close(paired_dist(x, y, curvature=c), expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(
        paired_dist(x, y, curvature=c), pairwise_dist(x, y, curvature=c).diagonal()
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_are_upcast(dtype):
    x = ball_points(6, 8, 0.1, 0).to(dtype)
    d = pairwise_dist(x, x, curvature=0.1)
    assert d.dtype == torch.float32
    torch.testing.assert_close(d, pairwise_dist(x.float(), x.float(), curvature=0.1))


def test_not_run_under_autocast():
    x = ball_points(6, 8, 0.1, 0, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d = pairwise_dist(x, x, curvature=0.1)
    assert d.dtype == torch.float32
    torch.testing.assert_close(d, pairwise_dist(x, x, curvature=0.1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_boundary_and_beyond_give_finite_values_and_gradients(dtype):
    c = 0.1
    radius = 1 / math.sqrt(c)
    huge = 1e30 if dtype == torch.float32 else 1e300
    gen = torch.Generator().manual_seed(0)
    direction = torch.randn(7, 5, generator=gen, dtype=torch.float64)
    direction = direction / direction.norm(dim=1, keepdim=True)
    scale = torch.tensor([0.0, 0.5, 1.0, 1.0 + 1e-7, 10.0, 1e6, huge], dtype=torch.float64)
    x = (direction * scale[:, None] * radius).to(dtype)
    x = torch.cat([x, x[2:3]]).requires_grad_(True)  # a repeated boundary point
    curvature = torch.tensor(c, dtype=dtype, requires_grad=True)
    d = pairwise_dist(x, x, curvature=curvature)
    assert torch.isfinite(d).all()
    (d * torch.rand(d.shape, generator=gen, dtype=dtype)).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(curvature.grad)


def test_gradcheck_including_curvature():
    x = ball_points(4, 3, 0.5, 6).requires_grad_(True)
    y = ball_points(3, 3, 0.5, 7).requires_grad_(True)
    c = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, k: pairwise_dist(a, b, curvature=k), (x, y, c))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_pairwise_dist_rejects_bad_curvature(bad):
    with pytest.raises(ValueError, match="curvature"):
        pairwise_dist(torch.zeros(2, 3), torch.zeros(2, 3), curvature=bad)


def test_pairwise_dist_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, D\) and \(M, D\)"):
        pairwise_dist(torch.zeros(2, 3), torch.zeros(2, 4), curvature=1.0)


# --- clip_features -------------------------------------------------------------------------


def test_clip_features():
    x = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]], requires_grad=True)
    out = clip_features(x, radius=2.0)
    torch.testing.assert_close(out, torch.tensor([[1.2, 1.6], [0.3, 0.4], [0.0, 0.0]]))
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf")])
def test_clip_features_rejects_bad_radius(bad):
    with pytest.raises(ValueError, match="radius"):
        clip_features(torch.ones(1, 2), radius=bad)


# --- HyperbolicHead ------------------------------------------------------------------------


@pytest.mark.parametrize("clip_radius", [None, 2.3])
@pytest.mark.parametrize("c", [1e-3, 0.1, 1.0])
def test_head_matches_geoopt_expmap0(c, clip_radius):
    head = HyperbolicHead(curvature=c, clip_radius=clip_radius)
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(0)) * 3
    ball = geoopt.PoincareBall(c=c)
    clipped = x if clip_radius is None else clip_features(x, radius=clip_radius)
    torch.testing.assert_close(head(x), ball.expmap0(clipped, project=True))
    assert head.curvature.item() == pytest.approx(c, rel=1e-6)


def test_head_keeps_points_inside_the_ball_and_does_not_normalise():
    head = HyperbolicHead(curvature=0.1)
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    scaled = torch.cat([x * 0.01, x * 0.1, x * 1e30])
    z = head(scaled)
    assert torch.isfinite(z).all() and (z.norm(dim=1) < 1 / math.sqrt(0.1)).all()
    norms = z.norm(dim=1)
    assert (norms[:5] < norms[5:10]).all()  # the depth in the ball keeps the feature's norm


def test_head_runs_in_float32_under_autocast_and_for_half_inputs():
    head = HyperbolicHead(curvature=0.1, clip_radius=2.3)
    x = torch.randn(4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = head(x)
    assert z.dtype == torch.float32
    torch.testing.assert_close(z, head(x))
    assert head(x.half()).dtype == torch.float32


def test_fixed_curvature_is_not_trainable():
    head = HyperbolicHead(curvature=0.1)
    assert [p.requires_grad for p in head.parameters()] == [False]


def test_learnable_curvature_is_one_positive_scalar_that_gets_gradients():
    head = HyperbolicHead(curvature=0.1, learnable=True)
    params = dict(head.named_parameters())
    assert list(params) == ["ball.isp_c"] and params["ball.isp_c"].shape == ()
    z = head(torch.randn(6, 4, generator=torch.Generator().manual_seed(0)))
    pairwise_dist(z, z, curvature=head.curvature).sum().backward()
    assert params["ball.isp_c"].grad is not None and params["ball.isp_c"].grad.abs() > 0
    # a large step pushing c down keeps it > 0 (softplus parametrisation)
    isp_c = params["ball.isp_c"]
    for _ in range(5):
        (grad,) = torch.autograd.grad(head.curvature, isp_c)  # > 0: gradient descent lowers c
        with torch.no_grad():
            isp_c -= 1e3 * grad
    assert 0 < head.curvature.item() < 0.1


@pytest.mark.parametrize(
    "kwargs", [{"curvature": 0.0}, {"curvature": -1.0}, {"curvature": 1.0, "clip_radius": 0.0}]
)
def test_head_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        HyperbolicHead(**kwargs)


# --- param_groups --------------------------------------------------------------------------


def _model():
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8),
        torch.nn.BatchNorm1d(8),
        torch.nn.Linear(8, 8, bias=False),
        torch.nn.LayerNorm(8),
        HyperbolicHead(curvature=0.1, learnable=True),
    )


def _names(model, group):
    ids = {id(p) for p in group["params"]}
    return sorted(n for n, p in model.named_parameters() if id(p) in ids)


def test_param_groups_default_keeps_curvature_biases_and_norms_undecayed():
    model = _model()
    decay, no_decay = param_groups(model, weight_decay=5e-4)
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert _names(model, decay) == ["0.weight", "2.weight"]
    assert _names(model, no_decay) == ["0.bias", "1.bias", "1.weight", "3.bias", "3.weight",
                                       "4.ball.isp_c"]  # fmt: skip
    torch.optim.AdamW(param_groups(model, weight_decay=0.1))  # accepted by torch.optim


def test_param_groups_can_decay_biases_but_never_the_curvature():
    model = _model()
    decay, no_decay = param_groups(model, weight_decay=1e-4, decay_biases_and_norms=True)
    assert _names(model, no_decay) == ["4.ball.isp_c"]
    assert len(decay["params"]) == len(list(model.parameters())) - 1


def test_curvature_is_not_decayed_by_an_optimizer_step():
    head = HyperbolicHead(curvature=0.5, learnable=True)
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), head)
    opt = torch.optim.AdamW(param_groups(model, weight_decay=1.0), lr=0.1)
    head.ball.isp_c.grad = torch.zeros(())  # only decay could move it
    model[0].weight.grad = torch.zeros(3, 3)
    before, weight_before = head.curvature.item(), model[0].weight.detach().clone()
    opt.step()
    assert head.curvature.item() == before
    torch.testing.assert_close(model[0].weight.detach(), 0.9 * weight_before)  # decay is on


def test_param_groups_rejects_negative_decay():
    with pytest.raises(ValueError, match="weight_decay"):
        param_groups(_model(), weight_decay=-1.0)


def test_pairwise_dist_propagates_nan() -> None:
    x = torch.randn(4, 3) * 0.1
    x[1, 0] = float("nan")
    d = pairwise_dist(x, x, curvature=0.5)
    assert torch.isnan(d[1]).all() and torch.isnan(d[:, 1]).all()
    assert torch.isfinite(d[[0, 2, 3]][:, [0, 2, 3]]).all()


def test_the_first_backward_of_a_process_equals_the_later_ones():
    """A trial's numbers must not depend on whether its (reused) worker process trained before:
    TorchScript's profiling executor (geoopt's expmap0/project) changed the first backward."""
    import subprocess
    import sys

    script = """
import torch
from trainables.dml.backbones.embedding import EmbeddingNet
from trainables.dml.backbones.small_cnn import SmallCNN
from trainables.dml.hyperbolic import HyperbolicHead, pairwise_dist
torch.set_num_threads(1)
torch.manual_seed(0)
net = EmbeddingNet(backbone=SmallCNN(width=8, out_features=16), in_features=16,
                   embedding_size=6, hyperbolic=HyperbolicHead(curvature=0.1, learnable=True))
x = torch.randn(12, 1, 8, 8)
grads = []
for _ in range(3):
    net.zero_grad()
    z = net(x)
    (pairwise_dist(z, z, curvature=net.hyperbolic.curvature) ** 2).sum().backward()
    grads.append(torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None]))
print(all(torch.equal(grads[0], g) for g in grads[1:]))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "True", done.stdout + done.stderr
