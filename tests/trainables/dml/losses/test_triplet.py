from __future__ import annotations

import pytest
import torch

from trainables.dml.losses.triplet import BatchHardTripletLoss


def reference_batch_hard(mat, labels, similarity, margin):
    """Mean over anchors having a positive and a negative of [hardest ap - hardest an + m]_+."""
    terms = []
    n = len(labels)
    for a in range(n):
        pos = [mat[a][p] for p in range(n) if p != a and labels[p] == labels[a]]
        neg = [mat[a][k] for k in range(n) if labels[k] != labels[a]]
        if not pos or not neg:
            continue
        if similarity:
            terms.append(max(max(neg) - min(pos) + margin, 0.0))
        else:
            terms.append(max(max(pos) - min(neg) + margin, 0.0))
    return sum(terms) / len(terms), len(terms)


@pytest.mark.parametrize("margin", [0.2, 1.0])
def test_matches_loop_reference(ref, distance_name, seed, margin):
    x, labels = ref.batch(seed)
    mat, similarity = ref.matrix(distance_name, x)
    loss = BatchHardTripletLoss(distance=ref.distance(distance_name), margin=margin)(x, labels)
    expected, n_anchors = reference_batch_hard(mat, labels.tolist(), similarity, margin)
    assert n_anchors > 0 and expected > 0
    assert loss.item() == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_mean_counts_satisfied_anchors(ref):
    """Hermans et al. average over all anchors: a huge margin only adds to each term, so the
    loss grows by exactly the margin difference (with AvgNonZero it would not be linear)."""
    x, labels = ref.batch(5)
    loss_fn_small = BatchHardTripletLoss(margin=0.0)
    loss_fn_big = BatchHardTripletLoss(margin=10.0)
    mat, _ = ref.matrix("euclidean", x)
    expected_small, _ = reference_batch_hard(mat, labels.tolist(), False, 0.0)
    assert loss_fn_small(x, labels).item() == pytest.approx(expected_small, abs=1e-6)
    # with m = 10 every anchor violates: mean(d_ap - d_an) + 10
    n = len(labels)
    lab = labels.tolist()
    diffs = []
    for a in range(n):
        pos = [mat[a][p] for p in range(n) if p != a and lab[p] == lab[a]]
        neg = [mat[a][k] for k in range(n) if lab[k] != lab[a]]
        if pos and neg:
            diffs.append(max(pos) - min(neg))
    assert loss_fn_big(x, labels).item() == pytest.approx(sum(diffs) / len(diffs) + 10.0, abs=1e-6)


def test_no_valid_anchor_gives_zero_with_gradient(ref):
    x, _ = ref.batch(0, size=4)
    x.requires_grad_(True)
    loss = BatchHardTripletLoss()(x, torch.arange(4))  # all labels distinct: no positive
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(x.grad).all()


def test_float32_gradients_are_finite(ref, distance_name):
    x, labels = ref.batch(3, dtype=torch.float32)
    x.requires_grad_(True)
    BatchHardTripletLoss(distance=ref.distance(distance_name))(x, labels).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_rejects_bad_margin():
    with pytest.raises(ValueError, match="margin"):
        BatchHardTripletLoss(margin=float("nan"))
