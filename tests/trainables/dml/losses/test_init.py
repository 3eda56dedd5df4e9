"""The loss registry: names, hyperparameters, errors."""

from __future__ import annotations

import pytest
from pytorch_metric_learning.distances import CosineSimilarity

from trainables.dml.distances import PoincareSimilarity
from trainables.dml.losses import (
    LOSSES,
    BatchHardTripletLoss,
    ContrastiveLoss,
    HypPCELoss,
    MultiSimilarityLoss,
    NTXentLoss,
    SupConLoss,
    loss_hyperparameters,
    make_loss,
)


def test_registry_names():
    assert LOSSES == {
        "contrastive": ContrastiveLoss,
        "triplet": BatchHardTripletLoss,
        "ms": MultiSimilarityLoss,
        "supcon": SupConLoss,
        "ntxent": NTXentLoss,
        "hyp_pce": HypPCELoss,
    }


def test_hyperparameters_and_defaults():
    assert loss_hyperparameters("ms") == {"alpha": 2.0, "beta": 50.0, "base": 0.5, "epsilon": 0.1}
    assert loss_hyperparameters("hyp_pce") == {"tau": 0.2}
    assert loss_hyperparameters("triplet") == {"margin": 0.2}
    assert loss_hyperparameters("contrastive") == {"pos_margin": None, "neg_margin": None}


def test_make_loss_passes_hyperparameters_and_distance():
    dist = PoincareSimilarity(curvature=0.2, tau=0.3)
    loss_fn = make_loss("ms", distance=dist, beta=40.0)
    assert isinstance(loss_fn, MultiSimilarityLoss)
    assert loss_fn.beta == 40.0 and loss_fn.distance is dist
    assert loss_fn.loss_fn.distance is dist and loss_fn.miner.distance is dist
    assert isinstance(make_loss("supcon").distance, CosineSimilarity)


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="unknown loss 'circle'.*'contrastive'.*'triplet'"):
        make_loss("circle")


def test_unknown_hyperparameter_is_named():
    with pytest.raises(ValueError, match=r"no hyperparameter\(s\) \['temperature'\].*'tau'"):
        make_loss("supcon", temperature=0.1)


def test_distance_must_be_a_pml_distance():
    with pytest.raises(TypeError, match="BaseDistance"):
        make_loss("triplet", distance="euclidean")
