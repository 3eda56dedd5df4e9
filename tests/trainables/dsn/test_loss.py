"""DSN's memory loss and combined loss, against naive float64 loops."""

from __future__ import annotations

import math

import pytest
import torch

from trainables.dsn.loss import PHOTO, SKETCH, DSNLoss, distillation_loss, memory_loss
from trainables.dsn.memory_bank import SketchMemoryBank


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _naive_memory(photos: list[list[float]], labels: list[int], bank: SketchMemoryBank) -> float:
    terms = []
    for p, c in zip(photos, labels, strict=True):
        n = int(bank.counts[c])
        if n == 0:
            continue
        entries = bank.features[c, :n].tolist()
        mu = [sum(e[d] for e in entries) / n for d in range(len(p))]
        dot = sum(a * b for a, b in zip(p, mu, strict=True))
        terms.append(dot / math.sqrt(sum(a * a for a in p) * sum(b * b for b in mu)))
    return 1.0 - sum(terms) / len(terms) if terms else 0.0


def _filled_bank(seed: int) -> SketchMemoryBank:
    bank = SketchMemoryBank(4, 5, size=3, dtype=torch.float64)
    bank.update(
        torch.randn(7, 5, dtype=torch.float64, generator=_gen(seed)),
        torch.tensor([0, 1, 0, 2, 0, 0, 1]),
    )  # class 0 wraps; class 3 stays empty
    return bank


@pytest.mark.parametrize("seed", [0, 1])
def test_memory_loss_matches_naive_and_has_a_gradient(seed: int) -> None:
    bank = _filled_bank(seed)
    photos = torch.randn(6, 5, dtype=torch.float64, generator=_gen(seed + 10), requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0, 3, 3])
    loss = memory_loss(photos, labels, bank)
    assert float(loss.detach()) == pytest.approx(
        _naive_memory(photos.tolist(), labels.tolist(), bank), abs=1e-9
    )
    loss.backward()
    assert photos.grad is not None
    assert photos.grad[:4].abs().sum(dim=1).min() > 1e-3  # every valid photo gets a gradient
    assert photos.grad[4:].abs().sum() == 0  # class 3 has no sketch: excluded
    assert not bank.features.requires_grad

    # the same gradient from a per-photo reference with the class means as constants
    p = photos.detach().clone().requires_grad_(True)
    means = bank.class_means(labels[:4])
    terms = [torch.dot(p[i], means[i]) / (p[i].norm() * means[i].norm()) for i in range(4)]
    (1.0 - sum(terms) / 4).backward()
    torch.testing.assert_close(photos.grad, p.grad, atol=1e-6, rtol=0)


def test_memory_loss_is_zero_when_no_class_has_a_sketch() -> None:
    bank = SketchMemoryBank(3, 4, size=2, dtype=torch.float64)
    photos = torch.randn(2, 4, dtype=torch.float64, generator=_gen(2), requires_grad=True)
    loss = memory_loss(photos, torch.tensor([0, 2]), bank)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert photos.grad is not None and photos.grad.abs().sum() == 0


def _naive_supcon(z: list[list[float]], labels: list[int], tau: float) -> float:
    """Khosla et al. over all 2N anchors (the released SupConLoss with base temperature tau)."""
    unit = [[a / math.sqrt(sum(b * b for b in v)) for a in v] for v in z]
    total = 0.0
    for a in range(len(z)):
        logits = {
            b: sum(x * y for x, y in zip(unit[a], unit[b], strict=True)) / tau
            for b in range(len(z))
            if b != a
        }
        log_den = math.log(sum(math.exp(v) for v in logits.values()))
        pos = [b for b in logits if labels[b] == labels[a]]
        total += -sum(logits[b] - log_den for b in pos) / len(pos)
    return total / len(z)


def _naive_ce(logits: list[list[float]], labels: list[int]) -> float:
    return sum(
        math.log(sum(math.exp(v) for v in row)) - row[y]
        for row, y in zip(logits, labels, strict=True)
    ) / len(labels)


def _naive_kd(student: list[list[float]], teacher: list[list[float]]) -> float:
    total = 0.0
    for s, t in zip(student, teacher, strict=True):
        zt = sum(math.exp(v) for v in t)
        log_zs = math.log(sum(math.exp(v) for v in s))
        total += -sum(math.exp(tv) / zt * (sv - log_zs) for sv, tv in zip(s, t, strict=True))
    return total / len(student)


def _step_inputs(seed: int) -> dict[str, torch.Tensor]:
    g = _gen(seed)
    labels = torch.tensor([0, 1, 2, 0, 0, 1, 1, 2, 2, 3])
    modalities = torch.tensor([SKETCH] * 3 + [PHOTO] * 7)
    return {
        "labels": labels,
        "modalities": modalities,
        "logits": torch.randn(10, 4, dtype=torch.float64, generator=g),
        "features": torch.randn(10, 6, dtype=torch.float64, generator=g),
        "v1": torch.randn(10, 3, dtype=torch.float64, generator=g),
        "v2": torch.randn(10, 3, dtype=torch.float64, generator=g),
        "kd_logits": torch.randn(10, 5, dtype=torch.float64, generator=g),
        "teacher": torch.randn(10, 5, dtype=torch.float64, generator=g),
    }


@pytest.mark.parametrize("with_kd", [True, False])
def test_dsn_loss_is_the_weighted_sum_of_its_parts(with_kd: bool) -> None:
    x = _step_inputs(3)
    loss_fn = DSNLoss(
        num_classes=4,
        feature_dim=6,
        bank_size=2,
        temperature=0.1,
        w_ce=0.7,
        w_kd=1.3,
        w_supcon=0.2,
        w_mem=1.5,
    ).double()
    photos = x["modalities"] == PHOTO
    out = loss_fn(
        logits=x["logits"],
        labels=x["labels"],
        modalities=x["modalities"],
        features=x["features"],
        views=(x["v1"], x["v2"]),
        kd_logits=x["kd_logits"] if with_kd else None,
        teacher_logits=x["teacher"] if with_kd else None,
        kd_mask=photos if with_kd else None,
    )
    labels = x["labels"].tolist()
    ce = _naive_ce(x["logits"].tolist(), labels)
    supcon = _naive_supcon(x["v1"].tolist() + x["v2"].tolist(), labels + labels, 0.1)
    # the step's sketches enter the bank before the memory loss (released order)
    assert loss_fn.bank.counts.tolist() == [1, 1, 1, 0]
    mem = _naive_memory(x["features"][photos].tolist(), x["labels"][photos].tolist(), loss_fn.bank)
    assert float(out.ce) == pytest.approx(ce, abs=1e-6)
    assert float(out.supcon) == pytest.approx(supcon, abs=1e-6)
    assert float(out.memory) == pytest.approx(mem, abs=1e-6)
    assert int(out.memory_photos) == 6  # the class-3 photo has no sketch in the bank
    total = 0.7 * ce + 0.2 * supcon + 1.5 * mem
    if with_kd:
        kd = _naive_kd(x["kd_logits"][photos].tolist(), x["teacher"][photos].tolist())
        assert out.kd is not None and float(out.kd) == pytest.approx(kd, abs=1e-6)
        total += 1.3 * kd
    else:
        assert out.kd is None and "train/loss_kd" not in out.metrics()
    assert float(out.loss) == pytest.approx(total, abs=1e-6)
    m = out.metrics()
    assert m["train/bank_fill"] == pytest.approx(3 / 8)
    assert m["train/bank_classes_filled"] == pytest.approx(3 / 4)


def test_dsn_memory_gradient_flows_to_photo_features_only() -> None:
    x = _step_inputs(4)
    features = x["features"].clone().requires_grad_(True)
    loss_fn = DSNLoss(num_classes=4, feature_dim=6, bank_size=2, w_ce=0.0, w_supcon=0.0).double()
    out = loss_fn(
        logits=x["logits"],
        labels=x["labels"],
        modalities=x["modalities"],
        features=features,
        views=(x["v1"], x["v2"]),
    )
    out.loss.backward()
    assert features.grad is not None
    assert features.grad[:3].abs().sum() == 0  # sketches only fill the (detached) bank
    assert features.grad[3:9].abs().sum(dim=1).min() > 1e-4
    assert features.grad[9].abs().sum() == 0  # class 3: empty bank, excluded


def test_distillation_loss_matches_naive() -> None:
    s = torch.randn(4, 6, dtype=torch.float64, generator=_gen(5))
    t = torch.randn(4, 6, dtype=torch.float64, generator=_gen(6))
    assert float(distillation_loss(s, t)) == pytest.approx(
        _naive_kd(s.tolist(), t.tolist()), abs=1e-9
    )


def test_bad_input_and_divergence_raise() -> None:
    x = _step_inputs(7)
    loss_fn = DSNLoss(num_classes=4, feature_dim=6).double()
    kwargs = {
        "logits": x["logits"],
        "labels": x["labels"],
        "features": x["features"],
        "views": (x["v1"], x["v2"]),
    }
    with pytest.raises(ValueError, match="modalities must be 0"):
        loss_fn(modalities=torch.full((10,), 2), **kwargs)
    with pytest.raises(ValueError, match="without kd_logits"):
        loss_fn(modalities=x["modalities"], teacher_logits=x["teacher"], **kwargs)
    bad = dict(kwargs, logits=x["logits"].clone())
    bad["logits"][0, 0] = math.inf
    with pytest.raises(FloatingPointError, match="not finite"):
        loss_fn(modalities=x["modalities"], **bad)
    with pytest.raises(ValueError, match="temperature"):
        DSNLoss(num_classes=4, feature_dim=6, temperature=0.0)


def test_float32_memory_loss_is_nan_free_for_zero_features() -> None:
    bank = SketchMemoryBank(2, 3, size=2)  # float32
    bank.update(torch.zeros(1, 3), torch.tensor([0]))  # a zero sketch feature
    photos = torch.zeros(3, 3, requires_grad=True)
    loss = memory_loss(photos, torch.tensor([0, 1, 0]), bank)
    loss.backward()
    assert torch.isfinite(loss) and photos.grad is not None and torch.isfinite(photos.grad).all()


def _published_step(x: dict[str, torch.Tensor], *, w_mem: float, features: torch.Tensor):
    loss_fn = DSNLoss(
        num_classes=4, feature_dim=6, bank_size=2, temperature=0.2, w_mem=w_mem, published=True
    ).double()
    v1 = x["v1"].clone().requires_grad_(True)
    out = loss_fn(
        logits=x["logits"],
        labels=x["labels"],
        modalities=x["modalities"],
        features=features,
        views=(v1, x["v2"]),
    )
    out.loss.backward()
    return out, v1.grad


def test_published_is_the_released_training() -> None:
    """Released: L_mem is logged but has no gradient (training = w_mem 0), SupCon x tau/0.07."""
    x = _step_inputs(5)
    feats = [x["features"].clone().requires_grad_(True) for _ in range(2)]
    out, grad_views = _published_step(x, w_mem=1.0, features=feats[0])
    out0, grad_views0 = _published_step(x, w_mem=0.0, features=feats[1])
    labels = x["labels"].tolist()
    supcon = _naive_supcon(x["v1"].tolist() + x["v2"].tolist(), labels + labels, 0.2)
    assert float(out.supcon) == pytest.approx(0.2 / 0.07 * supcon, abs=1e-9)
    photos = x["modalities"] == PHOTO
    mem = _naive_memory(x["features"][photos].tolist(), x["labels"][photos].tolist(), _bank(x))
    assert mem > 0.0 and float(out.memory) == pytest.approx(mem, abs=1e-9)  # logged as released
    assert float(out.loss.detach()) == pytest.approx(float(out0.loss.detach()) + mem, abs=1e-9)
    assert feats[0].grad is None  # L_mem is the features' only use, and it is detached
    torch.testing.assert_close(grad_views, grad_views0, atol=0, rtol=0)
    ours = DSNLoss(num_classes=4, feature_dim=6, bank_size=2, temperature=0.2).double()
    feats_ours = x["features"].clone().requires_grad_(True)
    ours(
        logits=x["logits"],
        labels=x["labels"],
        modalities=x["modalities"],
        features=feats_ours,
        views=(x["v1"], x["v2"]),
    ).loss.backward()
    assert feats_ours.grad is not None and feats_ours.grad.abs().sum() > 1e-3  # ours: it trains


def _bank(x: dict[str, torch.Tensor]) -> SketchMemoryBank:
    """The bank as a published step leaves it: the step's sketches stored first."""
    bank = SketchMemoryBank(4, 6, size=2, dtype=torch.float64)
    sketches = x["modalities"] == SKETCH
    bank.update(x["features"][sketches], x["labels"][sketches])
    return bank


def test_dsn_config_defaults_follow_the_released_weights() -> None:
    from trainables.dsn.objective import DSNConfig

    cfg = DSNConfig()
    loss = DSNLoss(num_classes=2, feature_dim=2)
    assert cfg.w_supcon == loss.w_supcon == 0.1  # methods.md 5: CE + KD + 0.1 SupCon + L_mem
    assert (cfg.w_ce, cfg.w_mem, cfg.w_kd) == (loss.w_ce, loss.w_mem, loss.w_kd) == (1, 1, 1)
    assert cfg.temperature == loss.temperature == 0.07
    assert cfg.published is False and cfg.bank_policy == "ring"
