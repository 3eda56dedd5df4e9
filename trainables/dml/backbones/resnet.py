"""torchvision ResNets without their classifier, as feature extractors."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torchvision.models import ResNet, resnet18, resnet50

from trainables.dml.backbones.weights import WeightsSpec, load_backbone_weights

__all__ = ["RESNET_FEATURES", "resnet_backbone"]

RESNET_FEATURES: dict[str, int] = {"resnet18": 512, "resnet50": 2048}

_BUILDERS: dict[str, Callable[..., ResNet]] = {"resnet18": resnet18, "resnet50": resnet50}


def resnet_backbone(name: str, *, weights: WeightsSpec = None) -> ResNet:
    """A torchvision ResNet whose ``fc`` is the identity: ``(B, 3, H, W) -> (B, F)``.

    ``F = RESNET_FEATURES[name]`` (512 for resnet18, 2048 for resnet50): the globally
    average-pooled output of ``layer4``. Parameter names are torchvision's, so torchvision
    state dicts load as they are (their ``fc.*`` is dropped).

    Args:
        name: ``"resnet18"`` or ``"resnet50"``.
        weights: ``None`` (random init), ``"imagenet"`` (torchvision's IMAGENET1K_V1 file from
            the torch-hub cache; never downloaded, a clear error names the expected path), or
            the path of a state-dict file (see :mod:`trainables.dml.backbones.weights`).
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown ResNet {name!r}; known: {sorted(_BUILDERS)}")
    net = _BUILDERS[name](weights=None)
    net.fc = nn.Identity()
    load_backbone_weights(net, weights, arch=name, ignore=(r"^fc\.",))
    return net
