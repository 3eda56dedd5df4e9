from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainables.dml.backbones.embedding import EmbeddingNet
from trainables.dml.backbones.small_cnn import ConditionalSmallCNN, SmallCNN
from trainables.dml.hyperbolic import HyperbolicHead

CURVATURE = 0.7


def _net(*, hyperbolic: nn.Module | None = None, conditional: bool = False) -> EmbeddingNet:
    torch.manual_seed(0)
    cls = ConditionalSmallCNN if conditional else SmallCNN
    backbone = cls(width=8, out_features=16)
    return EmbeddingNet(
        backbone=backbone, in_features=16, embedding_size=6, hyperbolic=hyperbolic
    ).eval()


def test_euclidean_output_is_the_raw_linear_embedding():
    net = _net()
    x = torch.randn(5, 1, 8, 8)
    z = net(x)
    assert z.shape == (5, 6) and z.dtype == torch.float32
    torch.testing.assert_close(z, net.embedding(net.backbone(x)))
    assert (z.norm(dim=1) - 1).abs().max() > 1e-3  # not L2-normalised


def test_hyperbolic_output_lies_inside_the_ball():
    head = HyperbolicHead(curvature=CURVATURE)
    net = _net(hyperbolic=head)
    with torch.no_grad():
        net.embedding.weight.mul_(100.0)  # push raw features far out: the head must bound them
    x = torch.randn(5, 1, 8, 8)
    z = net(x)
    assert z.shape == (5, 6)
    assert z.norm(dim=1).max() < 1 / math.sqrt(CURVATURE)
    torch.testing.assert_close(z, head(net.embedding(net.backbone(x))))


def test_head_runs_in_float32_outside_autocast():
    seen = {}
    head = HyperbolicHead(curvature=CURVATURE, clip_radius=2.3)

    def record(module, args):
        seen["head_input"] = args[0].dtype
        seen["autocast_in_head"] = torch.is_autocast_enabled("cpu")

    head.register_forward_pre_hook(record)
    net = _net(hyperbolic=head)
    net.embedding.register_forward_hook(lambda m, a, out: seen.update(linear=out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = net(torch.randn(4, 1, 8, 8))
    assert seen["linear"] == torch.bfloat16  # autocast really was on for the network
    assert seen["head_input"] == torch.float32
    assert seen["autocast_in_head"] is False
    assert z.dtype == torch.float32
    assert z.norm(dim=1).max() < 1 / math.sqrt(CURVATURE)


def test_euclidean_output_is_float32_under_autocast_and_float64_stays():
    net = _net()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert net(torch.randn(3, 1, 8, 8)).dtype == torch.float32
    assert net.double()(torch.randn(3, 1, 8, 8, dtype=torch.float64)).dtype == torch.float64


def test_gradient_flows_through_the_head_to_backbone_and_curvature():
    net = _net(hyperbolic=HyperbolicHead(curvature=CURVATURE, learnable=True)).train()
    net(torch.randn(6, 1, 8, 8)).square().sum().backward()
    assert net.backbone.blocks[0][0].weight.grad.abs().sum() > 0
    assert net.hyperbolic.ball.isp_c.grad.abs() > 0


def test_modality_goes_to_conditional_backbones_only():
    net = _net(conditional=True)
    x = torch.randn(4, 1, 8, 8)
    sketch = net(x, torch.zeros(4, dtype=torch.long))
    photo = net(x, torch.ones(4, dtype=torch.long))
    assert sketch.shape == (4, 6) and (sketch - photo).abs().max() > 1e-5
    with pytest.raises(ValueError, match="conditioned on the modality: pass modality"):
        net(x)
    with pytest.raises(ValueError, match="takes no modality tags"):
        _net()(x, torch.zeros(4, dtype=torch.long))


def test_features_and_embed_compose_to_forward():
    net = _net(conditional=True)
    x, tags = torch.randn(3, 1, 8, 8), torch.tensor([0, 1, 0])
    feats = net.features(x, tags)
    assert feats.shape == (3, 16)
    torch.testing.assert_close(net.embed(feats), net(x, tags))


def test_wrong_in_features_is_named():
    net = EmbeddingNet(backbone=SmallCNN(width=4, out_features=8), in_features=16, embedding_size=4)
    with pytest.raises(ValueError, match=r"returned shape \(2, 8\), expected \(B, 16\)"):
        net(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="embedding_size must be an int >= 1"):
        EmbeddingNet(backbone=nn.Identity(), in_features=4, embedding_size=0)
