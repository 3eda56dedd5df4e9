from __future__ import annotations

import pytest
import torch

from trainables.dml.backbones.conditional import ConditionalSE, check_modality


def _reference(se: ConditionalSE, x: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
    """Per sample, in float64: the one-hot concatenation is the tag's column of W2."""
    w1, b1 = se.fc1.weight.double(), se.fc1.bias.double()
    w2, b2 = se.fc2.weight.double(), se.fc2.bias.double()
    hidden = w1.shape[0]
    out = []
    for xi, ti in zip(x.double(), tags.tolist(), strict=True):
        s = xi.mean(dim=(1, 2))
        h = torch.relu(w1 @ s + b1)
        g = torch.sigmoid(w2[:, :hidden] @ h + w2[:, hidden + ti] + b2)
        out.append(xi * g[:, None, None])
    return torch.stack(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_per_sample_reference(seed):
    torch.manual_seed(seed)
    se = ConditionalSE(12, num_modalities=3, reduction=4).double()
    x = torch.randn(5, 12, 3, 4, dtype=torch.float64)
    tags = torch.tensor([0, 2, 1, 1, 0])
    torch.testing.assert_close(se(x, tags), _reference(se, x, tags), rtol=1e-12, atol=1e-12)


def test_same_input_two_tags_two_outputs_and_only_through_the_tag_columns():
    torch.manual_seed(3)
    se = ConditionalSE(16, reduction=4)
    x = torch.randn(3, 16, 4, 4)
    zeros, ones = torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long)
    assert (se(x, zeros) - se(x, ones)).abs().max() > 1e-4
    with torch.no_grad():
        se.fc2.weight[:, 4:] = 0.0  # tag columns off: the modality no longer matters
    torch.testing.assert_close(se(x, zeros), se(x, ones), rtol=0, atol=0)


def test_gradient_flows_to_input_and_to_the_present_tags_only():
    torch.manual_seed(4)
    se = ConditionalSE(8, num_modalities=3, reduction=2)
    x = torch.randn(4, 8, 2, 2, requires_grad=True)
    se(x, torch.tensor([0, 2, 0, 2])).sum().backward()
    tag_grad = se.fc2.weight.grad[:, 4:]  # (C, 3)
    assert tag_grad[:, 0].abs().sum() > 0 and tag_grad[:, 2].abs().sum() > 0
    assert torch.equal(tag_grad[:, 1], torch.zeros(8))  # tag 1 absent from the batch
    assert se.fc1.weight.grad.abs().sum() > 0 and x.grad.abs().sum() > 0


def test_check_modality():
    assert (
        check_modality(
            torch.tensor([1, 0], dtype=torch.int32), batch_size=2, num_modalities=2
        ).dtype
        == torch.int64
    )
    with pytest.raises(TypeError, match="integer tags"):
        check_modality(torch.tensor([0.0, 1.0]), batch_size=2, num_modalities=2)
    with pytest.raises(TypeError, match="integer tags"):
        check_modality(torch.tensor([True, False]), batch_size=2, num_modalities=2)
    with pytest.raises(TypeError, match="must be a tensor"):
        check_modality([0, 1], batch_size=2, num_modalities=2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"must have shape \(2,\)"):
        check_modality(torch.zeros(2, 1, dtype=torch.long), batch_size=2, num_modalities=2)
    with pytest.raises(ValueError, match=r"got values \[-1, 0\]"):
        check_modality(torch.tensor([-1, 0]), batch_size=2, num_modalities=2)


def test_bad_sizes():
    with pytest.raises(ValueError, match="num_modalities must be an int >= 1, got 0"):
        ConditionalSE(8, num_modalities=0)
