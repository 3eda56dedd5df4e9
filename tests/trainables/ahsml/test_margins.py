from __future__ import annotations

import math

import pytest
import torch

from trainables.ahsml.margins import adaptive_margins

GAMMA, MU = 0.5, 0.2


def _batch(seed: int, *, b: int = 12, n_classes: int = 3):
    """2b views (two per image) with a cosine similarity matrix, labels with a singleton class."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, n_classes, (b,), generator=g)
    labels[-1] = n_classes  # one image alone in its class
    view_labels = labels.repeat(2)
    instance = torch.arange(b).repeat(2)
    z = torch.nn.functional.normalize(torch.randn(2 * b, 4, generator=g, dtype=torch.float64))
    return z @ z.T, view_labels, instance


def _check_against_reference(ref, sim, labels, instance, *, adaptive=True):
    got = adaptive_margins(sim, labels, gamma=GAMMA, mu=MU, instance=instance, adaptive=adaptive)
    want = ref.margins(
        sim.tolist(), labels.tolist(), instance.tolist(), gamma=GAMMA, mu=MU, adaptive=adaptive
    )
    assert got.classes.tolist() == want.classes
    for k, a in enumerate(want.classes):
        if a in want.intra:
            assert got.intra[k].item() == pytest.approx(want.intra[a], abs=1e-12)
        else:
            assert math.isnan(got.intra[k].item())
        assert got.class_margin_pos[k].item() == pytest.approx(want.m_p[a], abs=1e-12)
        for m, b in enumerate(want.classes):
            if (a, b) in want.inter:
                assert got.inter[k, m].item() == pytest.approx(want.inter[(a, b)], abs=1e-12)
            else:
                assert math.isnan(got.inter[k, m].item())
            assert got.class_margin_neg[k, m].item() == pytest.approx(want.m_n[(a, b)], abs=1e-12)
    y = labels.tolist()
    n = len(y)
    want_pos = torch.tensor([[want.m_p[y[u]]] * n for u in range(n)], dtype=torch.float64)
    want_neg = torch.tensor(
        [[want.m_n[(y[u], y[v])] for v in range(n)] for u in range(n)], dtype=torch.float64
    )
    torch.testing.assert_close(got.margin_pos, want_pos, atol=1e-12, rtol=0)
    torch.testing.assert_close(got.margin_neg, want_neg, atol=1e-12, rtol=0)
    assert got.margin_aug.item() == pytest.approx(want.m_a, abs=1e-12)
    return got, want


@pytest.mark.parametrize("seed", range(5))
def test_statistics_and_margins_match_loop_reference(ref, seed):
    sim, labels, instance = _batch(seed)
    got, want = _check_against_reference(ref, sim, labels, instance)
    # Not a trivially constant case: the margins really span their range across classes.
    assert max(want.m_p.values()) - min(want.m_p.values()) == pytest.approx(MU)
    assert len(want.intra) < len(want.classes)  # and the singleton class is there


@pytest.mark.parametrize("seed", range(3))
def test_views_of_one_image_with_different_labels_match_reference(ref, seed):
    sim, labels, instance = _batch(seed, b=8)
    labels[8:] = torch.randint(0, 4, (8,), generator=torch.Generator().manual_seed(seed + 10))
    _check_against_reference(ref, sim, labels, instance)


def test_default_instance_treats_every_row_as_its_own_image(ref):
    sim, labels, _ = _batch(3)
    got, _ = _check_against_reference(ref, sim, labels, torch.arange(labels.numel()))
    default = adaptive_margins(sim, labels, gamma=GAMMA, mu=MU)
    torch.testing.assert_close(default.margin_neg, got.margin_neg)
    torch.testing.assert_close(default.intra, got.intra, equal_nan=True)


def test_rescaled_margins_span_exactly_gamma_to_gamma_plus_mu():
    sim, labels, instance = _batch(4, b=12, n_classes=4)
    st = adaptive_margins(sim, labels, gamma=GAMMA, mu=MU, instance=instance)
    defined = ~st.intra.isnan()
    assert st.class_margin_pos[defined].min().item() == pytest.approx(GAMMA)
    assert st.class_margin_pos[defined].max().item() == pytest.approx(GAMMA + MU)
    off = ~st.inter.isnan()
    assert st.class_margin_neg[off].max().item() == pytest.approx(GAMMA)
    assert st.class_margin_neg[off].min().item() == pytest.approx(GAMMA - MU)
    # The most compact class gets the highest positive margin.
    assert st.class_margin_pos[defined].argmax() == st.intra[defined].argmax()


def test_single_sample_class_has_no_intra_statistic_and_base_margin():
    sim, labels, instance = _batch(0)
    st = adaptive_margins(sim, labels, gamma=GAMMA, mu=MU, instance=instance)
    singleton = st.classes.tolist().index(labels.max().item())
    assert math.isnan(st.intra[singleton].item())
    assert st.class_margin_pos[singleton].item() == GAMMA
    # M_a is the least class-mean intra similarity of the other classes.
    assert st.margin_aug.item() == pytest.approx(st.intra[~st.intra.isnan()].min().item())


def test_all_singleton_classes_fall_back_to_gamma():
    sim, _, instance = _batch(1, b=5)
    labels = torch.arange(5).repeat(2)
    st = adaptive_margins(sim, labels, gamma=GAMMA, mu=MU, instance=instance)
    assert st.intra.isnan().all()
    assert st.margin_aug.item() == GAMMA
    assert (st.margin_pos == GAMMA).all()
    metrics = st.as_metrics()
    assert math.isnan(metrics["intra_sim"]) and math.isnan(metrics["margin_pos"])
    assert math.isfinite(metrics["inter_sim"]) and metrics["margin_aug"] == GAMMA


def test_two_classes_give_a_degenerate_inter_range_and_constant_negative_margin():
    sim, _, instance = _batch(2, b=6)
    labels = torch.tensor([0, 0, 0, 1, 1, 1]).repeat(2)
    st = adaptive_margins(sim, labels, gamma=GAMMA, mu=MU, instance=instance)
    assert not st.inter.isnan().all()  # S_ab is defined, but a single value cannot be rescaled
    assert (st.margin_neg == GAMMA).all()


def test_equal_class_statistics_are_degenerate():
    # Three classes of two single-view images each, every intra pair at 0.8, inter at 0.1.
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    same = labels[:, None] == labels[None, :]
    sim = torch.where(same, 0.8, 0.1).double().fill_diagonal_(1.0)
    st = adaptive_margins(sim, labels, gamma=GAMMA, mu=MU)
    assert (st.class_margin_pos == GAMMA).all() and (st.margin_neg == GAMMA).all()
    assert st.margin_aug.item() == pytest.approx(0.8)


def test_non_adaptive_margins_are_gamma_but_statistics_are_kept(ref):
    sim, labels, instance = _batch(5)
    _check_against_reference(ref, sim, labels, instance, adaptive=False)
    on = adaptive_margins(sim, labels, gamma=GAMMA, mu=MU, instance=instance)
    off = adaptive_margins(sim, labels, gamma=GAMMA, mu=MU, instance=instance, adaptive=False)
    assert (off.margin_pos == GAMMA).all() and (off.margin_neg == GAMMA).all()
    assert off.margin_aug.item() == GAMMA
    torch.testing.assert_close(off.intra, on.intra, equal_nan=True)
    assert off.as_metrics()["intra_sim"] == on.as_metrics()["intra_sim"]


def test_statistics_are_detached():
    sim, labels, instance = _batch(6)
    sim = sim.clone().requires_grad_()
    st = adaptive_margins(sim, labels, gamma=GAMMA, mu=MU, instance=instance)
    for t in (st.intra, st.inter, st.margin_pos, st.margin_neg, st.margin_aug):
        assert not t.requires_grad and t.grad_fn is None


def test_metrics_are_means_over_defined_classes():
    sim, labels, instance = _batch(7)
    st = adaptive_margins(sim, labels, gamma=GAMMA, mu=MU, instance=instance)
    m = st.as_metrics()
    defined = ~st.intra.isnan()
    assert m["intra_sim"] == pytest.approx(st.intra[defined].mean().item())
    assert m["margin_pos"] == pytest.approx(st.class_margin_pos[defined].mean().item())
    assert m["inter_sim"] == pytest.approx(st.inter[~st.inter.isnan()].mean().item())
    assert GAMMA - MU <= m["margin_neg"] <= GAMMA
    assert m["margin_aug"] == st.margin_aug.item()


@pytest.mark.parametrize(
    ("sim", "labels", "kwargs", "match"),
    [
        (torch.eye(3, 2), torch.arange(3), {}, "square"),
        (torch.eye(3), torch.arange(4), {}, "labels"),
        (torch.eye(3), torch.zeros(3), {}, "labels"),
        (torch.eye(3), torch.arange(3), {"instance": torch.arange(2)}, "instance"),
        (torch.eye(3), torch.arange(3), {"mu": -0.1}, "mu"),
    ],
)
def test_bad_input_is_named(sim, labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        adaptive_margins(sim, labels, **kwargs)
