"""The SBIR network: retrieval embedding from the forward, heads on the embedding."""

from __future__ import annotations

import pytest
import torch

from trainables.sbir.network import build_sbir_net, resolve_backbone


def test_forward_is_the_embedding_and_heads_read_it() -> None:
    net = build_sbir_net(backbone="small_cnn", num_classes=6, embedding_size=12,
                         classifier_bias=False, cnn_width=4, kd_classes=10)  # fmt: skip
    x, tags = torch.rand(5, 1, 16, 16), torch.tensor([0, 1, 1, 0, 1])
    z = net(x, tags)
    assert z.shape == (5, 12)
    torch.testing.assert_close(net.embed(net.features(x, tags)), z)
    torch.testing.assert_close(net.classify(z), z @ net.classifier.weight.T)  # no bias
    assert net.distill(z).shape == (5, 10)


def test_modality_changes_the_embedding() -> None:
    torch.manual_seed(0)
    net = build_sbir_net(backbone="small_cnn", num_classes=3, embedding_size=8,
                         classifier_bias=True, cnn_width=4).eval()  # fmt: skip
    x = torch.rand(2, 1, 16, 16)
    assert not torch.allclose(net(x, torch.tensor([0, 0])), net(x, torch.tensor([1, 1])))


def test_errors_name_the_problem() -> None:
    net = build_sbir_net(backbone="small_cnn", num_classes=3, embedding_size=8,
                         classifier_bias=True, cnn_width=4)  # fmt: skip
    with pytest.raises(RuntimeError, match="distillation head"):
        net.distill(torch.zeros(1, 8))
    with pytest.raises(ValueError, match="no pretrained weights"):
        build_sbir_net(backbone="small_cnn", num_classes=3, embedding_size=8,
                       classifier_bias=True, weights="imagenet")  # fmt: skip
    with pytest.raises(ValueError, match="unknown backbone"):
        resolve_backbone("vit", dataset="digits")
    assert resolve_backbone("auto", dataset="digits") == "small_cnn"
    assert resolve_backbone("auto", dataset="tuberlin") == "cse_resnet50"
