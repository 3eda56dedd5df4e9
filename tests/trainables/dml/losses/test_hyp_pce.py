from __future__ import annotations

import math

import pytest
import torch

from trainables.dml.distances import PoincareDistance
from trainables.dml.hyperbolic import HyperbolicHead
from trainables.dml.losses.hyp_pce import HypPCELoss


def reference_hyp_pce(mat, labels, similarity, tau):
    """Mean over ordered positive pairs (i, j) of -log(e^z_ij / sum_{k != i} e^z_ik)."""
    z = [[(v if similarity else -v) / tau for v in row] for row in mat]
    n = len(labels)
    terms = []
    for i in range(n):
        log_den = math.log(sum(math.exp(z[i][k]) for k in range(n) if k != i))
        for j in range(n):
            if j != i and labels[j] == labels[i]:
                terms.append(log_den - z[i][j])
    return sum(terms) / len(terms)


def published_contrastive_loss(x0, x1, tau, c):
    """Hyp-ViT's train.py ``contrastive_loss`` (two views, unique classes), in python loops."""
    from trainables.dml.hyperbolic import pairwise_dist  # only as its dist_matrix

    d01 = pairwise_dist(x0, x1, curvature=c).tolist()
    d00 = pairwise_dist(x0, x0, curvature=c).tolist()
    n = len(d01)
    total = 0.0
    for i in range(n):
        logits = [-v / tau for v in d01[i]] + [-v / tau for k, v in enumerate(d00[i]) if k != i]
        total += math.log(sum(math.exp(v) for v in logits)) - logits[i]
    return total / n


@pytest.mark.parametrize("tau", [0.2, 1.0])
def test_matches_loop_reference(ref, distance_name, seed, tau):
    x, labels = ref.batch(seed)
    mat, similarity = ref.matrix(distance_name, x)
    loss = HypPCELoss(distance=ref.distance(distance_name), tau=tau)(x, labels)
    assert loss.item() == pytest.approx(
        reference_hyp_pce(mat, labels.tolist(), similarity, tau), rel=1e-6, abs=1e-6
    )


def test_two_views_is_half_the_published_sum(ref):
    """With two views of unique classes, the code's loss0 + loss1 is 2 L."""
    x, _ = ref.batch(7, size=12)
    x0, x1 = x[:6], x[6:]
    labels = torch.arange(6).repeat(2)
    ours = HypPCELoss(distance=PoincareDistance(curvature=ref.curvature), tau=0.2)(x, labels)
    published = published_contrastive_loss(x0, x1, 0.2, ref.curvature) + (
        published_contrastive_loss(x1, x0, 0.2, ref.curvature)
    )
    assert 2 * ours.item() == pytest.approx(published, rel=1e-9)


def test_defaults_are_hyp_vit():
    loss_fn = HypPCELoss()
    assert loss_fn.tau == 0.2
    assert isinstance(loss_fn.distance, PoincareDistance) and loss_fn.distance.curvature == 0.1


def test_no_positive_pair_gives_zero_with_gradient(ref):
    x, _ = ref.batch(0, size=5)
    x.requires_grad_(True)
    loss = HypPCELoss()(x, torch.arange(5))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(x.grad).all()


def test_learnable_curvature_is_trained_through_the_loss():
    torch.manual_seed(0)
    head = HyperbolicHead(curvature=0.1, learnable=True, clip_radius=2.3)
    loss_fn = HypPCELoss(distance=PoincareDistance(curvature=head))
    feats = torch.randn(12, 8, requires_grad=True)
    loss_fn(head(feats), torch.arange(6).repeat(2)).backward()
    assert head.ball.isp_c.grad is not None and torch.isfinite(head.ball.isp_c.grad)
    assert head.ball.isp_c.grad.abs() > 0
    assert list(loss_fn.parameters()) == []  # the head's curvature stays the head's


def test_float32_gradients_are_finite_at_the_boundary():
    """Embeddings on (and beyond) the boundary: finite loss and gradients in float32."""
    torch.manual_seed(0)
    x = torch.randn(10, 8)
    x = x / x.norm(dim=1, keepdim=True) * torch.tensor([1.0, 1e3, 1e20] * 3 + [1.0])[:, None]
    x = (x / math.sqrt(0.1)).requires_grad_(True)
    loss = HypPCELoss()(x, torch.arange(5).repeat(2))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


def test_rejects_bad_tau():
    with pytest.raises(ValueError, match="tau"):
        HypPCELoss(tau=0.0)
