from __future__ import annotations

import pytest
import torch
from torchvision.models import resnet18

from trainables.dml.backbones.resnet import RESNET_FEATURES, resnet_backbone


@pytest.mark.parametrize(("name", "size"), [("resnet18", 32), ("resnet50", 32)])
def test_features_without_classifier(name, size):
    net = resnet_backbone(name)
    out = net(torch.randn(2, 3, size, size))
    assert out.shape == (2, RESNET_FEATURES[name])
    assert not any(k.startswith("fc.") for k in net.state_dict())


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown ResNet 'resnet34'; known"):
        resnet_backbone("resnet34")


def test_loads_a_torchvision_state_dict_file_dropping_fc(tmp_path):
    torch.manual_seed(0)
    source = resnet18()
    with torch.no_grad():
        for p in source.parameters():
            p.normal_()
    path = tmp_path / "r18.pth"
    torch.save(source.state_dict(), path)
    net = resnet_backbone("resnet18", weights=path)
    assert torch.equal(net.layer3[0].conv2.weight, source.layer3[0].conv2.weight)
    source.fc = torch.nn.Identity()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(net.eval()(x), source.eval()(x), rtol=0, atol=0)


def test_missing_imagenet_file_names_the_expected_path(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="resnet50-0676ba61.pth") as info:
        resnet_backbone("resnet50", weights="imagenet")
    assert str(tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth") in str(info.value)


def test_wrong_architecture_file_is_refused(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(resnet18().state_dict(), path)
    with pytest.raises(ValueError, match="do not fit ResNet .*shape mismatch"):
        resnet_backbone("resnet50", weights=path)
