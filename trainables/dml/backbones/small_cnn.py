"""Small CNNs for the embedded 8x8 digits (methods.md section 7): fast on two CPU cores.

Both networks: ``conv3x3(C_in -> w) -> conv3x3(w -> 2w) -> maxpool 2x2 -> conv3x3(2w -> F)``,
each conv followed by BatchNorm and ReLU, then global average pooling:
``(B, C_in, H, W) -> (B, F)``. Any ``H, W >= 2`` works (8x8, 16x16, 28x28, ...).
:class:`ConditionalSmallCNN` adds a :class:`ConditionalSE` after every block, the CSE-ResNet
idea at smoke scale, so the cross-modal objectives (DSN, MATHM) run on CPU.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from trainables.dml.backbones.conditional import ConditionalBackbone, ConditionalSE, check_modality

__all__ = ["ConditionalSmallCNN", "SmallCNN"]

_POOL_AFTER = 1  # halve the resolution after the second block: 8x8 -> 4x4


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def _blocks(in_channels: int, width: int, out_features: int) -> nn.ModuleList:
    channels = [in_channels, width, 2 * width, out_features]
    return nn.ModuleList(
        nn.Sequential(
            nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),  # BN has the bias
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True)
    )


def _check_images(x: Tensor, in_channels: int) -> None:
    if x.ndim != 4 or x.shape[1] != in_channels or x.shape[2] < 2 or x.shape[3] < 2:
        raise ValueError(
            f"expected images (B, {in_channels}, H, W) with H, W >= 2, got {tuple(x.shape)}"
        )


class SmallCNN(nn.Module):
    """Three conv blocks and global average pooling: ``(B, C_in, H, W) -> (B, out_features)``.

    Args:
        in_channels: ``C_in`` (1 for the digits).
        width: ``w``, channels of the first block (the second has ``2w``).
        out_features: ``F``, channels of the last block = feature size.
    """

    def __init__(self, *, in_channels: int = 1, width: int = 32, out_features: int) -> None:
        super().__init__()
        _check_sizes(in_channels=in_channels, width=width, out_features=out_features)
        self.in_channels = in_channels
        self.out_features = out_features
        self.blocks = _blocks(in_channels, width, out_features)

    def forward(self, x: Tensor) -> Tensor:
        _check_images(x, self.in_channels)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == _POOL_AFTER:
                x = F.max_pool2d(x, 2)
        return x.mean(dim=(2, 3))  # (B, F)


class ConditionalSmallCNN(ConditionalBackbone):
    """:class:`SmallCNN` with a modality-conditioned SE after each block.

    ``block_k -> x * sigmoid(W2 [ReLU(W1 mean_hw x) ; onehot(t)])`` (see :class:`ConditionalSE`).

    Args:
        in_channels: ``C_in``.
        width: ``w``.
        out_features: ``F``.
        num_modalities: number of tags (2: 0 sketch, 1 photo).
        reduction: SE reduction ``r`` (4: the blocks are narrow).

    Shapes: ``x (B, C_in, H, W), modality (B,) int -> (B, F)``.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        width: int = 32,
        out_features: int,
        num_modalities: int = 2,
        reduction: int = 4,
    ) -> None:
        super().__init__()
        _check_sizes(in_channels=in_channels, width=width, out_features=out_features)
        self.in_channels = in_channels
        self.out_features = out_features
        self.num_modalities = num_modalities
        self.blocks = _blocks(in_channels, width, out_features)
        self.se = nn.ModuleList(
            ConditionalSE(c, num_modalities=num_modalities, reduction=reduction)
            for c in (width, 2 * width, out_features)
        )

    def forward(self, x: Tensor, modality: Tensor) -> Tensor:
        _check_images(x, self.in_channels)
        tags = check_modality(
            modality, batch_size=x.shape[0], num_modalities=self.num_modalities
        ).to(x.device)
        for i, (block, se) in enumerate(zip(self.blocks, self.se, strict=True)):
            x = se(block(x), tags)
            if i == _POOL_AFTER:
                x = F.max_pool2d(x, 2)
        return x.mean(dim=(2, 3))  # (B, F)
