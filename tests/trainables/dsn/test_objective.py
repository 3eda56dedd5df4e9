"""The ``dsn`` objective end to end, without Ray (``objective_runs``): what is particular to
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
from trainables.dsn import objective
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
            "train/loss_supcon",
            "train/loss_memory",
            "train/bank_fill",
            "train/bank_classes_filled",
            "train/bank_mean_norm",
            "train/memory_photos",
            "train/lr",
        ):
            assert key in metrics, key
            assert np.isfinite(metrics[key]), key
        assert not any(k.startswith("test/") for k in metrics)  # test classes untouched
        assert 0.0 < metrics["train/bank_fill"] <= 1.0
        assert metrics["train/loss_memory"] > 0.0  # the bank's loss is live
    assert [s["epoch"] for s in run.states] == [1, 2, 3]
    assert {"model", "optimizer", "bank", "epoch"} <= set(run.states[-1])


def test_beats_an_untrained_network_on_validation_map(run: Recorder) -> None:
    settings = sbir_settings(objective.DSNConfig(**DIGITS))
    data = load_sbir_data(settings, parts=("val",))
    torch.manual_seed(DIGITS["seed"])  # the initialisation train() starts from
    untrained = objective.build_model(DIGITS)
    before = retrieval_metrics(
        untrained, data.val, prefix="val/", device=torch.device("cpu"), batch_size=256
    )["val/map_all"]
    after = run.metrics[-1]["val/map_all"]
    assert after > before + 0.01, (before, after)


def test_resume_continues_from_the_checkpoint(
    run: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    resumed = Recorder(restore=run.states[1]).install(monkeypatch)
    objective.train(DIGITS)
    assert [s["epoch"] for s in resumed.states] == [3]  # epoch 3 only
    # same seed, same batches and views: the resumed epoch 3 is the uninterrupted one
    for key, value in run.states[2]["model"].items():
        torch.testing.assert_close(resumed.states[0]["model"][key], value, msg=key)
    for key, value in run.states[2]["bank"].items():
        torch.testing.assert_close(resumed.states[0]["bank"][key], value, msg=key)
    assert resumed.metrics[0]["val/map_all"] == pytest.approx(run.metrics[2]["val/map_all"])


def test_build_model_rebuilds_the_checkpointed_network(run: Recorder) -> None:
    model = objective.build_model(DIGITS)
    model.load_state_dict(run.states[-1]["model"])
    images = torch.rand(5, 1, 16, 16)
    out = model(images, torch.tensor([0, 1, 0, 1, 1]))
    assert out.shape == (5, objective.DSNConfig().embedding_size)


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
    monkeypatch.delenv("DMLSWEEP_SKETCHY_ROOT", raising=False)
    Recorder().install(monkeypatch)
    config = {"dataset": "sketchy", "image_size": 16, "backbone": "small_cnn"}
    for call in (
        lambda: objective.train(config),
        lambda: objective.evaluate_test(objective.build_model(config), config),
    ):
        with pytest.raises(LayoutError) as err:
            call()
        message = str(err.value)
        assert "data_root" in message and "DMLSWEEP_SKETCHY_ROOT" in message
        assert "cname_cid.txt" in message and "sketch_tx_000000000000_ready" in message


def test_kd_teacher_is_refused_on_the_digits() -> None:
    with pytest.raises(ConfigError, match="not available on the digits"):
        objective.train({"kd_teacher": "imagenet"})


# ---------------------------------------------------------------- a tiny SAKE-layout Sketchy


def test_trains_on_a_sake_layout_benchmark_with_distillation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchvision.models import resnet50

    root = write_sketchy(tmp_path / "Sketchy", per_class=2, per_unseen=1, size=8)
    teacher = tmp_path / "teacher.pt"
    torch.save(resnet50(weights=None).state_dict(), teacher)  # weights this test creates
    monkeypatch.setenv("DMLSWEEP_SKETCHY_ROOT", str(root))  # read when data_root is empty
    config = {
        "dataset": "sketchy", "max_epochs": 1, "image_size": 16, "backbone": "small_cnn",
        "num_workers": 0, "batch_size": 36, "val_fraction": 0.1, "kd_teacher": str(teacher),
        "embedding_size": 16,
    }  # fmt: skip
    recorder = Recorder().install(monkeypatch)
    objective.train(config)
    (metrics,) = recorder.metrics
    assert metrics["train/loss_kd"] > 0.0 and np.isfinite(metrics["val/map_all"])
    model = objective.build_model(config)
    model.load_state_dict(recorder.states[0]["model"])
    result = objective.evaluate_test(model, config)
    assert result["test/binary_bits"] == 16  # ITQ bits capped by the embedding size
    assert 0.0 <= result["test/map_all"] <= 1.0


def test_evaluation_conventions_reach_the_final_metrics(run: Recorder) -> None:
    """The config's ZS-SBIR conventions are the ones the test metrics are computed with."""
    from trainables.dml.metrics import sbir_binary_metrics, sbir_metrics
    from trainables.sbir.data import load_sbir_data, sbir_settings
    from trainables.sbir.evaluation import _split, encode

    model = objective.build_model(DIGITS)
    model.load_state_dict(run.states[-1]["model"])
    released = {
        **DIGITS,
        "map_at_k": "sake",
        "queries_without_relevant": "zero_precision",
        "published_itq": True,
    }
    got = objective.evaluate_test(model, released)
    cfg = objective.from_flat(objective.DSNConfig, released)
    test = load_sbir_data(sbir_settings(cfg), parts=("test",)).test
    assert test is not None
    q, ql, g, gl = _split(*encode(model, test, device=torch.device("cpu"), batch_size=256))
    options = {"map_at_k": "sake", "queries_without_relevant": "zero_precision"}
    want = sbir_metrics(q, ql, g, gl, **options)
    binary = sbir_binary_metrics(
        q, ql, g, gl, bits=64, fit_on="query", published_itq=True, **options
    )
    assert got["test/map_200"] == pytest.approx(want["map_200"], abs=1e-12)
    assert got["test/binary_map_all"] == pytest.approx(binary["map_all"], abs=1e-12)
    ours = objective.evaluate_test(model, DIGITS)
    assert ours["test/map_200"] != got["test/map_200"]  # the form of mAP@K is not a detail
