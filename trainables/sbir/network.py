"""The network of the SBIR objectives: conditioned backbone -> retrieval embedding -> heads.

``x (B, C, H, W), modality (B,) -> f = backbone(x, t) (B, F) -> e = W f + b (B, D)``; ``e`` is
the retrieval embedding (compared by Euclidean distance after L2 normalisation), and the heads
read it: the classifier ``logits = W_c e (+ b_c)`` over the training classes and, for DSN's
distillation, ``kd_logits = W_k e + b_k`` over the teacher's classes. This is the layout of both
released codebases (DSN ``CSEResnetModel_KDHashing``, MATHM ``HashingModel``: the classifier on
the hashing layer's output).

Backbones: ``small_cnn`` (:class:`~trainables.dml.backbones.ConditionalSmallCNN`, the
smoke-scale digits) and ``cse_resnet50`` (:class:`~trainables.dml.backbones.CSEResNet50`, the
real benchmarks, 2048 features).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from trainables.dml.backbones import ConditionalSmallCNN, CSEResNet50, EmbeddingNet

__all__ = ["BACKBONES", "SBIRNet", "build_sbir_net", "resolve_backbone"]

Backbone = Literal["small_cnn", "cse_resnet50"]
BACKBONES: tuple[str, ...] = ("small_cnn", "cse_resnet50")


def resolve_backbone(backbone: str, *, dataset: str) -> Backbone:
    """``"auto"`` -> ``"small_cnn"`` on the digits, ``"cse_resnet50"`` on real benchmarks."""
    if backbone == "auto":
        return "small_cnn" if dataset == "digits" else "cse_resnet50"
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; known: ['auto', *{list(BACKBONES)}]")
    return backbone  # type: ignore[return-value]


class SBIRNet(nn.Module):
    """An :class:`EmbeddingNet` on a conditional backbone plus the heads on its embedding.

    ``forward(x (B, C, H, W), modality (B,)) -> (B, D)`` is the retrieval embedding, so the
    module is what a search logs and reloads. Training reads the parts:
    ``features`` (backbone, ``(B, F)``), ``embed`` (``(B, F) -> (B, D)``), ``classify``
    (``(B, D) -> (B, num_classes)``) and ``distill`` (``(B, D) -> (B, kd_classes)``).

    Args:
        net: the embedding network (its backbone takes modality tags).
        num_classes: training classes of the classifier.
        classifier_bias: whether the classifier has a bias (DSN yes, MATHM no, as released).
        kd_classes: size of the distillation head; 0 for none.
    """

    def __init__(
        self, *, net: EmbeddingNet, num_classes: int, classifier_bias: bool, kd_classes: int = 0
    ) -> None:
        super().__init__()
        if not net.conditional:
            raise ValueError("SBIRNet needs a modality-conditioned backbone (ConditionalBackbone)")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.net = net
        self.classifier = nn.Linear(net.embedding_size, num_classes, bias=classifier_bias)
        self.kd_head = nn.Linear(net.embedding_size, kd_classes) if kd_classes > 0 else None

    @property
    def embedding_size(self) -> int:
        return self.net.embedding_size

    def features(self, x: Tensor, modality: Tensor) -> Tensor:
        return self.net.features(x, modality)

    def embed(self, features: Tensor) -> Tensor:
        return self.net.embed(features)

    def classify(self, embedding: Tensor) -> Tensor:
        return self.classifier(embedding)

    def distill(self, embedding: Tensor) -> Tensor:
        if self.kd_head is None:
            raise RuntimeError("this SBIRNet was built without a distillation head (kd_classes=0)")
        return self.kd_head(embedding)

    def forward(self, x: Tensor, modality: Tensor) -> Tensor:
        return self.net(x, modality)


def build_sbir_net(
    *,
    backbone: Backbone,
    num_classes: int,
    embedding_size: int,
    classifier_bias: bool,
    in_channels: int = 1,
    cnn_width: int = 16,
    weights: str | None = None,
    kd_classes: int = 0,
) -> SBIRNet:
    """Build :class:`SBIRNet`.

    Args:
        backbone: ``"small_cnn"`` (``in_channels``, width ``cnn_width``, ``4 cnn_width``
            features) or ``"cse_resnet50"`` (RGB, 2048 features).
        num_classes: training classes.
        embedding_size: ``D``.
        classifier_bias: see :class:`SBIRNet`.
        in_channels: image channels of the small CNN.
        cnn_width: width of the small CNN.
        weights: CSE-ResNet-50 initial weights (``None``, ``"imagenet"`` or a state-dict path;
            see :class:`~trainables.dml.backbones.CSEResNet50`); must be ``None`` for the small CNN.
        kd_classes: size of the distillation head (0: none).
    """
    body: nn.Module
    if backbone == "small_cnn":
        if weights is not None:
            raise ValueError("the small CNN has no pretrained weights; set weights to None")
        body = ConditionalSmallCNN(
            in_channels=in_channels, width=cnn_width, out_features=4 * cnn_width
        )
        features = 4 * cnn_width
    elif backbone == "cse_resnet50":
        body = CSEResNet50(weights=weights)
        features = CSEResNet50.out_features
    else:
        raise ValueError(f"unknown backbone {backbone!r}; known: {list(BACKBONES)}")
    net = EmbeddingNet(backbone=body, in_features=features, embedding_size=embedding_size)
    return SBIRNet(
        net=net, num_classes=num_classes, classifier_bias=classifier_bias, kd_classes=kd_classes
    )
