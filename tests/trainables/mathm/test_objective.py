"""The ``mathm`` objective end to end, without Ray (``objective_runs``): what is particular to
it; what every objective must do is tested by ``tests/trainables/test_contract.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from objective_runs import Recorder, one_thread, record

from trainables.config import ConfigError
from trainables.dml.data.layout_trees import write_sketchy
from trainables.dml.data.readers import LayoutError
from trainables.mathm import objective
from trainables.sbir.data import load_sbir_data, sbir_settings
from trainables.sbir.evaluation import retrieval_metrics

VAL_KEYS = ("val/map_all", "val/map_all_per_class", "val/prec_100", "val/map_200", "val/prec_200")
TEST_KEYS = (
    "test/map_all", "test/map_all_per_class", "test/prec_100", "test/map_200", "test/prec_200",
    "test/binary_map_all", "test/binary_map_all_per_class", "test/binary_prec_100",
    "test/binary_map_200", "test/binary_prec_200",
)  # fmt: skip
DIGITS = {"max_epochs": 3, "seed": 0}


@pytest.fixture(scope="module")
def run() -> Recorder:
    with one_thread():
        return record(objective.train, DIGITS)


def test_reports_every_epoch_with_train_and_validation_metrics(run: Recorder) -> None:
    assert len(run.metrics) == DIGITS["max_epochs"]
    for metrics in run.metrics:
        for key in (
            *VAL_KEYS,
            "train/loss",
            "train/loss_ce",
            "train/triplet_loss",
            "train/weight_within",
            "train/weight_cross",
            "train/weight_hybrid",
            "train/triplet_gate_cross",
            "train/triplet_loss_hybrid",
            "train/lr",
        ):
            assert key in metrics, key
            assert np.isfinite(metrics[key]), key
        assert not any(k.startswith("test/") for k in metrics)  # test classes untouched
        weights = [metrics[f"train/weight_{t}"] for t in ("within", "cross", "hybrid")]
        assert all(w > 0 for w in weights)
    # warmup (1 epoch), then cosine: the rate rises to lr, then falls
    lrs = [m["train/lr"] for m in run.metrics]
    assert lrs[0] == pytest.approx(objective.MATHMConfig().lr) and lrs[2] < lrs[1]
    assert [s["epoch"] for s in run.states] == [1, 2, 3]
    assert {"model", "optimizer", "epoch"} <= set(run.states[-1])


def test_beats_an_untrained_network_on_validation_map(run: Recorder) -> None:
    settings = sbir_settings(objective.MATHMConfig(**DIGITS))
    data = load_sbir_data(settings, parts=("val",))
    torch.manual_seed(DIGITS["seed"])  # the initialisation train() starts from
    untrained = objective.build_model(DIGITS)
    before = retrieval_metrics(
        untrained, data.val, prefix="val/", device=torch.device("cpu"), batch_size=256
    )["val/map_all"]
    after = run.metrics[-1]["val/map_all"]
    assert after > before + 0.01, (before, after)


def test_build_model_rebuilds_the_checkpointed_network(run: Recorder) -> None:
    model = objective.build_model(DIGITS)
    model.load_state_dict(run.states[-1]["model"])
    images = torch.rand(5, 1, 16, 16)
    out = model(images, torch.tensor([0, 1, 0, 1, 1]))
    assert out.shape == (5, objective.MATHMConfig().embedding_size)


def test_evaluate_test_reports_real_and_binary_metrics(run: Recorder) -> None:
    model = objective.build_model(DIGITS)
    model.load_state_dict(run.states[-1]["model"])
    result = objective.evaluate_test(model, DIGITS)
    for key in TEST_KEYS:
        assert 0.0 <= result[key] <= 1.0, key
    assert result["test/binary_bits"] == 64
    assert result["test/map_all"] != result["test/binary_map_all"]


def test_missing_data_root_names_the_setting_and_the_layout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DMLSWEEP_TUBERLIN_ROOT", raising=False)
    Recorder().install(monkeypatch)
    config = {"dataset": "tuberlin", "image_size": 16, "backbone": "small_cnn"}
    for call in (
        lambda: objective.train(config),
        lambda: objective.evaluate_test(objective.build_model(config), config),
    ):
        with pytest.raises(LayoutError) as err:
            call()
        message = str(err.value)
        assert "data_root" in message and "DMLSWEEP_TUBERLIN_ROOT" in message
        assert "cname_cid.txt" in message and "png_ready_filelist_train.txt" in message


@pytest.mark.parametrize("mode", ["ce", "within"])
def test_modes_and_published_option_run(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder().install(monkeypatch)
    objective.train({"max_epochs": 1, "iterations": 3, "mode": mode, "published": True})
    (metrics,) = recorder.metrics
    if mode == "ce":
        assert metrics["train/triplet_loss"] == 0.0
        assert metrics["train/loss"] == pytest.approx(metrics["train/loss_ce"])
    else:
        assert metrics["train/triplet_loss"] > 0.0


def test_lr_factor_warms_up_then_follows_a_cosine() -> None:
    factors = [objective.lr_factor(e, warmup_epochs=2, max_epochs=6) for e in range(1, 7)]
    expected = [0.5, 1.0] + [0.5 * (1 + np.cos(np.pi * k / 4)) for k in range(4)]
    np.testing.assert_allclose(factors, expected, rtol=0, atol=1e-12)
    assert objective.lr_factor(1, warmup_epochs=0, max_epochs=3) == 1.0


def test_classes_per_batch_below_two_is_refused() -> None:
    with pytest.raises(ConfigError, match="classes_per_batch"):
        objective.train({"classes_per_batch": 1})


# ---------------------------------------------------------------- a tiny SAKE-layout Sketchy


def test_trains_on_a_sake_layout_benchmark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_sketchy(tmp_path / "Sketchy", per_class=2, per_unseen=1, size=8)
    monkeypatch.setenv("ROOT_OF_SKETCHY", str(root))
    config = {
        "dataset": "sketchy", "data_root": "${ROOT_OF_SKETCHY}", "max_epochs": 1,
        "image_size": 16, "backbone": "small_cnn", "num_workers": 0, "val_fraction": 0.1,
        "classes_per_batch": 3, "per_modality": 2, "iterations": 3, "embedding_size": 16,
    }  # fmt: skip
    recorder = Recorder().install(monkeypatch)
    objective.train(config)
    (metrics,) = recorder.metrics
    assert metrics["train/triplet_loss"] > 0.0 and np.isfinite(metrics["val/map_all"])
    model = objective.build_model(config)
    model.load_state_dict(recorder.states[0]["model"])
    result = objective.evaluate_test(model, config)
    assert result["test/binary_bits"] == 16  # ITQ bits capped by the embedding size
    assert 0.0 <= result["test/map_all"] <= 1.0


def test_undefined_variable_in_data_root_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROOT_OF_SKETCHY", raising=False)
    Recorder().install(monkeypatch)
    config = {"dataset": "sketchy", "data_root": "${ROOT_OF_SKETCHY}", "backbone": "small_cnn"}
    with pytest.raises(LayoutError, match="undefined environment variable"):
        objective.train(config)
