"""Backbones and the embedding network (methods.md sections 0, 5, 6).

- :class:`SmallCNN` / :class:`ConditionalSmallCNN`: the smoke-scale CNNs for the 8x8 digits.
- :func:`resnet_backbone`: torchvision ResNet-18/50 without ``fc`` (512 / 2048 features).
- :class:`CSEResNet50`: the modality-conditioned SE-ResNet-50 of DSN / MATHM.
- :class:`EmbeddingNet`: backbone -> linear embedding -> optional hyperbolic head.
- weights: ``None`` / ``"imagenet"`` (torch-hub cache, never downloaded) / a state-dict path.
- :func:`autocast_context`: AMP on CUDA, no-op elsewhere.

Example::

    from trainables.dml.backbones import CSEResNet50, EmbeddingNet

    net = EmbeddingNet(backbone=CSEResNet50(weights="imagenet"), in_features=2048,
                       embedding_size=512, hyperbolic=None)
    z = net(images, modality)                  # modality: (B,) 0 sketch / 1 photo
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainables.dml.backbones.amp import amp_dtype, autocast_context
from trainables.dml.backbones.conditional import ConditionalBackbone, ConditionalSE, check_modality
from trainables.dml.backbones.embedding import EmbeddingNet
from trainables.dml.backbones.small_cnn import ConditionalSmallCNN, SmallCNN
from trainables.lazy import lazy_attributes

if TYPE_CHECKING:
    from trainables.dml.backbones.cse_resnet import CSEBottleneck, CSEResNet50
    from trainables.dml.backbones.resnet import RESNET_FEATURES, resnet_backbone
    from trainables.dml.backbones.weights import (
        IMAGENET,
        IMAGENET_URLS,
        LoadedWeights,
        WeightsSpec,
        imagenet_weights_path,
        load_backbone_weights,
        load_state_dict_into,
        read_state_dict,
    )

# torchvision's modules: imported on first use (see trainables.lazy).
__getattr__ = lazy_attributes(
    __name__,
    {
        "cse_resnet": ("CSEBottleneck", "CSEResNet50"),
        "resnet": ("RESNET_FEATURES", "resnet_backbone"),
        "weights": (
            "IMAGENET",
            "IMAGENET_URLS",
            "LoadedWeights",
            "WeightsSpec",
            "imagenet_weights_path",
            "load_backbone_weights",
            "load_state_dict_into",
            "read_state_dict",
        ),
    },
)

__all__ = [
    "IMAGENET",
    "IMAGENET_URLS",
    "RESNET_FEATURES",
    "CSEBottleneck",
    "CSEResNet50",
    "ConditionalBackbone",
    "ConditionalSE",
    "ConditionalSmallCNN",
    "EmbeddingNet",
    "LoadedWeights",
    "SmallCNN",
    "WeightsSpec",
    "amp_dtype",
    "autocast_context",
    "check_modality",
    "imagenet_weights_path",
    "load_backbone_weights",
    "load_state_dict_into",
    "read_state_dict",
    "resnet_backbone",
]
