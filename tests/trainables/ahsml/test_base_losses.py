from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning.losses import CircleLoss, MultiSimilarityLoss
from pytorch_metric_learning.reducers import DoNothingReducer

from trainables.ahsml.base_losses import BASE_LOSSES, PairBatch, make_base_loss

OPTIONS = {"alpha": 3.0, "beta": 20.0, "triplet_margin": 0.15, "circle_scale": 16.0}


def _random_batch(seed: int, n: int = 10) -> PairBatch:
    """Random similarities, labels with a singleton (an anchor without positives), and random
    per-pair margins, so every margin entry matters."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    labels[0] = 9
    z = torch.nn.functional.normalize(torch.randn(n, 5, generator=g, dtype=torch.float64))
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(n, dtype=torch.bool)
    return PairBatch(
        sim=(z @ z.T).requires_grad_(),
        pos_mask=same & ~eye,
        neg_mask=~same,
        margin_pos=0.5 + 0.2 * torch.rand(n, n, generator=g, dtype=torch.float64),
        margin_neg=0.3 + 0.2 * torch.rand(n, n, generator=g, dtype=torch.float64),
    )


def _reference_terms(ref, name: str, batch: PairBatch, **options) -> torch.Tensor:
    n = batch.sim.shape[0]
    out = []
    for i in range(n):
        pos = [
            (batch.sim[i, j], float(batch.margin_pos[i, j]))
            for j in range(n)
            if batch.pos_mask[i, j]
        ]
        neg = [
            (batch.sim[i, j], float(batch.margin_neg[i, j]))
            for j in range(n)
            if batch.neg_mask[i, j]
        ]
        out.append(ref.pair_term(name, pos, neg, **options))
    return torch.stack([torch.as_tensor(t, dtype=torch.float64) for t in out])


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", sorted(BASE_LOSSES))
def test_base_loss_matches_loop_reference_with_margins_per_pair(ref, name, seed):
    batch = _random_batch(seed)
    weights = {"w_pos": 0.7, "w_neg": 1.3}
    got = make_base_loss(name, **weights, **OPTIONS)(batch)
    want = _reference_terms(ref, name, batch, **weights, **OPTIONS)
    assert got.shape == (10,)
    torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-7)
    assert got[0] == 0 or name in ("ms", "contrastive")  # anchor 0 has no positives
    # Gradients agree too (circle's weights a_p, a_n are constants in both).
    (g_got,) = torch.autograd.grad(got.sum(), batch.sim)
    (g_want,) = torch.autograd.grad(want.sum(), batch.sim)
    assert torch.isfinite(g_got).all()
    torch.testing.assert_close(g_got, g_want, atol=1e-9, rtol=1e-7)


def _pml_inputs(seed: int):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(12, 6, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (12,), generator=g)
    u = torch.nn.functional.normalize(emb)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(12, dtype=torch.bool)
    batch = PairBatch(
        sim=u @ u.T,
        pos_mask=same & ~eye,
        neg_mask=~same,
        margin_pos=torch.full((12, 12), 0.5, dtype=torch.float64),
        margin_neg=torch.full((12, 12), 0.5, dtype=torch.float64),
    )
    return emb, labels, batch


@pytest.mark.parametrize("seed", range(2))
def test_ms_with_constant_margins_equals_pml_multi_similarity(seed):
    emb, labels, batch = _pml_inputs(seed)
    pml = MultiSimilarityLoss(alpha=2.0, beta=40.0, base=0.5, reducer=DoNothingReducer())
    want = pml(emb, labels)["loss"]["losses"].reshape(-1)
    got = make_base_loss("ms", alpha=2.0, beta=40.0)(batch)
    torch.testing.assert_close(got, want, atol=1e-9, rtol=0)


@pytest.mark.parametrize("seed", range(2))
def test_circle_with_margins_one_half_equals_pml_circle(seed):
    emb, labels, batch = _pml_inputs(seed)
    pml = CircleLoss(m=0.5, gamma=32.0, reducer=DoNothingReducer())
    want = pml(emb, labels)["loss"]["losses"].reshape(-1)
    got = make_base_loss("circle", circle_scale=32.0)(batch)
    torch.testing.assert_close(got, want, atol=1e-9, rtol=0)


def test_options_reach_only_their_loss(ref):
    batch = _random_batch(4)
    base = make_base_loss("contrastive")(batch)
    torch.testing.assert_close(make_base_loss("contrastive", **OPTIONS)(batch), base)
    loose = make_base_loss("triplet", triplet_margin=0.0)(batch)
    tight = make_base_loss("triplet", triplet_margin=0.5)(batch)
    has_both = batch.pos_mask.any(1) & batch.neg_mask.any(1)
    assert (tight[has_both] >= loose[has_both]).all() and (tight > loose).any()


def test_anchor_without_pairs_gives_zero_and_no_nan():
    sim = torch.tensor([[1.0, 0.2], [0.2, 1.0]], requires_grad=True)
    lone = torch.zeros(2, 2, dtype=torch.bool)
    batch = PairBatch(
        sim, lone, ~torch.eye(2, dtype=torch.bool), torch.full((2, 2), 0.5), torch.full((2, 2), 0.5)
    )
    for name in BASE_LOSSES:
        out = make_base_loss(name, w_pos=0.0)(batch)
        out.sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(sim.grad).all()
        if name in ("triplet", "circle"):
            assert (out == 0).all()
        sim.grad = None


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(
        ValueError, match="known base losses: \\['circle', 'contrastive', 'ms', 'triplet'\\]"
    ):
        make_base_loss("npair")


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("ms", {"alpha": 0.0}, "alpha"),
        ("circle", {"circle_scale": -1.0}, "scale"),
        ("ms", {"w_pos": -1.0}, "w_pos"),
    ],
)
def test_bad_options_are_named(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_base_loss(name, **kwargs)
