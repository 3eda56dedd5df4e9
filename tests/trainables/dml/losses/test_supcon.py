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
