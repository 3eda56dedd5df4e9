"""Modality masks and batch-hard triplets, against a hand-built batch and a naive loop."""

from __future__ import annotations

import math

import pytest
import torch

from trainables.mathm.triplets import (
    TRIPLET_TYPES,
    hard_triplet_margins,
    mine_hard_triplets,
    modality_masks,
    published_triplet_margins,
)
from trainables.mathm.weighting import pairwise_euclidean

SKETCH, PHOTO = 0, 1


def _circle_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """2 classes x (2 sketches + 2 photos) on the unit circle: distance grows with the angle gap."""
    angles = torch.tensor([0.0, 10, 25, 45, 70, 100, 135, 175], dtype=torch.float64)
    emb = torch.stack([torch.cos(angles.deg2rad()), torch.sin(angles.deg2rad())], dim=1)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    modalities = torch.tensor([SKETCH, SKETCH, PHOTO, PHOTO] * 2)
    return emb, labels, modalities


# Derived by hand from the angles: hardest positive = farthest valid one, hardest negative =
# nearest valid one. Rows: anchor -> (positive, negative).
EXPECTED = {
    "within": [(1, 4), (0, 4), (3, 6), (2, 6), (5, 1), (4, 1), (7, 3), (6, 3)],
    "cross": [(3, 6), (3, 6), (0, 4), (0, 4), (7, 3), (7, 3), (4, 1), (4, 1)],
    "hybrid": [(3, 4), (3, 4), (0, 6), (0, 6), (7, 1), (7, 1), (4, 3), (4, 3)],
}


def test_hand_built_batch_selects_the_intended_triplets() -> None:
    emb, labels, modalities = _circle_batch()
    mined = mine_hard_triplets(pairwise_euclidean(emb), labels, modalities)
    assert set(mined) == set(TRIPLET_TYPES)
    for name, rows in EXPECTED.items():
        t = mined[name]
        assert t.anchors.tolist() == list(range(8)), name
        assert list(zip(t.positives.tolist(), t.negatives.tolist(), strict=True)) == rows, name


def test_masks_on_hand_built_batch() -> None:
    _, labels, modalities = _circle_batch()
    masks = modality_masks(labels, modalities)
    # anchor 0 is a class-0 sketch
    rows = {
        name: (pos[0].nonzero().flatten().tolist(), neg[0].nonzero().flatten().tolist())
        for name, (pos, neg) in masks.items()
    }
    assert rows == {
        "within": ([1], [4, 5]),
        "cross": ([2, 3], [6, 7]),
        "hybrid": ([2, 3], [4, 5]),
    }


def test_anchors_without_candidates_are_excluded() -> None:
    # class 0: 2 sketches + 1 photo; class 1: 2 sketches, no photo; class 2: 1 photo
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    modalities = torch.tensor([SKETCH, SKETCH, PHOTO, SKETCH, SKETCH, PHOTO])
    emb = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    mined = mine_hard_triplets(pairwise_euclidean(emb), labels, modalities)
    assert mined["within"].anchors.tolist() == [0, 1, 3, 4]  # photos have no same-modality positive
    assert mined["cross"].anchors.tolist() == [0, 1, 2]  # class 1 has no photo, class 2 no sketch
    assert mined["hybrid"].anchors.tolist() == [0, 1, 2]
    margins = hard_triplet_margins(pairwise_euclidean(emb), labels, modalities, margin=0.2)
    assert [margins[t].numel() for t in TRIPLET_TYPES] == [4, 3, 3]


def _naive_margins(
    emb: list[list[float]], labels: list[int], mods: list[int], margin: float
) -> dict[str, list[tuple[int, float]]]:
    def unit(v: list[float]) -> list[float]:
        n = math.sqrt(sum(a * a for a in v))
        return [a / n for a in v]

    e = [unit(v) for v in emb]
    b = len(e)

    def d(i: int, j: int) -> float:
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(e[i], e[j], strict=True)))

    rules = {  # (positive wants same modality?, negative wants same modality?)
        "within": (True, True),
        "cross": (False, False),
        "hybrid": (False, True),
    }
    out: dict[str, list[tuple[int, float]]] = {}
    for name, (pos_same, neg_same) in rules.items():
        out[name] = []
        for i in range(b):
            pos = [
                d(i, j)
                for j in range(b)
                if j != i and labels[j] == labels[i] and (mods[j] == mods[i]) == pos_same
            ]
            neg = [
                d(i, j)
                for j in range(b)
                if labels[j] != labels[i] and (mods[j] == mods[i]) == neg_same
            ]
            if pos and neg:
                out[name].append((i, max(pos) - min(neg) + margin))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_margins_match_naive_loop(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (20,), generator=g)
    modalities = torch.randint(0, 2, (20,), generator=g)
    emb = torch.randn(20, 5, dtype=torch.float64, generator=g)
    dist = pairwise_euclidean(torch.nn.functional.normalize(emb, dim=1))
    got = hard_triplet_margins(dist, labels, modalities, margin=0.3)
    mined = mine_hard_triplets(dist, labels, modalities)
    ref = _naive_margins(emb.tolist(), labels.tolist(), modalities.tolist(), 0.3)
    for name in TRIPLET_TYPES:
        assert mined[name].anchors.tolist() == [i for i, _ in ref[name]]
        torch.testing.assert_close(
            got[name],
            torch.tensor([x for _, x in ref[name]], dtype=torch.float64),
            atol=1e-6,
            rtol=0,
        )


def test_published_margins_keep_every_anchor_with_penalty() -> None:
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    modalities = torch.tensor([SKETCH, SKETCH, PHOTO, SKETCH, SKETCH, PHOTO])
    emb = torch.nn.functional.normalize(
        torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3)), dim=1
    )
    dist = pairwise_euclidean(emb)
    got = published_triplet_margins(dist, labels, modalities, margin=0.2)
    assert all(got[t].shape == (6,) for t in TRIPLET_TYPES)
    ours = hard_triplet_margins(dist, labels, modalities, margin=0.2)
    # where both define the triplet they agree (within: self as positive never wins then)
    torch.testing.assert_close(got["cross"][[0, 1, 2]], ours["cross"])
    torch.testing.assert_close(got["within"][[0, 1, 3, 4]], ours["within"])
    # photo 2 is the only class-0 photo: released takes itself (d ~ 1e-6) as within positive
    d_an = dist[2, 5]
    torch.testing.assert_close(got["within"][2], 1e-6 - d_an + 0.2, atol=1e-9, rtol=0)
    # sketch 3 has no cross-modal positive: x is pushed below -900 instead of being dropped
    assert got["cross"][3] < -900 and got["hybrid"][3] < -900


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        modality_masks(torch.tensor([0, 1]), torch.tensor([0, 1, 1]))
    with pytest.raises(TypeError, match="integer"):
        modality_masks(torch.tensor([0.0, 1.0]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"dist must be \(B, B\)"):
        hard_triplet_margins(
            torch.zeros(3, 3), torch.tensor([0, 1]), torch.tensor([0, 1]), margin=0.1
        )
