from __future__ import annotations

import math

import pytest
import torch

from trainables.ahsml.base_losses import BASE_LOSSES
from trainables.ahsml.loss import AHSMLLoss, view_pair_masks
from trainables.dml.hyperbolic import HyperbolicHead

C = 0.5
# Non-default values everywhere, so a parameter that is dropped or swapped shows.
CONFIG = {
    "tau": 0.7, "gamma": 0.45, "mu": 0.25, "alpha": 2.5, "beta": 20.0, "rho": 3.0,
    "w_aug": 0.8, "w_pos": 1.2, "w_neg": 0.9, "triplet_margin": 0.15, "circle_scale": 16.0,
}  # fmt: skip
LABELS = torch.tensor([0, 0, 1, 1, 1, 2])  # class 2 is a single image


def _views(ref, seed: int, b: int = 6, d: int = 3):
    """Weak and strong views inside the ball of curvature C (a convex mix stays inside)."""
    weak = ref.ball_points(b, d, c=C, seed=seed)
    strong = 0.7 * weak + 0.3 * ref.ball_points(b, d, c=C, seed=seed + 100)
    return weak, strong


def _module(**switches) -> AHSMLLoss:
    return AHSMLLoss(curvature=C, **CONFIG, **switches)


def _reference(
    ref,
    weak,
    strong,
    view_labels,
    *,
    base="ms",
    hyperbolic=True,
    adaptive=True,
    consistency=True,
    c=C,
):
    cfg = dict(CONFIG)
    return ref.ahsml(
        weak, strong, view_labels.tolist(), c=c, tau=cfg.pop("tau"), gamma=cfg.pop("gamma"),
        mu=cfg.pop("mu"), rho=cfg.pop("rho"), w_aug=cfg.pop("w_aug"), base=base,
        hyperbolic=hyperbolic, adaptive=adaptive, consistency=consistency, **cfg,
    )  # fmt: skip


def _close(got, want):
    torch.testing.assert_close(got.double(), torch.as_tensor(want, dtype=torch.float64),
                               atol=1e-9, rtol=1e-9)  # fmt: skip


@pytest.mark.parametrize("seed", range(3))
def test_integrated_loss_matches_loop_reference(ref, seed):
    weak, strong = _views(ref, seed)
    out = _module()(weak, strong, LABELS)
    want = _reference(ref, weak, strong, LABELS.repeat(2))
    _close(out.loss, want.loss)
    _close(out.aug_term, want.aug)
    _close(out.class_term, want.cls)
    assert out.aug_term > 0 and out.class_term > 0
    assert out.stats.margin_aug.item() == pytest.approx(want.stats.m_a, abs=1e-12)


@pytest.mark.parametrize("name", sorted(set(BASE_LOSSES) - {"ms"}))
def test_swapping_the_base_loss_changes_the_class_term_as_the_reference_says(ref, name):
    weak, strong = _views(ref, 3)
    ms = _module()(weak, strong, LABELS)
    out = _module(base_loss=name)(weak, strong, LABELS)
    want = _reference(ref, weak, strong, LABELS.repeat(2), base=name)
    _close(out.loss, want.loss)
    _close(out.class_term, want.cls)
    _close(out.aug_term, ms.aug_term)  # the hierarchical-similarity part is unchanged
    assert not torch.isclose(out.class_term, ms.class_term)


def test_consistency_off_removes_exactly_the_augmentation_term(ref):
    weak, strong = _views(ref, 4)
    out = _module(consistency=False)(weak, strong, LABELS)
    full = _reference(ref, weak, strong, LABELS.repeat(2))
    _close(out.loss, full.loss - CONFIG["w_aug"] * full.aug)
    assert out.aug_term == 0
    assert full.aug > 0.01  # the removed term was not negligible


def test_constant_margins_ablation_matches_reference_with_gamma_margins(ref):
    weak, strong = _views(ref, 5)
    out = _module(adaptive_margins=False)(weak, strong, LABELS)
    want = _reference(ref, weak, strong, LABELS.repeat(2), adaptive=False)
    _close(out.loss, want.loss)
    assert (out.stats.margin_pos == CONFIG["gamma"]).all()
    assert out.stats.margin_aug == CONFIG["gamma"]
    adaptive = _reference(ref, weak, strong, LABELS.repeat(2))
    assert abs(float(adaptive.loss) - float(want.loss)) > 1e-3


def test_euclidean_ablation_matches_reference_with_cosine_similarity(ref):
    g = torch.Generator().manual_seed(6)
    weak = 3 * torch.randn(6, 3, generator=g, dtype=torch.float64)  # off the ball: allowed here
    strong = weak + torch.randn(6, 3, generator=g, dtype=torch.float64)
    out = _module(hyperbolic=False)(weak, strong, LABELS)
    want = _reference(ref, weak, strong, LABELS.repeat(2), hyperbolic=False)
    _close(out.loss, want.loss)
    with pytest.raises(ValueError, match="Poincaré ball"):
        _module()(weak, strong, LABELS)


def test_view_pair_masks_keep_the_two_views_positive_whatever_their_labels():
    b = 4
    labels = torch.tensor([0, 1, 2, 3, 5, 6, 7, 8])  # every image's two views disagree
    masks = view_pair_masks(labels, torch.arange(b).repeat(2))
    for i in range(b):
        for u, v in ((i, i + b), (i + b, i)):
            assert masks.aug[u, v] and not masks.neg[u, v] and not masks.pos[u, v]
    assert masks.aug.sum() == 2 * b  # exactly one augmentation partner per view
    assert not (masks.aug & masks.pos).any() and not (masks.pos & masks.neg).any()
    assert not (masks.aug | masks.pos | masks.neg).diagonal().any()


def test_augmentation_pair_is_positive_under_conflicting_view_labels(ref):
    weak, strong = _views(ref, 7)
    view_labels = torch.tensor([0, 0, 1, 1, 1, 2, 1, 0, 1, 2, 0, 2])  # views disagree for 4 images
    out = _module()(weak, strong, view_labels)
    _close(out.loss, _reference(ref, weak, strong, view_labels).loss)
    # With constant margins M_a = gamma, the augmentation term does not see the labels at all.
    loss_fn = _module(adaptive_margins=False)
    terms = [
        loss_fn(weak, strong, labels).aug_term
        for labels in (view_labels, LABELS, torch.zeros(6, dtype=torch.long), torch.arange(12))
    ]
    for t in terms[1:]:
        _close(t, terms[0])


def test_gradient_reaches_embeddings_but_not_through_the_statistics(ref):
    weak, strong = _views(ref, 8)
    weak.requires_grad_()
    strong.requires_grad_()
    out = _module()(weak, strong, LABELS)
    out.loss.backward()
    for t in (out.stats.margin_pos, out.stats.margin_neg, out.stats.margin_aug, out.stats.intra):
        assert not t.requires_grad
    # The reference treats the statistics as constants: the gradients agree only if the module
    # does not differentiate through them either.
    w2, s2 = weak.detach().clone().requires_grad_(), strong.detach().clone().requires_grad_()
    _reference(ref, w2, s2, LABELS.repeat(2)).loss.backward()
    assert weak.grad.abs().sum() > 0 and strong.grad.abs().sum() > 0
    torch.testing.assert_close(weak.grad, w2.grad, atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(strong.grad, s2.grad, atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("as_callable", [False, True])
def test_learnable_curvature_is_read_each_call_and_gets_its_gradient(ref, as_callable):
    weak, strong = _views(ref, 9)
    c = torch.nn.Parameter(torch.tensor(C, dtype=torch.float64))
    loss_fn = AHSMLLoss(curvature=(lambda: c) if as_callable else c, **CONFIG)
    assert list(loss_fn.parameters()) == []  # the head owns it, not the loss
    loss_fn(weak, strong, LABELS).loss.backward()
    c_ref = torch.tensor(C, dtype=torch.float64, requires_grad=True)
    _reference(ref, weak, strong, LABELS.repeat(2), c=c_ref).loss.backward()
    assert c.grad != 0
    torch.testing.assert_close(c.grad, c_ref.grad, atol=1e-9, rtol=1e-7)
    with torch.no_grad():
        c.fill_(0.3)
    want = _reference(ref, weak, strong, LABELS.repeat(2), c=0.3)
    _close(loss_fn(weak, strong, LABELS).loss, want.loss)


def test_a_hyperbolic_head_is_a_curvature_source(ref):
    head = HyperbolicHead(curvature=C, learnable=True)
    loss_fn = AHSMLLoss(curvature=head, **CONFIG)
    assert list(loss_fn.parameters()) == []
    weak, strong = _views(ref, 10)
    out = loss_fn(head(weak), head(strong), LABELS)
    out.loss.backward()
    (isp_c,) = head.parameters()
    assert isp_c.grad is not None and isp_c.grad != 0
    c_now = float(head.curvature.detach())
    want = _reference(ref, head(weak).detach(), head(strong).detach(), LABELS.repeat(2), c=c_now)
    assert out.loss.item() == pytest.approx(float(want.loss), rel=1e-5)


def test_float32_near_the_boundary_is_finite_and_close_to_float64(ref):
    weak = ref.ball_points(16, 8, c=C, seed=10, max_frac=0.999)
    strong = 0.5 * weak + 0.5 * ref.ball_points(16, 8, c=C, seed=11, max_frac=0.999)
    labels = torch.arange(16) % 4
    out64 = _module()(weak, strong, labels)
    out32 = _module()(weak.float().requires_grad_(), strong.float(), labels)
    out32.loss.backward()
    assert out32.loss.dtype == torch.float32
    assert math.isclose(out32.loss.item(), out64.loss.item(), rel_tol=1e-4)


def test_metrics_are_finite_and_named(ref):
    weak, strong = _views(ref, 12)
    metrics = _module()(weak, strong, LABELS).as_metrics()
    assert set(metrics) == {"loss", "loss_aug", "loss_class", "intra_sim", "inter_sim",
                            "margin_pos", "margin_neg", "margin_aug"}  # fmt: skip
    assert all(math.isfinite(v) for v in metrics.values())


@pytest.mark.parametrize("hyperbolic", [True, False])
def test_non_finite_loss_raises(ref, hyperbolic):
    weak, strong = _views(ref, 13)
    weak[2, 0] = math.nan
    with pytest.raises(FloatingPointError, match="not finite"):
        _module(hyperbolic=hyperbolic)(weak, strong, LABELS)


@pytest.mark.parametrize(
    ("weak", "strong", "labels", "match"),
    [
        (torch.zeros(6), torch.zeros(6), LABELS, "z_weak"),
        (torch.zeros(6, 3), torch.zeros(5, 3), LABELS, "z_strong"),
        (torch.zeros(6, 3), torch.zeros(6, 3), LABELS[:5], "labels"),
        (torch.zeros(6, 3), torch.zeros(6, 3), LABELS.float(), "labels"),
    ],
)
def test_bad_input_is_named(weak, strong, labels, match):
    with pytest.raises(ValueError, match=match):
        _module()(weak, strong, labels)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"tau": 0.0}, "tau"), ({"rho": -1.0}, "rho"), ({"mu": -0.1}, "mu"),
     ({"w_aug": -1.0}, "w_aug"), ({"curvature": 0.0}, "curvature"),
     ({"base_loss": "npair"}, "known base losses")],
)  # fmt: skip
def test_bad_hyperparameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AHSMLLoss(**{"curvature": C, **kwargs})
