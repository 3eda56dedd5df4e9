"""The ahsml objective trains end to end (no Ray: the reporting seam is captured)."""

from __future__ import annotations

import pytest
import torch

import trainables.reporting as reporting
from trainables.ahsml import objective
from trainables.dml.evaluation import evaluate_embeddings
from trainables.dml_data import embed, load_dml_data

CONFIG = {"max_epochs": 3, "seed": 0, "noise": "symmetric", "noise_rate": 0.3, "lr": 1e-3}


@pytest.fixture
def reports(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    captured: list[dict] = []
    monkeypatch.setattr(reporting, "restore_state", lambda: None)
    monkeypatch.setattr(
        reporting,
        "report_epoch",
        lambda metrics, *, state=None: captured.append({**metrics, "_state": state}),
    )
    return captured


def test_short_trial_beats_an_untrained_network(reports: list[dict]) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    untrained = objective.build_model(CONFIG)
    data = load_dml_data(
        dataset="digits", data_root="", seed=0, noise="symmetric", noise_rate=0.3, image_size=8
    )
    before = evaluate_embeddings(
        embed(untrained, data.val),
        data.val_labels,
        curvature=objective.current_curvature(untrained),
    )
    objective.train(CONFIG)
    assert [r["_state"]["epoch"] for r in reports] == [1, 2, 3]
    last = reports[-1]
    for key in (
        "train/loss",
        "train/loss_aug",
        "train/margin_pos",
        "train/curvature",
        "val/recall_at_1",
        "val/map_at_r",
        "val/nmi",
    ):
        assert key in last
    assert abs(last["train/noise_rate"] - 0.3) < 0.01
    assert last["val/map_at_r"] > before["map_at_r"] + 0.02


def test_ablation_switches_reach_the_loss() -> None:
    model = objective.build_model({**CONFIG, "hyperbolic": False})
    assert model.hyperbolic is None
    cfg = objective.from_flat(
        objective.AHSMLConfig, {**CONFIG, "consistency": False, "adaptive_margins": False}
    )
    loss = objective.make_loss(cfg, objective.build_model(CONFIG))
    assert loss.consistency is False and loss.adaptive_margins is False


def test_missing_benchmark_fails_naming_the_layout(tmp_path) -> None:
    with pytest.raises(ValueError, match="images.txt"):
        objective.validate({"dataset": "cub200", "data_root": str(tmp_path)})


def test_circle_scale_reaches_the_circle_base_loss() -> None:
    flat = {**CONFIG, "base_loss": "circle", "circle_scale": 32.0}
    cfg = objective.from_flat(objective.AHSMLConfig, flat)
    loss = objective.make_loss(cfg, objective.build_model(flat))
    assert loss.base.scale == 32.0
    assert objective.AHSMLConfig().circle_scale == 80.0  # Circle loss' published gamma
    with pytest.raises(objective.ConfigError, match="circle_scale"):
        objective.from_flat(objective.AHSMLConfig, {**CONFIG, "circle_scale": 0.0})
