"""Tune's own records: result.json and progress.csv, no TensorBoard files, and no effect on
other Tuners of the process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dmlsweep.tune_records import SETTINGS, tune_environment, tune_loggers


def _trainable(config: dict) -> None:
    from ray import tune

    tune.report({"score": config["x"]})


def _run(storage: Path, name: str, callbacks: list) -> set[str]:
    """One tiny real run; the names of the files its trial wrote."""
    from ray import tune

    tuner = tune.Tuner(
        _trainable,
        param_space={"x": 1.0},
        run_config=tune.RunConfig(
            name=name, storage_path=str(storage), callbacks=callbacks, verbose=0
        ),
    )
    results = tuner.fit()
    assert results.num_errors == 0
    (trial_dir,) = [p for p in (storage / name).iterdir() if p.is_dir()]
    return {p.name for p in trial_dir.iterdir()}


def test_only_json_and_csv_inside_and_tune_defaults_outside(
    ray_address: str, tmp_path: Path
) -> None:
    with tune_environment():
        ours = _run(tmp_path, "ours", tune_loggers())
    assert {"result.json", "progress.csv"} <= ours
    assert not any(name.startswith("events.out.tfevents") for name in ours)
    # Another Tuner of the same process afterwards gets Tune's defaults, TensorBoard's too.
    theirs = _run(tmp_path, "theirs", [])
    assert any(name.startswith("events.out.tfevents") for name in theirs)


@pytest.mark.parametrize("before", [None, "0"])
def test_the_environment_is_restored(before: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTINGS:
        if before is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, before)
    with pytest.raises(RuntimeError), tune_environment():
        assert {name: os.environ[name] for name in SETTINGS} == SETTINGS
        raise RuntimeError("a failed run restores it too")
    assert {name: os.environ.get(name) for name in SETTINGS} == dict.fromkeys(SETTINGS, before)
