from __future__ import annotations

import math

import pytest
import torch

from trainables.dml.losses.ms import MultiSimilarityLoss


def reference_ms(mat, labels, similarity, *, alpha, beta, base, epsilon):
    """Multi-Similarity with its mining, per anchor, as in the MalongTech code (B-averaged)."""
    n = len(labels)
    sign = 1.0 if similarity else -1.0  # a distance is a similarity with the sign flipped
    total = 0.0
    for i in range(n):
        pos = [sign * mat[i][j] for j in range(n) if j != i and labels[j] == labels[i]]
        neg = [sign * mat[i][j] for j in range(n) if labels[j] != labels[i]]
        if not pos or not neg:
            continue
        hard_pos = [s for s in pos if s - epsilon < max(neg)]
        hard_neg = [s for s in neg if s + epsilon > min(pos)]
        b = sign * base
        if hard_pos:
            total += math.log(1 + sum(math.exp(-alpha * (s - b)) for s in hard_pos)) / alpha
        if hard_neg:
            total += math.log(1 + sum(math.exp(beta * (s - b)) for s in hard_neg)) / beta
    return total / n


@pytest.mark.parametrize(
    "hyper",
    [
        {"alpha": 2.0, "beta": 50.0, "base": 0.5, "epsilon": 0.1},
        {"alpha": 5.0, "beta": 20.0, "base": 0.3, "epsilon": 0.3},
    ],
)
def test_matches_loop_reference(ref, distance_name, seed, hyper):
    x, labels = ref.batch(seed)
    mat, similarity = ref.matrix(distance_name, x)
    if not similarity:  # a threshold on the scale of the distance
        hyper = {**hyper, "base": 1.0 if distance_name == "euclidean" else 2.0}
    loss = MultiSimilarityLoss(distance=ref.distance(distance_name), **hyper)(x, labels)
    expected = reference_ms(mat, labels.tolist(), similarity, **hyper)
    assert expected > 0
    assert loss.item() == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_defaults_are_the_papers(ref):
    loss_fn = MultiSimilarityLoss()
    assert (loss_fn.alpha, loss_fn.beta, loss_fn.base, loss_fn.epsilon) == (2.0, 50.0, 0.5, 0.1)
    assert loss_fn.distance.is_inverted  # cosine similarity by default
    x, labels = ref.batch(4)
    mat, _ = ref.matrix("cosine", x)
    expected = reference_ms(mat, labels.tolist(), True, alpha=2.0, beta=50.0, base=0.5, epsilon=0.1)
    assert loss_fn(x, labels).item() == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_mining_matters(ref):
    """epsilon = 0 mines fewer pairs than a huge epsilon (which keeps all): the values differ."""
    x, labels = ref.batch(1)
    dist = ref.distance("cosine")
    tight = MultiSimilarityLoss(distance=dist, epsilon=0.0)(x, labels).item()
    loose = MultiSimilarityLoss(distance=dist, epsilon=10.0)(x, labels).item()
    assert loose > tight


def test_float32_gradients_are_finite(ref, distance_name):
    x, labels = ref.batch(3, dtype=torch.float32)
    x.requires_grad_(True)
    MultiSimilarityLoss(distance=ref.distance(distance_name))(x, labels).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "bad", [{"alpha": 0.0}, {"beta": -1.0}, {"epsilon": -0.1}, {"base": float("nan")}]
)
def test_rejects_bad_hyperparameters(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        MultiSimilarityLoss(**bad)
