from __future__ import annotations

import pytest
import torch

from trainables.dml.backbones.small_cnn import ConditionalSmallCNN, SmallCNN


@pytest.mark.parametrize("shape", [(5, 1, 8, 8), (3, 1, 16, 16), (2, 1, 28, 20)])
def test_small_cnn_shapes(shape):
    net = SmallCNN(width=8, out_features=24)
    assert net(torch.randn(shape)).shape == (shape[0], 24)


def test_small_cnn_channels_and_input_checks():
    net = SmallCNN(in_channels=3, width=4, out_features=8)
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 8)
    with pytest.raises(ValueError, match=r"expected images \(B, 3, H, W\) with H, W >= 2"):
        net(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="H, W >= 2"):
        net(torch.randn(2, 3, 1, 8))
    with pytest.raises(ValueError, match="width must be an int >= 1, got 0"):
        SmallCNN(width=0, out_features=8)


def test_small_cnn_learns_on_cpu():
    """A few Adam steps separate two synthetic classes: the network trains end to end."""
    torch.manual_seed(0)
    x = torch.randn(32, 1, 8, 8)
    x[:16, :, :4] += 1.0  # class 0 brighter at the top
    y = torch.arange(32) // 16
    net = SmallCNN(width=8, out_features=16)
    head = torch.nn.Linear(16, 2)
    opt = torch.optim.Adam([*net.parameters(), *head.parameters()], lr=1e-2)
    losses = []
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(head(net(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_conditional_small_cnn_depends_on_the_tag():
    torch.manual_seed(0)
    net = ConditionalSmallCNN(width=8, out_features=16).eval()
    x = torch.randn(4, 1, 8, 8)
    sketch = net(x, torch.zeros(4, dtype=torch.long))
    photo = net(x, torch.ones(4, dtype=torch.long))
    assert sketch.shape == photo.shape == (4, 16)
    assert (sketch - photo).abs().max() > 1e-4


def test_conditional_small_cnn_conditions_each_sample_on_its_own_tag():
    torch.manual_seed(1)
    net = ConditionalSmallCNN(width=8, out_features=16).eval()  # eval: no batch coupling
    x = torch.randn(6, 1, 16, 16)
    tags = torch.tensor([0, 1, 1, 0, 1, 0])
    mixed = net(x, tags)
    for t in (0, 1):
        alone = net(x, torch.full((6,), t))
        torch.testing.assert_close(mixed[tags == t], alone[tags == t])


def test_conditional_small_cnn_gradient_reaches_tag_weights():
    torch.manual_seed(2)
    net = ConditionalSmallCNN(width=8, out_features=16)
    x = torch.randn(6, 1, 8, 8, requires_grad=True)
    net(x, torch.tensor([0, 1, 0, 1, 0, 1])).square().sum().backward()
    for se in net.se:
        hidden = se.fc1.out_features
        assert se.fc2.weight.grad[:, hidden:].abs().sum(0).min() > 0  # both tag columns
    assert net.blocks[0][0].weight.grad.abs().sum() > 0
    assert x.grad.abs().sum() > 0


def test_conditional_small_cnn_refuses_bad_tags():
    net = ConditionalSmallCNN(width=4, out_features=8)
    x = torch.randn(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"tags must lie in \[0, 2\), got values \[0, 2\]"):
        net(x, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        net(x, torch.tensor([0, 1, 1]))
