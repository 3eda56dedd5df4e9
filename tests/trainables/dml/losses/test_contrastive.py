from __future__ import annotations

import pytest
import torch

from trainables.dml.losses.contrastive import ContrastiveLoss


def reference_contrastive(mat, labels, similarity, pos_margin, neg_margin):
    """Mean of the non-zero positive-pair terms + mean of the non-zero negative-pair terms."""
    pos, neg = [], []
    n = len(labels)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            if labels[i] == labels[j]:
                term = pos_margin - mat[i][j] if similarity else mat[i][j] - pos_margin
                pos.append(max(term, 0.0))
            else:
                term = mat[i][j] - neg_margin if similarity else neg_margin - mat[i][j]
                neg.append(max(term, 0.0))

    def mean_nonzero(values):
        kept = [v for v in values if v > 0]
        return sum(kept) / len(kept) if kept else 0.0

    return mean_nonzero(pos) + mean_nonzero(neg)


@pytest.mark.parametrize("margins", [None, (0.2, 0.8)])
def test_matches_loop_reference(ref, distance_name, seed, margins):
    x, labels = ref.batch(seed)
    mat, similarity = ref.matrix(distance_name, x)
    if margins is None:  # the distance-dependent defaults
        kwargs, (pos_m, neg_m) = {}, ((1.0, 0.0) if similarity else (0.0, 1.0))
    elif distance_name == "poincare":  # ball distances are ~1-5 here: margins on that scale
        pos_m, neg_m = 1.0, 3.0
        kwargs = {"pos_margin": pos_m, "neg_margin": neg_m}
    else:
        pos_m, neg_m = margins if not similarity else (margins[1], margins[0])
        kwargs = {"pos_margin": pos_m, "neg_margin": neg_m}
    loss = ContrastiveLoss(distance=ref.distance(distance_name), **kwargs)(x, labels)
    expected = reference_contrastive(mat, labels.tolist(), similarity, pos_m, neg_m)
    assert expected > 0  # the data exercise the loss
    assert loss.item() == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_default_distance_is_normalised_euclidean(ref):
    x, labels = ref.batch(0)
    mat, _ = ref.matrix("euclidean", x)
    loss = ContrastiveLoss()(x * 5.0, labels)  # scale-invariant: embeddings are normalised
    assert loss.item() == pytest.approx(
        reference_contrastive(mat, labels.tolist(), False, 0.0, 1.0), rel=1e-6, abs=1e-6
    )


def test_float32_gradients_are_finite(ref, distance_name):
    x, labels = ref.batch(3, dtype=torch.float32)
    x.requires_grad_(True)
    ContrastiveLoss(distance=ref.distance(distance_name))(x, labels).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("bad", [{"pos_margin": float("nan")}, {"neg_margin": float("inf")}])
def test_rejects_non_finite_margins(bad):
    with pytest.raises(ValueError, match="margin"):
        ContrastiveLoss(**bad)
