"""CSE-ResNet-50: the modality-conditioned SE-ResNet-50 of SAKE / DSN / MATHM.

Every bottleneck of a ResNet-50 gets a :class:`ConditionalSE` on its residual branch, whose
excitation also receives the modality tag (0 sketch, 1 photo):
``y = ReLU(CSE(bn3(conv3(...)), t) + shortcut(x))`` [code: haowang1992/DSN ``senet.py``].

Differences from the published code [ours]: the layout is torchvision's ResNet-50 (stride in
the 3x3 conv, ``conv1/bn1/layer1..4`` names) rather than Cadene's Caffe-style SE-ResNet-50,
so torchvision ImageNet ResNet-50 weights load directly and the SE layers start fresh; the
published models start from Cadene's ImageNet SE-ResNet-50, SE layers included.
"""

from __future__ import annotations

from torch import Tensor, nn
from torchvision.models import resnet50
from torchvision.models.resnet import Bottleneck

from trainables.dml.backbones.conditional import ConditionalBackbone, ConditionalSE, check_modality
from trainables.dml.backbones.weights import LoadedWeights, WeightsSpec, load_backbone_weights

__all__ = ["CSEBottleneck", "CSEResNet50"]


class CSEBottleneck(nn.Module):
    """A torchvision :class:`Bottleneck` (its layers reused, same parameter names) with a
    :class:`ConditionalSE` named ``se`` before the residual addition.

    Shapes: ``x (B, C_in, H, W), modality (B,) int64 -> (B, 4 planes, H/s, W/s)``.
    """

    def __init__(self, block: Bottleneck, *, num_modalities: int, reduction: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = block.conv1, block.bn1
        self.conv2, self.bn2 = block.conv2, block.bn2
        self.conv3, self.bn3 = block.conv3, block.bn3
        self.relu = block.relu
        self.downsample = block.downsample
        self.se = ConditionalSE(
            block.conv3.out_channels, num_modalities=num_modalities, reduction=reduction
        )

    def forward(self, x: Tensor, modality: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.se(out, modality) + shortcut)


class CSEResNet50(ConditionalBackbone):
    """Modality-conditioned SE-ResNet-50 feature extractor.

    ``x (B, 3, H, W), modality (B,) int -> (B, 2048)``: stem, ``layer1..4`` of
    :class:`CSEBottleneck`, global average pooling.

    Args:
        weights: ``None`` (random init), ``"imagenet"`` (torchvision's ResNet-50 IMAGENET1K_V1
            from the torch-hub cache; never downloaded, a clear error names the expected
            path), or the path of a state dict: a torchvision ResNet-50 one (``fc.*`` dropped,
            SE layers left fresh) or a CSEResNet50 one (SE layers loaded too).
        num_modalities: number of tags (2: 0 sketch, 1 photo).
        reduction: SE reduction ratio (16, as SE-ResNet).

    Attributes:
        loaded_weights: what was loaded (:class:`LoadedWeights`), ``None`` for random init.
    """

    out_features = 2048

    def __init__(
        self, *, weights: WeightsSpec = None, num_modalities: int = 2, reduction: int = 16
    ) -> None:
        super().__init__()
        self.num_modalities = num_modalities
        net = resnet50(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        # ModuleList, not Sequential: every block takes the tags too; names stay layerK.i.*
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            nn.ModuleList(
                CSEBottleneck(b, num_modalities=num_modalities, reduction=reduction) for b in layer
            )
            for layer in (net.layer1, net.layer2, net.layer3, net.layer4)
        )
        self.loaded_weights: LoadedWeights | None = load_backbone_weights(
            self, weights, arch="resnet50", ignore=(r"^fc\.",), fresh=(r"\.se\.",)
        )

    def forward(self, x: Tensor, modality: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got {tuple(x.shape)}")
        tags = check_modality(
            modality, batch_size=x.shape[0], num_modalities=self.num_modalities
        ).to(x.device)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                x = block(x, tags)
        return x.mean(dim=(2, 3))  # (B, 2048)
