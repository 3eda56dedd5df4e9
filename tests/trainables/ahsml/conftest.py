"""Naive float64 references for the AHSML tests: python loops over pairs, formulas written out.

Independent of trainables.ahsml (no geoopt, no masks, no matrix products). Values are 0-dim
torch tensors so autograd runs through them; the statistics are plain floats, i.e. constants.
Exposed as the ``ref`` fixture (test modules cannot import each other).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import Tensor

DEGENERATE_RANGE = 1e-6


def _val(x: Any) -> float:
    """A constant: the value without its autograd history."""
    return float(x.detach()) if isinstance(x, Tensor) else float(x)


def _dot(x: list[Any], y: list[Any]) -> Any:
    return sum(x[k] * y[k] for k in range(len(x)))


def mobius_add(x: list[Any], y: list[Any], c: Any) -> list[Any]:
    """x (+)_c y = ((1 + 2c<x,y> + c|y|^2) x + (1 - c|x|^2) y) / (1 + 2c<x,y> + c^2|x|^2|y|^2)."""
    xy, x2, y2 = _dot(x, y), _dot(x, x), _dot(y, y)
    den = 1 + 2 * c * xy + c**2 * x2 * y2
    return [((1 + 2 * c * xy + c * y2) * x[k] + (1 - c * x2) * y[k]) / den for k in range(len(x))]


def poincare_dist(x: Tensor, y: Tensor, c: Any) -> Tensor:
    """d_c(x, y) = (2/sqrt(c)) artanh(sqrt(c) |(-x) (+)_c y|)."""
    w = mobius_add([-v for v in x], list(y), c)
    return 2 / c**0.5 * torch.atanh(c**0.5 * torch.sqrt(_dot(w, w)))


def similarity(z: Tensor, *, c: Any, tau: float, hyperbolic: bool = True) -> list[list[Tensor]]:
    n = z.shape[0]
    s: list[list[Tensor]] = [[torch.zeros((), dtype=torch.float64)] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            if hyperbolic:
                # d(x, x) = 0 exactly; skipped because sqrt'(0) would poison the gradient.
                d = poincare_dist(z[i], z[j], c) if i != j else torch.zeros((), dtype=z.dtype)
                s[i][j] = torch.exp(-d / tau)
            else:
                zi, zj = list(z[i]), list(z[j])
                s[i][j] = _dot(zi, zj) / torch.sqrt(_dot(zi, zi) * _dot(zj, zj))
    return s


def _rescale(values: dict[Any, float], mu: float) -> dict[Any, float]:
    if len(values) < 2:
        return dict.fromkeys(values, 0.0)
    lo, hi = min(values.values()), max(values.values())
    if hi - lo <= DEGENERATE_RANGE:
        return dict.fromkeys(values, 0.0)
    return {k: mu * (v - lo) / (hi - lo) for k, v in values.items()}


def margins(
    s: list[list[Any]],
    labels: list[int],
    instance: list[int],
    *,
    gamma: float,
    mu: float,
    adaptive: bool = True,
) -> SimpleNamespace:
    """Class statistics over pairs of views of distinct images, and the margins."""
    n = len(labels)
    classes = sorted(set(labels))
    intra: dict[int, float] = {}
    inter: dict[tuple[int, int], float] = {}
    for a in classes:
        for b in classes:
            vals = [
                _val(s[u][v])
                for u in range(n)
                for v in range(n)
                if labels[u] == a and labels[v] == b and instance[u] != instance[v]
            ]
            if vals and a == b:
                intra[a] = sum(vals) / len(vals)
            elif vals:
                inter[(a, b)] = sum(vals) / len(vals)
    if adaptive:
        intra_hat, inter_hat = _rescale(intra, mu), _rescale(inter, mu)
        m_p = {a: gamma + intra_hat.get(a, 0.0) for a in classes}
        m_n = {(a, b): gamma - inter_hat.get((a, b), 0.0) for a in classes for b in classes}
        m_a = min(intra.values()) if intra else gamma
    else:
        m_p = dict.fromkeys(classes, gamma)
        m_n = {(a, b): gamma for a in classes for b in classes}
        m_a = gamma
    return SimpleNamespace(classes=classes, intra=intra, inter=inter, m_p=m_p, m_n=m_n, m_a=m_a)


def pair_term(
    name: str,
    pos: list[tuple[Any, float]],
    neg: list[tuple[Any, float]],
    *,
    w_pos: float = 1.0,
    w_neg: float = 1.0,
    alpha: float = 2.0,
    beta: float = 50.0,
    triplet_margin: float = 0.1,
    circle_scale: float = 80.0,
) -> Any:
    """One anchor's class term; ``pos`` = [(s, M_p)], ``neg`` = [(s, M_n)]."""
    zero = torch.zeros((), dtype=torch.float64)
    if name == "ms":
        p = sum((torch.exp(-alpha * (s - m)) for s, m in pos), zero)
        q = sum((torch.exp(beta * (s - m)) for s, m in neg), zero)
        return w_pos / alpha * torch.log(1 + p) + w_neg / beta * torch.log(1 + q)
    if name == "contrastive":
        p = sum((torch.relu(m - s) for s, m in pos), zero) / max(len(pos), 1)
        q = sum((torch.relu(s - m) for s, m in neg), zero) / max(len(neg), 1)
        return w_pos * p + w_neg * q
    if not pos or not neg:
        return zero
    if name == "triplet":  # the hardest of all triplets (j in P, k in N)
        hinges = [
            triplet_margin + w_pos * (mp - sp) + w_neg * (sn - mn)
            for sp, mp in pos
            for sn, mn in neg
        ]
        return torch.relu(max(hinges, key=_val))
    if name == "circle":  # log(1 + sum_{j,k} e^{logit_j + logit_k})
        lp = [-circle_scale * w_pos * max(2 - mp - _val(sp), 0.0) * (sp - mp) for sp, mp in pos]
        ln = [circle_scale * w_neg * max(_val(sn) + mn, 0.0) * (sn - mn) for sn, mn in neg]
        return torch.log(1 + sum(torch.exp(a + b) for a in lp for b in ln))
    raise ValueError(name)


def ahsml(
    z_weak: Tensor,
    z_strong: Tensor,
    view_labels: list[int],
    *,
    c: Any = 0.5,
    tau: float = 0.7,
    gamma: float = 0.5,
    mu: float = 0.2,
    rho: float = 2.0,
    w_aug: float = 1.0,
    base: str = "ms",
    hyperbolic: bool = True,
    adaptive: bool = True,
    consistency: bool = True,
    **pair_options: Any,
) -> SimpleNamespace:
    """The integrated loss over the 2B views [weak; strong], every view an anchor."""
    b = z_weak.shape[0]
    z = torch.cat([z_weak, z_strong])
    instance = list(range(b)) * 2
    n = 2 * b
    s = similarity(z, c=c, tau=tau, hyperbolic=hyperbolic)
    st = margins(s, view_labels, instance, gamma=gamma, mu=mu, adaptive=adaptive)
    aug_terms, class_terms = [], []
    for u in range(n):
        a_set = [v for v in range(n) if v != u and instance[v] == instance[u]]
        p_set = [
            v for v in range(n) if instance[v] != instance[u] and view_labels[v] == view_labels[u]
        ]
        n_set = [
            v for v in range(n) if instance[v] != instance[u] and view_labels[v] != view_labels[u]
        ]
        aug = torch.log(1 + sum(torch.exp(-rho * (s[u][v] - st.m_a)) for v in a_set)) / rho
        aug_terms.append(aug)
        pos = [(s[u][v], st.m_p[view_labels[u]]) for v in p_set]
        neg = [(s[u][v], st.m_n[(view_labels[u], view_labels[v])]) for v in n_set]
        class_terms.append(pair_term(base, pos, neg, **pair_options))
    aug_mean = sum(aug_terms) / n
    class_mean = sum(class_terms) / n
    loss = (w_aug * aug_mean if consistency else 0.0) + class_mean
    return SimpleNamespace(loss=loss, aug=aug_mean, cls=class_mean, stats=st, sim=s)


def ball_points(n: int, d: int, *, c: float, seed: int, max_frac: float = 0.9) -> Tensor:
    """Random float64 points of the ball of radius 1/sqrt(c), norms up to max_frac of it."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float64))
    radius = max_frac / math.sqrt(c) * torch.rand(n, 1, generator=g, dtype=torch.float64)
    return direction * radius


@pytest.fixture
def ref() -> SimpleNamespace:
    return SimpleNamespace(
        poincare_dist=poincare_dist,
        similarity=similarity,
        margins=margins,
        pair_term=pair_term,
        ahsml=ahsml,
        ball_points=ball_points,
    )
