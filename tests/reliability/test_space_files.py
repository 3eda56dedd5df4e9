"""Space files are read strictly and at bounded cost, and a search runs as written or not at all.

Generated from the schema (hypothesis): every document is either planned as written or refused
with a ``SpaceError``/``DmlsweepError`` naming the file, never another exception. For every
shipped space and every accepted generated one, the values Optuna records for a trial are the
values that trial's config holds and its objective's config takes.
"""

from __future__ import annotations

import dataclasses
import time
import typing
from functools import partial
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dmlsweep.cli import main
from dmlsweep.errors import DmlsweepError, SpaceError
from dmlsweep.optuna_search import PruneAwareOptunaSearch
from dmlsweep.spaces import MAX_SPACE_BYTES, SearchSpace, list_spaces, load_space, read_space_file
from dmlsweep.sweep import SweepRequest, build_plan
from dmlsweep.sweep.run import trial_config
from trainables.config import from_flat
from trainables.registry import load_objective

FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def write(tmp: Path, text: str | bytes, name: str = "space.yaml") -> Path:
    path = tmp / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def dry_run(
    path: Path, tmp: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    code = main(["--space", str(path), "--dry-run", "--runs-dir", str(tmp / "runs"), *args])
    return code, capsys.readouterr().err


VALID = """objective: quadratic
metric: val/score
mode: max
settings: {max_epochs: 2}
parameters:
  x: {type: float, low: -1.0, high: 1.0}
"""


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (VALID + "  x: {type: float, low: 0.0, high: 0.5}\n", ["duplicate key 'x'"]),
        (VALID + "mode: min\n", ["duplicate key 'mode'"]),
        (VALID.replace("{max_epochs: 2}", "{max_epochs: 2, max_epochs: 3}"), ["duplicate key"]),
        (VALID.encode() + b"description: caf\xe9\n", ["not UTF-8", "byte"]),
        (b"\xff\xfe" + VALID.encode("utf-16-le"), ["not UTF-8"]),
        (VALID + "description: [a, [b]]\n", ["description", "text"]),
        (VALID.replace("{max_epochs: 2}", "{max_epochs: 2, noise: {a: 1}}"), ["settings.noise"]),
        (VALID.replace("  x:", "  1:"), ["parameters.1", "identifier"]),
        (VALID + "  y: {type: float, low: 0, high: 1, when: {x: [[1]]}}\n", ["when.x"]),
    ],
)
def test_a_file_read_strictly_is_refused_naming_it(
    text: str | bytes, words: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, text)
    code, err = dry_run(path, tmp_path, capsys)
    assert code == 2 and str(path) in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_a_large_file_is_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "# " + "x" * MAX_SPACE_BYTES + "\n")
    with pytest.raises(SpaceError, match="larger than 64 KiB"):
        read_space_file(path)


@pytest.mark.parametrize("levels", [9, 30])
def test_aliases_that_would_expand_past_the_bound_are_refused_at_once(
    tmp_path: Path, levels: int
) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    path = write(tmp_path, VALID + "\n".join(lines).replace("a0:", "description: x\nz0:") + "\n")
    started = time.monotonic()
    with pytest.raises(SpaceError, match="expands to more than"):
        read_space_file(path)
    assert time.monotonic() - started < 5


def test_a_modest_alias_is_still_allowed(tmp_path: Path) -> None:
    text = VALID.replace(
        "  x: {type: float, low: -1.0, high: 1.0}",
        "  x: &r {type: float, low: -1.0, high: 1.0}\n  y: *r",
    )
    space = load_space(str(write(tmp_path, text)))
    assert [p.name for p in space.parameters] == ["x", "y"]


@pytest.mark.parametrize(
    ("parameter", "words"),
    [
        ("seed: {type: int, low: 0, high: 9}", ["seed is set by --seed"]),
        ("max_epochs: {type: int, low: 1, high: 9}", ["max_epochs is set by --max-epochs"]),
        ("fail_at_epoch: {type: float, low: 0.0, high: 3.0}", ["holds an integer", "type: int"]),
        ("fail_at_epoch: {type: int, low: 0, high: 3, step: 5}", ["only one value"]),
        ("noise: {type: float, low: 0.0, high: 0.1, step: 0.5}", ["only one value"]),
        ("noise: {type: categorical, choices: [0.1]}", ["only one value"]),
        (
            "noise: {type: float, low: 0.0, high: 0.1, when: {x: 5.0}}",
            ["when.x", "never taken by x"],
        ),
    ],
)
def test_a_search_that_cannot_happen_as_written_is_refused(
    parameter: str, words: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # max_epochs searched and not fixed in settings: --max-epochs gives the plan's
    path = write(tmp_path, VALID.replace("{max_epochs: 2}", "{}") + f"  {parameter}\n")
    code, err = dry_run(path, tmp_path, capsys, "--max-epochs", "2")
    assert code == 2, err
    for word in words:
        assert word in err, err


# --- generated from the schema -----------------------------------------------------------------
QUADRATIC_FIELDS = ["x", "y", "noise", "seconds_per_epoch", "fail_at_epoch", "seed", "max_epochs"]
anything = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=5),
    st.lists(st.integers(0, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)  # fmt: skip
numbers = st.one_of(st.integers(-3, 10), st.floats(-3, 10, allow_nan=False))


def mostly(valid: st.SearchStrategy[Any], wrong: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` nine times in ten, else ``wrong``: most documents get far into the checks."""
    return st.integers(0, 9).flatmap(lambda i: wrong if i == 9 else valid)  # shrinks to valid


@st.composite
def parameter_specs(draw: st.DrawFn, name: str) -> Any:
    integer = name in ("fail_at_epoch", "seed", "max_epochs")
    kind = draw(
        mostly(
            st.just("int" if integer else "float"),
            st.sampled_from(["categorical", "float", "bogus"]),
        )
    )
    spec: dict[str, Any] = {"type": kind}
    if kind == "categorical":
        spec["choices"] = draw(
            mostly(st.lists(st.integers(0, 4), min_size=1, max_size=4, unique=True), anything)
        )
    else:
        low = draw(st.integers(0, 3) if kind == "int" else st.floats(0, 1))
        high = draw(mostly(st.just(low + draw(st.integers(1, 5))), numbers))
        spec["low"], spec["high"] = low, high
        good = {
            "log": st.booleans(),
            "step": st.sampled_from([1, 2] if kind == "int" else [0.1, 0.5]),
            "default": st.just(low),
        }
        for key, value in good.items():
            if draw(st.integers(0, 3)) == 3:
                spec[key] = draw(mostly(value, anything))
    if draw(st.integers(0, 9)) == 0:  # a key of the wrong kind, or an unknown one
        spec[draw(st.sampled_from(["when", "colour", "choices", "low"]))] = draw(anything)
    return spec


@st.composite
def space_documents(draw: st.DrawFn) -> Any:
    fields = mostly(st.sampled_from(QUADRATIC_FIELDS[:5]), st.sampled_from(QUADRATIC_FIELDS))
    names = draw(st.lists(fields, min_size=1, max_size=3, unique=True))
    doc: dict[str, Any] = {
        "objective": draw(mostly(st.just("quadratic"), st.sampled_from(["ghost", 3]))),
        "metric": draw(mostly(st.just("val/score"), st.sampled_from(["val/mapr", "", None]))),
        "mode": draw(mostly(st.just("max"), st.sampled_from(["min", "best"]))),
        "settings": draw(
            mostly(
                st.just({"max_epochs": 2}),
                st.dictionaries(st.sampled_from(QUADRATIC_FIELDS), anything, max_size=2),
            )
        ),
        "parameters": {name: draw(parameter_specs(name)) for name in names},
    }
    if draw(st.integers(0, 9)) == 0:
        doc[draw(st.sampled_from(["description", "searcher", "scheduler", "extra"]))] = draw(
            anything
        )
    return doc


@FAST
@given(doc=space_documents())
def test_a_generated_space_is_planned_as_written_or_refused(doc: Any, tmp_path: Path) -> None:
    path = write(tmp_path, yaml.safe_dump(doc, sort_keys=False))
    try:
        plan = build_plan(SweepRequest(space=str(path), runs_dir=tmp_path / "runs"))
    except DmlsweepError as exc:
        assert "Traceback" not in str(exc) and str(exc)
        event("refused: " + str(exc).split(": ", 1)[-1][:50])
        return
    event("planned and run as written")
    assert [p.name for p in plan.space.parameters] == list(doc["parameters"])
    for param in plan.space.parameters:
        spec = doc["parameters"][param.name]
        assert type(param).__name__.lower().startswith(spec["type"])
        if spec["type"] == "categorical":
            assert list(param.choices) == spec["choices"]
        else:
            assert (param.low, param.high) == (spec["low"], spec["high"])
    assert_searched_values_are_run(plan.space, plan.constants(), trials=4)


def assert_searched_values_are_run(
    space: SearchSpace, constants: dict[str, Any], *, trials: int
) -> None:
    """Through the sweep's own searcher: each trial's config holds the values Optuna records,
    and the objective's config takes them unchanged."""
    objective = load_objective(space.objective)
    searcher = PruneAwareOptunaSearch(
        space=partial(trial_config, space=space, constants=constants),
        metric=space.metric,
        mode=space.mode,
        points_to_evaluate=[space.defaults()] if space.defaults() else None,
        sampler=optuna.samplers.RandomSampler(seed=0),
        study_name="rule",
        max_epochs=2,
    )
    hints = typing.get_type_hints(objective.CONFIG)
    for number in range(trials):
        config = searcher.suggest(f"t{number}")
        assert config is not None
        recorded = searcher._ot_study.trials[number].params  # the study's own record
        assert recorded, config
        cfg = from_flat(objective.CONFIG, {k: v for k, v in config.items() if k != "objective"})
        for name, value in recorded.items():
            assert config[name] == value, (name, config[name], value)
            taken = getattr(cfg, name)
            assert taken == value and (hints[name] is not int or type(taken) is type(value)), name


@pytest.mark.parametrize(
    "name",
    [n for n in list_spaces() if "cub" not in n and "sketchy" not in n and "tuberlin" not in n],
)
def test_every_shipped_space_runs_the_values_optuna_records(name: str) -> None:
    space = load_space(name)
    constants = {**space.settings, "objective": space.objective, "seed": 0}
    assert_searched_values_are_run(space, constants, trials=6)


def test_every_objective_is_covered_by_a_shipped_space() -> None:
    from trainables.registry import OBJECTIVES

    covered = {
        load_space(n).objective
        for n in list_spaces()
        if "cub" not in n and "sketchy" not in n and "tuberlin" not in n
    }
    assert covered == set(OBJECTIVES)


def test_dataclass_fields_are_what_the_rule_reads() -> None:  # the rule's own premise
    assert "seed" in {f.name for f in dataclasses.fields(load_objective("quadratic").CONFIG)}
