"""The objective contract (trainables.objective), tested on every registered objective.

Parametrised from :data:`trainables.registry.OBJECTIVES` at collection time, as Optuna's
``StorageTestCase`` is over its storages: an objective added to the registry (even one
registered only by a test, ``test_a_newly_registered_objective_is_tested``) is tested here.
Each objective runs at its defaults (the embedded smoke-scale data) for ``EPOCHS`` epochs.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from objective_runs import Recorder, one_thread, record

from trainables.config import ConfigError
from trainables.objective import NOT_RETRIED_KEY, Objective, is_not_retried
from trainables.registry import OBJECTIVES, load_objective
from trainables.reporting import capture_reports, refusing_retries

EPOCHS = 2


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "name" in metafunc.fixturenames:
        metafunc.parametrize("name", sorted(OBJECTIVES), scope="module")


@pytest.fixture(scope="module")
def objective(name: str) -> Objective:
    return load_objective(name)


@pytest.fixture(scope="module")
def config(name: str) -> dict[str, Any]:
    return {"max_epochs": EPOCHS, "seed": 0, "objective": name}


@pytest.fixture(scope="module")
def run(objective: Objective, config: dict[str, Any]) -> Iterator[Recorder]:
    with one_thread():
        yield record(objective.train, config)


def test_implements_the_protocol(objective: Objective) -> None:
    assert isinstance(objective, Objective)
    assert dataclasses.is_dataclass(objective.CONFIG)
    assert objective.CONFIG.__dataclass_params__.frozen  # type: ignore[attr-defined]
    fields = {f.name for f in dataclasses.fields(objective.CONFIG)}
    assert {"max_epochs", "seed"} <= fields  # the platform sets both
    assert objective.METRICS and set(objective.METRICS.values()) <= {"max", "min"}
    assert all("/" in name for name in objective.METRICS)  # namespaced: val/..., train/...


def test_validate_accepts_the_defaults(objective: Objective, config: dict[str, Any]) -> None:
    objective.validate(config)


@pytest.mark.parametrize(
    "bad", [{"no_such_setting": 1}, {"max_epochs": "three"}, {"seed": 0.5}], ids=str
)
def test_validate_refuses_a_bad_setting_as_not_retried(
    objective: Objective, config: dict[str, Any], bad: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError) as raised:
        objective.validate({**config, **bad})
    (key,) = bad
    assert key in str(raised.value)  # names the setting
    assert is_not_retried(raised.value)


def test_every_epoch_reports_the_declared_metrics(objective: Objective, run: Recorder) -> None:
    assert len(run.metrics) == EPOCHS
    for epoch, metrics in enumerate(run.metrics, start=1):
        for key in objective.METRICS:
            assert key in metrics, (epoch, key)
            assert isinstance(metrics[key], float) and math.isfinite(metrics[key]), (epoch, key)
        assert not any(key.startswith("test/") for key in metrics)  # test classes untouched
        for key, value in metrics.items():  # Tune and MLflow take numbers or descriptions
            assert isinstance(value, int | float | str), key
    assert [state["epoch"] for state in run.states] == list(range(1, EPOCHS + 1))


def test_resume_continues_where_the_checkpoint_left_off(
    objective: Objective, config: dict[str, Any], run: Recorder
) -> None:
    with one_thread():
        resumed = record(objective.train, config, restore=run.states[-2])
    assert [state["epoch"] for state in resumed.states] == [EPOCHS]  # the last epoch only
    # same seed, same batches: the resumed last epoch is the uninterrupted one
    assert resumed.metrics[0].keys() == run.metrics[-1].keys()
    for key in objective.METRICS:
        assert resumed.metrics[0][key] == pytest.approx(run.metrics[-1][key], rel=1e-5), key
    model = resumed.states[0].get("model")
    if isinstance(model, dict):
        for key, value in run.states[-1]["model"].items():
            torch.testing.assert_close(model[key], value, msg=key)


def test_build_model_loads_the_checkpoint_and_evaluate_test_reads_the_test_classes(
    objective: Objective, config: dict[str, Any], run: Recorder
) -> None:
    model = objective.build_model(config)
    state = run.states[-1]
    if "model" in state:
        model.load_state_dict(state["model"])
    metrics = objective.evaluate_test(model, config)
    assert metrics
    for key, value in metrics.items():
        assert key.startswith("test/"), key
        assert isinstance(value, float) and math.isfinite(value), key


def test_a_config_error_in_train_is_not_retried(
    objective: Objective, config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the platform hands Tune reports the error as not retried, then raises it."""
    reports: list[dict[str, Any]] = []
    import ray.tune

    monkeypatch.setattr(ray.tune, "report", lambda metrics, **_: reports.append(metrics))
    with pytest.raises(ConfigError):
        refusing_retries(objective.train)({**config, "no_such_setting": 1})
    assert len(reports) == 1 and "no_such_setting" in reports[0][NOT_RETRIED_KEY]
    with capture_reports(), pytest.raises(ConfigError):  # no Tune: nothing reported
        refusing_retries(objective.train)({**config, "no_such_setting": 1})
    assert len(reports) == 1


def test_config_fields_have_types_the_platform_can_check(objective: Objective) -> None:
    """from_flat checks values against these hints: each is a plain type or a Literal."""
    for name, hint in typing.get_type_hints(objective.CONFIG).items():
        plain = hint in (int, float, bool, str)
        literal = typing.get_origin(hint) is typing.Literal
        assert plain or literal, (name, hint)


TOY = '''
"""A toy objective registered by this test only."""
from dataclasses import dataclass
from typing import Any

from trainables.config import from_flat

BROKEN = {broken}


@dataclass(frozen=True)
class ToyConfig:
    max_epochs: int = 2
    seed: int = 0
    x: float = 0.5


CONFIG = ToyConfig
METRICS = {{"val/score": "max", **({{"val/never_reported": "max"}} if BROKEN else {{}})}}


def validate(settings: dict[str, Any]) -> None:
    from_flat(ToyConfig, settings)


def train(config: dict[str, Any]) -> None:
    from trainables.reporting import report_epoch, restore_state

    cfg = from_flat(ToyConfig, config)
    state = restore_state() or {{"epoch": 0}}
    for epoch in range(state["epoch"] + 1, cfg.max_epochs + 1):
        report_epoch({{"val/score": -((cfg.x - 0.3) ** 2) - 1.0 / epoch}}, state={{"epoch": epoch}})


def build_model(config: dict[str, Any]) -> Any:
    import torch

    return torch.nn.Linear(1, 1)


def evaluate_test(model: Any, config: dict[str, Any]) -> dict[str, float]:
    return {{"test/score": -((from_flat(ToyConfig, config).x - 0.3) ** 2)}}
'''


@pytest.mark.parametrize("broken", [False, True])
def test_a_newly_registered_objective_is_tested(pytester: pytest.Pytester, broken: bool) -> None:
    """Registered in a conftest (nowhere else), a toy objective gets this whole suite; one that
    declares a metric it never reports fails it."""
    pytester.makepyfile(toy_objective=TOY.format(broken=broken))
    pytester.makeconftest(
        "from trainables.registry import OBJECTIVES\nOBJECTIVES['toy'] = 'toy_objective'\n"
    )
    here = Path(__file__).parent
    pytester.makepyfile(test_contract_copy=Path(__file__).read_text(encoding="utf-8"))
    (pytester.path / "objective_runs.py").write_text(
        (here.parent / "objective_runs.py").read_text(encoding="utf-8"), encoding="utf-8"
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-k", "toy and not newly_registered", "-q"
    )
    outcomes = result.parseoutcomes()
    if broken:
        assert outcomes.get("failed", 0) >= 1
        result.stdout.fnmatch_lines(["*val/never_reported*"])
    else:
        assert outcomes.get("failed", 0) == 0 and outcomes.get("passed", 0) >= 8, outcomes
