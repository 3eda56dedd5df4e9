"""Cross-validation as one Tune trial: per-fold results are running means over the folds done,
plus each fold's own final-epoch value; a retried trial resumes at the next fold."""

from __future__ import annotations

import math
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import trainables.reporting as reporting
from trainables import baseline
from trainables.cross_validation import PROGRESS_KEY, fold_summary, make_trainable, train_folds

EPOCHS = 3


def fake_train(config: dict[str, Any]) -> None:
    """Reports ``EPOCHS`` epochs of known numbers; fold 1 alone reports ``val/extra``."""
    fold = config["fold"]
    assert reporting.restore_state() is None  # each fold starts fresh
    for epoch in range(1, EPOCHS + 1):
        metrics = {"val/score": 10.0 * fold + epoch, "train/loss": 1.0 / (fold + epoch)}
        if fold == 1:
            metrics["val/extra"] = 0.5 * epoch
        if config.get("nan_in_fold") == fold:
            metrics["train/loss"] = math.nan
        reporting.report_epoch(metrics, state={"epoch": epoch})


class TuneRecorder:
    """Stands in for ``ray.tune.report`` / ``get_checkpoint`` (and the node id lookup, which
    would start a local Ray instance outside a trial)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, checkpoint: Any = None) -> None:
        import ray
        from ray import tune

        self.results: list[dict[str, Any]] = []
        self.states: list[dict[str, Any]] = []
        monkeypatch.setattr(tune, "report", self.report)
        monkeypatch.setattr(tune, "get_checkpoint", lambda: checkpoint)
        node = types.SimpleNamespace(get_node_id=lambda: "node-0")
        monkeypatch.setattr(ray, "get_runtime_context", lambda: node)

    def report(self, metrics: dict[str, Any], *, checkpoint: Any = None) -> None:
        self.results.append(dict(metrics))
        assert checkpoint is not None
        with checkpoint.as_directory() as directory:
            self.states.append(reporting.load_state(Path(directory)))


def expected(finals: list[dict[str, float]]) -> dict[str, float]:
    """The running mean and the per-fold keys, computed directly."""
    out: dict[str, float] = {}
    for key in {k for f in finals for k in f}:
        out[key] = float(np.mean([f[key] for f in finals if key in f]))
    for j, final in enumerate(finals):
        out.update({f"fold/{j}/{k}": v for k, v in final.items()})
    return out


def last_epoch(fold: int) -> dict[str, float]:
    out = {"val/score": 10.0 * fold + EPOCHS, "train/loss": 1.0 / (fold + EPOCHS)}
    if fold == 1:
        out["val/extra"] = 0.5 * EPOCHS
    return out


def test_one_result_per_fold_with_running_means(monkeypatch: pytest.MonkeyPatch) -> None:
    tune = TuneRecorder(monkeypatch)
    train_folds(fake_train, {"folds": 3, "seed": 0})
    assert len(tune.results) == 3
    for i, result in enumerate(tune.results):
        want = expected([last_epoch(j) for j in range(i + 1)])
        assert result.pop("node_id") == "node-0"
        assert result.pop("cv/folds_done") == i + 1 and result.pop("cv/folds") == 3
        assert result.keys() == want.keys()
        for key, value in want.items():
            assert result[key] == pytest.approx(value, abs=1e-12), key
    assert tune.results[-1]["val/score"] == pytest.approx((3 + 13 + 23) / 3)
    assert tune.results[-1]["val/extra"] == pytest.approx(1.5)  # only fold 1 reports it
    # the checkpoint holds the finished folds' results, no network
    assert tune.states[-1] == {PROGRESS_KEY: [last_epoch(j) for j in range(3)]}


def test_a_retried_trial_resumes_at_the_next_fold(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ray import tune as ray_tune

    torch.save({PROGRESS_KEY: [last_epoch(0), last_epoch(1)]}, tmp_path / reporting.STATE_FILE)
    tune = TuneRecorder(monkeypatch, checkpoint=ray_tune.Checkpoint.from_directory(tmp_path))
    folds_run: list[int] = []

    def train(config: dict[str, Any]) -> None:
        folds_run.append(config["fold"])
        fake_train(config)

    train_folds(train, {"folds": 3})
    assert folds_run == [2]
    assert len(tune.results) == 1
    assert tune.results[0]["cv/folds_done"] == 3
    assert tune.results[0]["val/score"] == pytest.approx(13.0)


def test_a_non_finite_metric_in_a_fold_fails_the_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    tune = TuneRecorder(monkeypatch)
    with pytest.raises(FloatingPointError, match="train/loss"):
        train_folds(fake_train, {"folds": 3, "nan_in_fold": 1})
    assert len(tune.results) == 1  # fold 0 was reported, fold 1 failed


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="folds'] >= 2"):
        train_folds(fake_train, {"seed": 0})
    with pytest.raises(ValueError, match="folds'] >= 2"):
        train_folds(fake_train, {"folds": 1})
    with pytest.raises(ValueError, match="must not give it"):
        train_folds(fake_train, {"folds": 3, "fold": 0})


def test_summary_leaves_non_numbers_out() -> None:
    out = fold_summary([{"a": 1.0, "tag": "x", "flag": True}, {"a": 3}], folds=4)
    assert out == {"a": 2.0, "fold/0/a": 1.0, "fold/1/a": 3.0, "cv/folds_done": 2.0,
                   "cv/folds": 4.0}  # fmt: skip


def test_summary_keeps_where_the_latest_fold_ran() -> None:
    finals = [{"a": 1.0, "runtime/device": "cuda:0"}, {"a": 3.0, "runtime/device": "cpu"}]
    out = fold_summary(finals, folds=2)
    assert out["runtime/device"] == "cpu" and out["a"] == 2.0  # tracked as the run's tag


def test_make_trainable_chooses_by_the_number_of_folds(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("fake_objective")
    module.train = fake_train  # type: ignore[attr-defined]
    assert make_trainable(module, 1) is fake_train
    assert make_trainable(module, 0) is fake_train
    trainable = make_trainable(module, 2)
    assert trainable is not fake_train
    with reporting.capture_reports() as results:
        trainable({"seed": 0})
    assert [r["cv/folds_done"] for r in results] == [1.0, 2.0]
    assert results[-1]["val/score"] == pytest.approx((3 + 13) / 2)
    with pytest.raises(ValueError, match="says folds=3"):
        trainable({"folds": 3})
    with pytest.raises(ValueError, match="folds must be an int"):
        make_trainable(module, 2.5)  # type: ignore[arg-type]


def test_baseline_with_three_folds_gives_a_finite_mean() -> None:
    torch.set_num_threads(1)
    # 3 folds of the 8 digits fit on 5 or 6 classes: batches of 5 classes x 10 (default 6 x 10)
    config = {"max_epochs": 1, "seed": 0, "cnn_width": 8, "embedding_size": 16, "batch_size": 50}
    with reporting.capture_reports() as results:
        make_trainable(baseline, 3)(config)
    assert len(results) == 3
    final = results[-1]
    per_fold = [final[f"fold/{j}/val/recall_at_1"] for j in range(3)]
    assert all(0.0 < r <= 1.0 for r in per_fold)
    assert final["val/recall_at_1"] == pytest.approx(np.mean(per_fold), abs=1e-12)
    assert math.isfinite(final["val/map_at_r"]) and math.isfinite(final["train/loss"])
    assert len(set(per_fold)) > 1  # three different validation sets
