"""MATHM's adaptive weighting and loss modes, against naive float64 loops (ours and released)."""

from __future__ import annotations

import math

import pytest
import torch

from trainables.mathm.triplets import TRIPLET_TYPES
from trainables.mathm.weighting import MODES, RELEASED_LOSS_FLAGS, MATHMTripletLoss

SKETCH, PHOTO = 0, 1
RULES = {"within": (True, True), "cross": (False, False), "hybrid": (False, True)}


def _batch(seed: int, *, lonely: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """3 classes x (2 sketches + 2 photos), 6-d float64; ``lonely`` adds a class-3 photo alone."""
    labels = [c for c in range(3) for _ in range(4)]
    mods = [SKETCH, SKETCH, PHOTO, PHOTO] * 3
    if lonely:
        labels.append(3)
        mods.append(PHOTO)
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(len(labels), 6, dtype=torch.float64, generator=g)
    return emb, torch.tensor(labels), torch.tensor(mods)


def _value(t: torch.Tensor) -> float:
    return float(t.detach())


def _naive_margins(
    emb: torch.Tensor, labels: list[int], mods: list[int], *, margin: float, published: bool
) -> dict[str, list[torch.Tensor]]:
    """Per type, the list of x_k,i, built entry by entry (differentiable in ``emb``)."""
    b = len(labels)
    e = [emb[i] / torch.sqrt((emb[i] ** 2).sum()) for i in range(b)]

    def d(i: int, j: int) -> torch.Tensor:
        if i == j:  # the released clamp: sqrt(1e-12), no gradient
            return torch.tensor(1e-6, dtype=torch.float64)
        return torch.sqrt(((e[i] - e[j]) ** 2).sum())

    def is_pos(name: str, i: int, j: int) -> bool:
        if published and name == "within" and j == i:  # released: the anchor is a positive
            return True
        same_mod = mods[j] == mods[i]
        return j != i and labels[j] == labels[i] and same_mod == RULES[name][0]

    def is_neg(name: str, i: int, j: int) -> bool:
        return labels[j] != labels[i] and (mods[j] == mods[i]) == RULES[name][1]

    out: dict[str, list[torch.Tensor]] = {}
    for name in RULES:
        out[name] = []
        for i in range(b):
            if published:
                d_ap = max(
                    (d(i, j) - (0.0 if is_pos(name, i, j) else 1000.0) for j in range(b)),
                    key=_value,
                )
                d_an = min(
                    (d(i, j) + (0.0 if is_neg(name, i, j) else 1000.0) for j in range(b)),
                    key=_value,
                )
            else:
                pos = [d(i, j) for j in range(b) if is_pos(name, i, j)]
                neg = [d(i, j) for j in range(b) if is_neg(name, i, j)]
                if not (pos and neg):
                    continue
                d_ap, d_an = max(pos, key=_value), min(neg, key=_value)
            out[name].append(d_ap - d_an + margin)
    return out


def _naive_stats(xs: list[torch.Tensor], beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    loss = sum(torch.log1p(torch.exp(beta * x)) / beta for x in xs) / len(xs)
    # exp(beta x) / (1 + exp(beta x)): finite value and gradient at x ~ -1000 (released penalty)
    gate = sum(torch.exp(beta * x) / (1.0 + torch.exp(beta * x)) for x in xs) / len(xs)
    return loss, gate


def _naive_weights(gates: list[torch.Tensor], floor: float) -> list[torch.Tensor]:
    mean = sum(gates) / len(gates)
    return [mean / torch.clamp(g, min=floor) for g in gates]


PARAMS = [(0, 0.2, 20.0, 0.1), (1, 0.5, 5.0, 0.5), (2, 0.05, 20.0, 0.3)]


@pytest.mark.parametrize(("seed", "margin", "beta", "floor"), PARAMS)
def test_adaptive_weights_and_loss_match_naive(
    seed: int, margin: float, beta: float, floor: float
) -> None:
    emb, labels, mods = _batch(seed, lonely=True)
    out = MATHMTripletLoss(margin=margin, beta=beta, floor=floor, mode="mathm")(emb, labels, mods)
    xs = _naive_margins(emb, labels.tolist(), mods.tolist(), margin=margin, published=False)
    stats = [_naive_stats(xs[t], beta) for t in TRIPLET_TYPES]
    losses = [s[0] for s in stats]
    gates = [s[1] for s in stats]
    weights = _naive_weights(gates, floor)
    ref = sum(float(w) * lk for w, lk in zip(weights, losses, strict=True))
    torch.testing.assert_close(out.type_losses, torch.stack(losses), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.gates, torch.stack(gates), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.weights, torch.stack(weights), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.loss, ref, atol=1e-6, rtol=0)
    assert out.counts.tolist() == [len(xs[t]) for t in TRIPLET_TYPES]
    metrics = out.metrics()
    assert metrics["train/triplet_weight_cross"] == pytest.approx(float(weights[1]), abs=1e-6)


def _grad(fn: object, emb: torch.Tensor) -> torch.Tensor:
    e = emb.clone().requires_grad_(True)
    fn(e).backward()  # type: ignore[operator]
    assert e.grad is not None
    return e.grad


def test_ours_has_no_gradient_through_the_weights() -> None:
    emb, labels, mods = _batch(4)
    loss_fn = MATHMTripletLoss(margin=0.5, beta=5.0, floor=0.1, mode="mathm")
    out = loss_fn(emb.clone().requires_grad_(True), labels, mods)
    assert not out.weights.requires_grad and not out.gates.requires_grad

    def naive(e: torch.Tensor, *, detach: bool) -> torch.Tensor:
        xs = _naive_margins(e, labels.tolist(), mods.tolist(), margin=0.5, published=False)
        stats = [_naive_stats(xs[t], 5.0) for t in TRIPLET_TYPES]
        w = _naive_weights([s[1] for s in stats], 0.1)
        return sum((wk.detach() if detach else wk) * s[0] for wk, s in zip(w, stats, strict=True))

    got = _grad(lambda e: loss_fn(e, labels, mods).loss, emb)
    detached = _grad(lambda e: naive(e, detach=True), emb)
    undetached = _grad(lambda e: naive(e, detach=False), emb)
    torch.testing.assert_close(got, detached, atol=1e-6, rtol=0)
    assert (got - undetached).abs().max() > 1e-4  # the weights' own gradient is not negligible


@pytest.mark.parametrize("seed", [5, 6])
def test_published_reproduces_the_released_formula(seed: int) -> None:
    emb, labels, mods = _batch(seed, lonely=True)  # the lonely photo exercises the 1000 penalty
    published = MATHMTripletLoss(margin=0.5, beta=20.0, floor=0.1, mode="mathm", published=True)

    def naive(e: torch.Tensor) -> torch.Tensor:
        # released head: (sum_k w_k) (1/3) sum_j L_j, the weights carrying gradient
        xs = _naive_margins(e, labels.tolist(), mods.tolist(), margin=0.5, published=True)
        stats = [_naive_stats(xs[t], 20.0) for t in TRIPLET_TYPES]
        w = _naive_weights([s[1] for s in stats], 0.1)
        return sum(w) * (sum(s[0] for s in stats) / 3)

    out = published(emb, labels, mods)
    torch.testing.assert_close(out.loss, naive(emb), atol=1e-6, rtol=0)
    assert out.counts.tolist() == [13, 13, 13]  # every anchor kept
    torch.testing.assert_close(
        _grad(lambda e: published(e, labels, mods).loss, emb),
        _grad(naive, emb),
        atol=1e-6,
        rtol=0,
    )
    ours = MATHMTripletLoss(margin=0.5, beta=20.0, floor=0.1, mode="mathm")(emb, labels, mods)
    assert abs(float(out.loss) - float(ours.loss)) > 1e-3


@pytest.mark.parametrize("mode", ["within", "cross", "hybrid", "all"])
def test_published_plain_modes_are_the_released_hard_hinge(mode: str) -> None:
    emb, labels, mods = _batch(7)
    loss_fn = MATHMTripletLoss(margin=0.5, mode=mode, published=True)  # type: ignore[arg-type]

    def hinge_mean(e: torch.Tensor, name: str) -> torch.Tensor:
        xs = _naive_margins(e, labels.tolist(), mods.tolist(), margin=0.5, published=True)[name]
        return sum(torch.clamp(x, min=0.0) for x in xs) / len(xs)

    if mode == "all":
        # mean over the 3B concatenated entries = (1/3) sum_k mean_i relu(x_k,i)
        def ref_value(e: torch.Tensor) -> torch.Tensor:
            return sum(hinge_mean(e, t) for t in TRIPLET_TYPES) / 3

        def ref_grad_fn(e: torch.Tensor) -> torch.Tensor:
            return ref_value(e)
    else:

        def ref_value(e: torch.Tensor) -> torch.Tensor:
            return hinge_mean(e, mode)

        def ref_grad_fn(e: torch.Tensor) -> torch.Tensor:  # two of the three copies detached
            return hinge_mean(e, mode) / 3

    torch.testing.assert_close(loss_fn(emb, labels, mods).loss, ref_value(emb), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        _grad(lambda e: loss_fn(e, labels, mods).loss, emb),
        _grad(ref_grad_fn, emb),
        atol=1e-6,
        rtol=0,
    )


def test_plain_modes_select_their_type() -> None:
    emb, labels, mods = _batch(8)
    xs = _naive_margins(emb, labels.tolist(), mods.tolist(), margin=0.2, published=False)
    per_type = {t: _naive_stats(xs[t], 20.0)[0] for t in TRIPLET_TYPES}
    for name in TRIPLET_TYPES:
        got = MATHMTripletLoss(mode=name)(emb, labels, mods).loss  # type: ignore[arg-type]
        torch.testing.assert_close(got, per_type[name], atol=1e-6, rtol=0)
    got_all = MATHMTripletLoss(mode="all")(emb, labels, mods).loss
    torch.testing.assert_close(got_all, sum(per_type.values()), atol=1e-6, rtol=0)
    ce = MATHMTripletLoss(mode="ce")(emb, labels, mods)
    assert float(ce.loss) == 0.0 and ce.counts.tolist() == [0, 0, 0]


def test_released_flags_map_onto_our_modes() -> None:
    assert set(RELEASED_LOSS_FLAGS.values()) <= set(MODES)
    assert RELEASED_LOSS_FLAGS["cross"] == "within" and RELEASED_LOSS_FLAGS["within"] == "cross"


def test_missing_type_and_bad_input_raise() -> None:
    g = torch.Generator().manual_seed(9)
    emb = torch.randn(6, 4, dtype=torch.float64, generator=g)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    sketches_only = torch.zeros(6, dtype=torch.long)
    assert math.isfinite(float(MATHMTripletLoss(mode="within")(emb, labels, sketches_only).loss))
    for mode in ("cross", "hybrid", "all", "mathm"):
        with pytest.raises(ValueError, match="no anchor of the batch"):
            MATHMTripletLoss(mode=mode)(emb, labels, sketches_only)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="known modes"):
        MATHMTripletLoss(mode="triplet")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="floor"):
        MATHMTripletLoss(floor=0.0)
    bad = emb.clone()
    bad[0, 0] = math.nan
    with pytest.raises(FloatingPointError, match="not finite"):
        MATHMTripletLoss(mode="within")(bad, labels, sketches_only)


@pytest.mark.parametrize("published", [False, True])
def test_float32_with_duplicate_embeddings_is_nan_free(published: bool) -> None:
    emb, labels, mods = _batch(10)
    emb = emb.float()
    emb[1] = emb[0]  # a zero-distance within-modality positive (and the diagonal, always)
    emb[2] = emb[0]  # a zero-distance cross-modal positive
    e = emb.clone().requires_grad_(True)
    out = MATHMTripletLoss(mode="mathm", published=published)(e, labels, mods)
    out.loss.backward()
    assert e.grad is not None and torch.isfinite(e.grad).all()
    assert torch.isfinite(out.weights).all()
