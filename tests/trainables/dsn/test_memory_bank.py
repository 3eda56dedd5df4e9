"""The sketch memory bank: slots, wrap-around, detachment, class means, replacement policy."""

from __future__ import annotations

import math

import pytest
import torch

from trainables.dsn.memory_bank import SketchMemoryBank


def _rows(n: int, dim: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_update_writes_the_next_slot_of_the_class_only() -> None:
    bank = SketchMemoryBank(3, 4, size=3, dtype=torch.float64)
    f = _rows(5)
    bank.update(f[:1], torch.tensor([1]))
    torch.testing.assert_close(bank.features[1, 0], f[0])
    assert bank.features[1, 1:].abs().sum() == 0  # the rest of class 1 untouched
    assert bank.features[[0, 2]].abs().sum() == 0  # other classes untouched
    bank.update(f[1:3], torch.tensor([1, 1]))
    torch.testing.assert_close(bank.features[1], f[:3])
    assert bank.counts.tolist() == [0, 3, 0]
    # the 4th sketch of class 1 wraps around onto slot 0 and leaves slots 1, 2 alone
    bank.update(f[3:4], torch.tensor([1]))
    torch.testing.assert_close(bank.features[1], torch.stack([f[3], f[1], f[2]]))
    assert bank.counts.tolist() == [0, 3, 0] and bank.next_slot.tolist() == [0, 1, 0]


def test_more_sketches_of_a_class_than_slots_in_one_batch() -> None:
    bank = SketchMemoryBank(2, 4, size=2, dtype=torch.float64)
    f = _rows(5)
    bank.update(f, torch.tensor([0, 1, 0, 0, 0]))  # class 0 written at slots 0,1,0,1
    torch.testing.assert_close(bank.features[0], torch.stack([f[3], f[4]]))
    torch.testing.assert_close(bank.features[1, 0], f[1])
    assert bank.counts.tolist() == [2, 1]


def test_features_are_stored_detached_copies() -> None:
    bank = SketchMemoryBank(2, 4, size=2, dtype=torch.float64)
    f = _rows(1).requires_grad_(True)
    bank.update(f * 2.0, torch.tensor([0]))
    assert not bank.features.requires_grad
    with torch.no_grad():
        f.add_(1.0)
    assert not torch.equal(bank.features[0, 0], f[0] * 2.0)


def test_class_means_and_empty_classes() -> None:
    bank = SketchMemoryBank(3, 4, size=3, dtype=torch.float64)
    f = _rows(4)
    bank.update(f, torch.tensor([0, 2, 0, 0]))
    means = bank.class_means(torch.tensor([0, 1, 2, 0]))
    ref0 = [sum(float(f[i, d]) for i in (0, 2, 3)) / 3 for d in range(4)]
    torch.testing.assert_close(means[0], torch.tensor(ref0, dtype=torch.float64))
    torch.testing.assert_close(means[2], f[1])
    assert torch.isnan(means[1]).all()  # empty class: no mean, visibly
    stats = bank.stats()
    assert float(stats.fill) == pytest.approx(4 / 9)
    assert float(stats.classes_filled) == pytest.approx(2 / 3)
    norms = [math.sqrt(sum(float(x) ** 2 for x in f[i])) for i in range(4)]
    assert float(stats.mean_norm) == pytest.approx(sum(norms) / 4, abs=1e-9)
    bank.reset()
    assert bank.counts.sum() == 0 and bank.features.abs().sum() == 0
    assert float(bank.stats().mean_norm) == 0.0


def test_state_dict_round_trip() -> None:
    bank = SketchMemoryBank(2, 4, size=2)
    bank.update(_rows(3).float(), torch.tensor([0, 1, 1]))
    other = SketchMemoryBank(2, 4, size=2)
    other.load_state_dict(bank.state_dict())
    assert torch.equal(other.features, bank.features) and torch.equal(other.counts, bank.counts)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum() / math.sqrt(float((a * a).sum()) * float((b * b).sum())))


def test_replace_farthest_writes_the_farthest_slot_of_the_class() -> None:
    bank = SketchMemoryBank(2, 2, size=2, policy="replace_farthest", dtype=torch.float64)
    e = torch.eye(2, dtype=torch.float64)
    other = torch.tensor([[3.0, 3.0]], dtype=torch.float64)
    bank.update(
        other, torch.tensor([1]), photo_features=e[:0], photo_labels=torch.tensor([]).long()
    )
    bank.update(e, torch.tensor([0, 0]), photo_features=e[:0], photo_labels=torch.tensor([]).long())
    photo = torch.tensor([[1.0, 0.2]], dtype=torch.float64)  # closer to e0 than to e1
    near = torch.tensor([[0.9, 0.1]], dtype=torch.float64)
    far = torch.tensor([[0.0, -1.0]], dtype=torch.float64)
    # a sketch farther from the photos than every entry is not stored
    bank.update(far, torch.tensor([0]), photo_features=photo, photo_labels=torch.tensor([0]))
    torch.testing.assert_close(bank.features[0], e)
    # a closer one replaces the farthest entry (e1, slot 1) of class 0 only
    assert _cos(near[0], photo[0]) > _cos(e[1], photo[0])
    bank.update(near, torch.tensor([0]), photo_features=photo, photo_labels=torch.tensor([0]))
    torch.testing.assert_close(bank.features[0], torch.stack([e[0], near[0]]))
    torch.testing.assert_close(bank.features[1, 0], other[0])  # class 1 untouched
    # no photo of class 0 in the batch: the sketch is skipped (the released check never fired)
    bank.update(near * -1, torch.tensor([0]), photo_features=photo, photo_labels=torch.tensor([1]))
    torch.testing.assert_close(bank.features[0], torch.stack([e[0], near[0]]))
    with pytest.raises(ValueError, match="needs photo_features"):
        bank.update(near, torch.tensor([0]))


def test_bad_input_raises() -> None:
    bank = SketchMemoryBank(3, 4, size=2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        bank.update(torch.zeros(1, 4), torch.tensor([3]))
    with pytest.raises(ValueError, match=r"must be \(n, 4\)"):
        bank.update(torch.zeros(1, 5), torch.tensor([0]))
    with pytest.raises(ValueError, match="unknown memory bank policy"):
        SketchMemoryBank(3, 4, policy="fifo")  # type: ignore[arg-type]


def test_released_policy_overwrites_the_class_named_by_the_slot() -> None:
    """The released ``memory_embeds[j] = s``: every slot of class j, fill counts unchanged."""
    kwargs = {"size": 2, "dtype": torch.float64}
    banks = {
        p: SketchMemoryBank(3, 2, policy=p, **kwargs)  # type: ignore[arg-type]
        for p in ("replace_farthest", "released")
    }
    e = torch.eye(2, dtype=torch.float64)
    none = {"photo_features": e[:0], "photo_labels": torch.tensor([]).long()}
    for bank in banks.values():
        bank.update(torch.tensor([[3.0, 3.0]], dtype=torch.float64), torch.tensor([1]), **none)
        bank.update(e, torch.tensor([0, 0]), **none)
    photo = torch.tensor([[1.0, 0.2]], dtype=torch.float64)
    near = torch.tensor([[0.9, 0.1]], dtype=torch.float64)
    for bank in banks.values():  # the farthest entry of class 0 is slot 1
        bank.update(near, torch.tensor([0]), photo_features=photo, photo_labels=torch.tensor([0]))
    fixed, released = banks["replace_farthest"], banks["released"]
    torch.testing.assert_close(fixed.features[0], torch.stack([e[0], near[0]]))
    torch.testing.assert_close(released.features[0], e)  # class 0 untouched
    torch.testing.assert_close(released.features[1], near.expand(2, 2))  # class 1 = slot 1
    assert released.counts.tolist() == fixed.counts.tolist() == [2, 1, 0]
    torch.testing.assert_close(released.class_means(torch.tensor([1])), near)
    # more slots than classes: slot 2 names no class (the released code fails), nothing written
    small = SketchMemoryBank(2, 2, size=3, policy="released", dtype=torch.float64)
    three = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    small.update(three, torch.tensor([0, 0, 0]), **none)
    before = small.features.clone()
    # the photo is farthest from the entry in slot 2; the sketch is closer than that entry
    small.update(
        torch.tensor([[0.0, 0.9]], dtype=torch.float64),
        torch.tensor([0]),
        photo_features=torch.tensor([[0.2, 1.0]], dtype=torch.float64),
        photo_labels=torch.tensor([0]),
    )
    torch.testing.assert_close(small.features, before)
