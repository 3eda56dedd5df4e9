from __future__ import annotations

import math

import pytest
import torch

from trainables.dml.losses.supcon import NTXentLoss, SupConLoss


def logits_of(mat, similarity, tau):
    return [[(v if similarity else -v) / tau for v in row] for row in mat]


def reference_supcon(mat, labels, similarity, tau):
    """Mean over anchors with positives of -(1/|P|) sum_p log softmax_{k != i}(z_i)[p]."""
    z = logits_of(mat, similarity, tau)
    n = len(labels)
    per_anchor = []
    for i in range(n):
        others = [k for k in range(n) if k != i]
        positives = [p for p in others if labels[p] == labels[i]]
        if not positives:
            continue
        log_den = math.log(sum(math.exp(z[i][k]) for k in others))
        per_anchor.append(-sum(z[i][p] - log_den for p in positives) / len(positives))
    return sum(per_anchor) / len(per_anchor)


def reference_ntxent(mat, labels, similarity, tau):
    """Mean over positive pairs of -log(e^z_ap / (e^z_ap + sum_n e^z_an))."""
    z = logits_of(mat, similarity, tau)
    n = len(labels)
    terms = []
    for a in range(n):
        negs = [k for k in range(n) if labels[k] != labels[a]]
        for p in range(n):
            if p != a and labels[p] == labels[a]:
                den = math.exp(z[a][p]) + sum(math.exp(z[a][k]) for k in negs)
                terms.append(-(z[a][p] - math.log(den)))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_supcon_matches_loop_reference(ref, distance_name, seed, tau):
    x, labels = ref.batch(seed)
    mat, similarity = ref.matrix(distance_name, x)
    loss = SupConLoss(distance=ref.distance(distance_name), tau=tau)(x, labels)
    assert loss.item() == pytest.approx(
        reference_supcon(mat, labels.tolist(), similarity, tau), rel=1e-6, abs=1e-6
    )


@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_ntxent_matches_loop_reference(ref, distance_name, seed, tau):
    x, labels = ref.batch(seed)
    mat, similarity = ref.matrix(distance_name, x)
    loss = NTXentLoss(distance=ref.distance(distance_name), tau=tau)(x, labels)
    assert loss.item() == pytest.approx(
        reference_ntxent(mat, labels.tolist(), similarity, tau), rel=1e-6, abs=1e-6
    )


def test_two_views_supcon_equals_ntxent(ref):
    """One positive per anchor (two views of distinct classes): SupCon is NT-Xent."""
    x, _ = ref.batch(2, size=16)
    labels = torch.arange(8).repeat(2)
    assert SupConLoss()(x, labels).item() == pytest.approx(NTXentLoss()(x, labels).item(), 1e-9)


def test_defaults():
    assert SupConLoss().tau == 0.07 and SupConLoss().distance.is_inverted
    assert NTXentLoss().tau == 0.07


@pytest.mark.parametrize("cls", [SupConLoss, NTXentLoss])
def test_float32_gradients_are_finite(ref, distance_name, cls):
    x, labels = ref.batch(3, dtype=torch.float32)
    x.requires_grad_(True)
    cls(distance=ref.distance(distance_name), tau=0.1)(x, labels).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("cls", [SupConLoss, NTXentLoss])
@pytest.mark.parametrize("tau", [0.0, -1.0, float("inf")])
def test_rejects_bad_tau(cls, tau):
    with pytest.raises(ValueError, match="tau"):
        cls(tau=tau)


def test_ntxent_float32_far_points_do_not_saturate():
    """Unclipped features far out on the ball at tau = 0.2: logits near -200, where PML's
    log(num/den + tiny) sticks at 87.34 with a zero gradient in float32."""
    from trainables.dml.distances import make_distance

    gen = torch.Generator().manual_seed(0)
    u = torch.randn(16, generator=gen)
    side = torch.tensor([1.0] * 6 + [-1.0] * 6)[:, None]
    # each class: one point far out along u, its positive far out along -u; the negatives of an
    # anchor are the other classes' points on its own side (near it)
    x = (side * (u + 0.05 * torch.randn(12, 16, generator=gen)) * 10).requires_grad_(True)
    labels = torch.arange(12) % 6
    distance = make_distance("poincare", curvature=0.1)
    loss = NTXentLoss(distance=distance, tau=0.2)(x, labels)
    mat = distance(x.detach()).double().tolist()  # the same float32 distances, float64 math
    expected = reference_ntxent(mat, labels.tolist(), False, 0.2)
    assert expected > 100  # the regime where the saturated form gives 87.34
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.norm() > 1e-3


def test_ntxent_gradient_matches_float64_autograd_of_the_definition(ref, distance_name):
    x, labels = ref.batch(4)
    distance = ref.distance(distance_name)
    x.requires_grad_(True)
    NTXentLoss(distance=distance, tau=0.1)(x, labels).backward()
    assert x.grad is not None
    got = x.grad.clone()
    y = x.detach().clone().requires_grad_(True)
    mat = distance(y)
    z = (mat if distance.is_inverted else -mat) / 0.1
    lab = labels.tolist()
    terms = []
    for a in range(len(lab)):
        negs = [k for k in range(len(lab)) if lab[k] != lab[a]]
        for p in range(len(lab)):
            if p != a and lab[p] == lab[a]:
                den = torch.exp(z[a, p]) + sum(torch.exp(z[a, k]) for k in negs)
                terms.append(torch.log(den) - z[a, p])
    (sum(terms) / len(terms)).backward()
    torch.testing.assert_close(got, y.grad, atol=1e-9, rtol=1e-7)
