from __future__ import annotations

import pytest
import torch
from torchvision.models import resnet50

from trainables.dml.backbones.cse_resnet import CSEResNet50

TAGS = torch.tensor([0, 1])


@pytest.fixture(scope="module")
def net() -> CSEResNet50:
    torch.manual_seed(0)
    return CSEResNet50().eval()


def test_shape_and_modality_dependence(net):
    x = torch.randn(1, 3, 32, 32).expand(2, -1, -1, -1)  # one image, tagged sketch and photo
    with torch.no_grad():
        out = net(x, TAGS)
    assert out.shape == (2, 2048)
    assert (out[0] - out[1]).abs().max() > 1e-4


def test_gradient_reaches_every_conditional_se(net):
    net.zero_grad()
    x = torch.randn(2, 3, 16, 16, requires_grad=True)  # eval mode: BN needs no batch statistics
    net(x, TAGS).sum().backward()
    blocks = [b for layer in (net.layer1, net.layer2, net.layer3, net.layer4) for b in layer]
    assert len(blocks) == 16
    for block in blocks:
        hidden = block.se.fc1.out_features
        assert block.se.fc2.weight.grad[:, hidden:].abs().sum() > 0
    assert net.conv1.weight.grad.abs().sum() > 0 and x.grad.abs().sum() > 0
    net.zero_grad()


def test_parameter_names_are_torchvision_plus_se(net):
    own = set(net.state_dict())
    torchvision_keys = {k for k in resnet50().state_dict() if not k.startswith("fc.")}
    assert {k for k in own if ".se." not in k} == torchvision_keys
    assert len([k for k in own if ".se." in k]) == 16 * 4  # fc1, fc2 weights and biases


def test_loads_imagenet_resnet50_weights_with_fresh_se_layers(tmp_path):
    torch.manual_seed(1)
    source = resnet50()
    with torch.no_grad():
        for p in source.parameters():
            p.normal_()
        source.layer2[3].bn3.running_mean.normal_()
    path = tmp_path / "resnet50.pth"
    torch.save(source.state_dict(), path)
    torch.manual_seed(2)
    fresh_se = CSEResNet50().layer4[2].se.fc2.weight.detach().clone()
    torch.manual_seed(2)
    net = CSEResNet50(weights=path)
    assert torch.equal(net.layer3[4].conv2.weight, source.layer3[4].conv2.weight)
    assert torch.equal(net.layer2[3].bn3.running_mean, source.layer2[3].bn3.running_mean)
    assert torch.equal(net.layer4[2].se.fc2.weight, fresh_se)  # SE layers keep their init
    loaded = net.loaded_weights
    assert loaded is not None and loaded.source == path
    assert loaded.ignored == ("fc.bias", "fc.weight")
    assert {k for k in loaded.fresh if "num_batches_tracked" not in k} == {
        k for k in net.state_dict() if ".se." in k
    }


def test_round_trip_of_its_own_state_dict_includes_se(net, tmp_path):
    path = tmp_path / "cse.pth"
    torch.save(net.state_dict(), path)
    torch.manual_seed(5)
    again = CSEResNet50(weights=path).eval()
    assert again.loaded_weights is not None and again.loaded_weights.fresh == ()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(again(x, TAGS), net(x, TAGS), rtol=0, atol=0)


def test_missing_imagenet_weights_name_the_expected_path(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    with pytest.raises(FileNotFoundError) as info:
        CSEResNet50(weights="imagenet")
    assert str(expected) in str(info.value)


def test_bad_inputs(net):
    with pytest.raises(ValueError, match=r"expected images \(B, 3, H, W\)"):
        net(torch.randn(2, 1, 32, 32), TAGS)
    with pytest.raises(ValueError, match="tags must lie in"):
        net(torch.randn(2, 3, 16, 16), torch.tensor([0, 5]))
