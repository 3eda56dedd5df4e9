from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models import resnet18

from trainables.dml.backbones.weights import (
    IMAGENET_URLS,
    imagenet_weights_path,
    load_backbone_weights,
    load_state_dict_into,
    read_state_dict,
)


@pytest.fixture
def hub_dir(tmp_path, monkeypatch) -> Path:
    """An empty torch-hub cache: torch.hub.get_dir() follows $TORCH_HOME."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = Path(torch.hub.get_dir())
    assert hub == tmp_path / "torch" / "hub", "torch.hub.set_dir was called elsewhere"
    return hub


def _randomised(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen) for k, v in model.state_dict().items()}


def test_imagenet_path_is_the_hub_checkpoint_file_of_the_torchvision_url(hub_dir):
    assert imagenet_weights_path("resnet50") == hub_dir / "checkpoints" / "resnet50-0676ba61.pth"
    assert IMAGENET_URLS["resnet50"].endswith("/resnet50-0676ba61.pth")
    assert imagenet_weights_path("resnet18").name == "resnet18-f37072fd.pth"
    with pytest.raises(ValueError, match="known: \\['resnet18', 'resnet50'\\]"):
        imagenet_weights_path("vgg16")


def test_missing_imagenet_weights_name_the_path_and_how_to_get_them(hub_dir):
    expected = hub_dir / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(FileNotFoundError) as info:
        read_state_dict("imagenet", arch="resnet18")
    message = str(info.value)
    assert str(expected) in message
    assert IMAGENET_URLS["resnet18"] in message
    assert "TORCH_HOME" in message


def test_imagenet_weights_are_read_from_the_hub_cache(hub_dir):
    state = _randomised(resnet18(), seed=0)
    path = hub_dir / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    got_path, got = read_state_dict("imagenet", arch="resnet18")
    assert got_path == path
    assert torch.equal(got["layer2.1.conv1.weight"], state["layer2.1.conv1.weight"])


def test_unknown_weights_string_is_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="'imagenet1k' not found; weights must be None"):
        read_state_dict("imagenet1k", arch="resnet18")
    with pytest.raises(TypeError, match="weights must be None"):
        load_backbone_weights(resnet18(), 3, arch="resnet18")  # type: ignore[arg-type]


def test_files_that_are_not_state_dicts_are_refused(tmp_path):
    not_a_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], not_a_dict)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        read_state_dict(not_a_dict, arch="resnet18")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read a state dict from"):
        read_state_dict(garbage, arch="resnet18")


def test_load_copies_values_and_reports_ignored_and_fresh_keys():
    model = resnet18()
    state = _randomised(model, seed=1)
    state["extra.weight"] = torch.zeros(3)
    del state["layer4.1.bn2.weight"]
    result = load_state_dict_into(model, state, ignore=(r"^extra\.",), fresh=(r"layer4\.1\.bn2",))
    assert torch.equal(model.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert torch.equal(model.layer3[1].bn1.running_var, state["layer3.1.bn1.running_var"])
    assert result.ignored == ("extra.weight",)
    assert result.fresh == ("layer4.1.bn2.weight",)
    assert "fc.bias" in result.loaded
    assert torch.equal(model.layer4[1].bn2.weight, torch.ones(512))  # kept its init


def test_wrong_shapes_are_listed_with_both_shapes():
    model = resnet18()
    state = _randomised(model, seed=2)
    state["conv1.weight"] = torch.zeros(64, 1, 7, 7)
    before = model.layer1[0].conv1.weight.detach().clone()
    with pytest.raises(ValueError) as info:
        load_state_dict_into(model, state)
    assert "conv1.weight: file (64, 1, 7, 7) vs model (64, 3, 7, 7)" in str(info.value)
    assert torch.equal(model.layer1[0].conv1.weight, before), "nothing is loaded on failure"


def test_unexpected_and_missing_keys_are_refused():
    model = resnet18()
    state = _randomised(model, seed=3)
    state["head.weight"] = torch.zeros(1)
    del state["layer2.0.downsample.0.weight"]
    with pytest.raises(ValueError) as info:
        load_state_dict_into(model, state)
    message = str(info.value)
    assert "1 key(s) the model lacks: head.weight" in message
    assert "1 model key(s) absent from the file: layer2.0.downsample.0.weight" in message


def test_old_files_without_batchnorm_counters_load():
    model = resnet18()
    state = {k: v for k, v in _randomised(model, seed=4).items() if "num_batches_tracked" not in k}
    result = load_state_dict_into(model, state)
    assert all(k.endswith("num_batches_tracked") for k in result.fresh)
    assert len(result.fresh) == 20  # one per BatchNorm of ResNet-18
    assert torch.equal(model.bn1.running_mean, state["bn1.running_mean"])


def test_none_leaves_the_model_alone():
    model = resnet18()
    before = model.conv1.weight.detach().clone()
    assert load_backbone_weights(model, None, arch="resnet18") is None
    assert torch.equal(model.conv1.weight, before)
