"""Space files: valid ones parse and sample correctly; each class of bad input names the file
and the key."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from support import DELETE, edited

from dmlsweep.errors import SpaceError
from dmlsweep.spaces import (
    SPACES_DIR,
    CategoricalParam,
    FloatParam,
    IntParam,
    list_spaces,
    load_space,
    parse_space,
)
from trainables.registry import OBJECTIVES

VALID = {
    "objective": "quadratic",
    "metric": "val/score",
    "mode": "max",
    "settings": {"max_epochs": 3},
    "parameters": {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True, "default": 1e-3},
        "margin": {"type": "float", "low": 0.1, "high": 0.5, "step": 0.1},
        "size": {"type": "int", "low": 16, "high": 128, "step": 16, "default": 64},
        "hyperbolic": {"type": "categorical", "choices": [True, False], "default": True},
        "curvature": {
            "type": "float",
            "low": 1e-3,
            "high": 1.0,
            "log": True,
            "default": 0.1,
            "when": {"hyperbolic": True},
        },
    },
}


def write(tmp_path: Path, doc: object, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def parse(doc: dict, tmp_path: Path):
    return parse_space(doc, path=tmp_path / "s.yaml", known_objectives=list(OBJECTIVES))


def test_valid_space_parses_into_typed_parameters(tmp_path: Path) -> None:
    space = load_space(str(write(tmp_path, VALID)), known_objectives=list(OBJECTIVES))
    kinds = {p.name: type(p) for p in space.parameters}
    assert kinds == {
        "lr": FloatParam,
        "margin": FloatParam,
        "size": IntParam,
        "hyperbolic": CategoricalParam,
        "curvature": FloatParam,
    }
    assert [p.name for p in space.parameters] == list(VALID["parameters"])  # file order kept
    assert space.settings == {"max_epochs": 3}
    assert space.defaults() == {"lr": 1e-3, "size": 64, "hyperbolic": True, "curvature": 0.1}


def test_distributions_match_the_file(tmp_path: Path) -> None:
    params = {p.name: p for p in parse(VALID, tmp_path).parameters}
    lr = params["lr"].distribution()
    assert isinstance(lr, optuna.distributions.FloatDistribution)
    assert (lr.low, lr.high, lr.log, lr.step) == (1e-4, 1e-1, True, None)
    size = params["size"].distribution()
    assert isinstance(size, optuna.distributions.IntDistribution)
    assert (size.low, size.high, size.step) == (16, 128, 16)
    assert params["hyperbolic"].distribution().choices == (True, False)


def test_define_by_run_sampling_respects_bounds_and_conditions(tmp_path: Path) -> None:
    space = parse(VALID, tmp_path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen_conditions = set()
    for _ in range(40):
        trial = study.ask()
        constants = space.sample(trial)
        assert constants == {"max_epochs": 3}
        p = trial.params
        assert 1e-4 <= p["lr"] <= 1e-1
        assert round(p["margin"] * 10) == pytest.approx(p["margin"] * 10)  # step 0.1
        assert p["size"] % 16 == 0 and 16 <= p["size"] <= 128
        assert ("curvature" in p) == p["hyperbolic"]  # conditional exists only when active
        seen_conditions.add(p["hyperbolic"])
        study.tell(trial, 0.0)
    assert seen_conditions == {True, False}


def test_defaults_become_the_first_trial(tmp_path: Path) -> None:
    space = parse(VALID, tmp_path)
    study = optuna.create_study()
    study.enqueue_trial(space.defaults())
    trial = study.ask()
    space.sample(trial)
    assert trial.params["lr"] == 1e-3 and trial.params["curvature"] == 0.1
    assert trial.params["size"] == 64


def test_repository_spaces_are_valid() -> None:
    names = list_spaces()
    assert "baseline" in names
    for name in names:
        space = load_space(name, known_objectives=list(OBJECTIVES))
        assert space.path.parent == SPACES_DIR
        assert space.objective in OBJECTIVES


def _with(**changes: object) -> dict:
    return edited(VALID, **changes)


INVALID = [
    # (document, words the message must contain)
    (_with(colour="red"), ["colour", "unknown key", "allowed"]),
    (_with(objective="nope"), ["objective", "unknown objective 'nope'", "quadratic"]),
    (_with(mode="maximise"), ["mode", "'maximise'", "'max', 'min'"]),
    (_with(metric=DELETE), ["metric", "missing"]),
    (_with(parameters={}), ["parameters", "non-empty"]),
    (_with(parameters__lr__type="real"), ["parameters.lr.type", "'real'", "categorical"]),
    (_with(parameters__lr__low=1.0), ["parameters.lr", "low (1.0) must be < high (0.1)"]),
    (_with(parameters__margin__low=0.5), ["parameters.margin", "low (0.5) must be < high (0.5)"]),
    (
        _with(parameters__size__low=0, parameters__size__log=True, parameters__size__step=DELETE),
        ["parameters.size.low", "log scale needs low > 0"],
    ),
    (_with(parameters__lr__low=-1.0), ["parameters.lr.low", "log scale needs low > 0"]),
    (_with(parameters__hyperbolic__choices=[]), ["parameters.hyperbolic.choices", "non-empty"]),
    (
        _with(parameters__curvature__when={"manifold": "ball"}),
        ["parameters.curvature.when.manifold", "unknown parameter 'manifold'"],
    ),
    (
        _with(parameters__lr__when={"curvature": 0.1}),  # declared below: no forward references
        ["parameters.lr.when.curvature", "declared above"],
    ),
    (_with(parameters__lr__scale="log"), ["parameters.lr.scale", "unknown key"]),
    (_with(parameters__lr__default=5.0), ["parameters.lr.default", "outside"]),
    (
        _with(parameters__hyperbolic__default="maybe"),
        ["parameters.hyperbolic.default", "not one of"],
    ),
    (_with(parameters__size__low=1.5), ["parameters.size.low", "must be an integer"]),
    (_with(parameters__margin__high="big"), ["parameters.margin.high", "must be a number"]),
    (_with(parameters__margin__step=-0.1), ["parameters.margin.step", "positive"]),
    (_with(parameters__lr__step=0.01), ["parameters.lr.step", "log"]),
    (_with(settings={"lr": 0.1, "max_epochs": 3}), ["parameters", "both searched and fixed"]),
    (["not", "a", "mapping"], ["<top level>", "mapping"]),
]


@pytest.mark.parametrize(("doc", "words"), INVALID, ids=[w[0] + "/" + w[1] for _, w in INVALID])
def test_invalid_space_names_file_key_and_allowed(
    doc: object, words: list[str], tmp_path: Path
) -> None:
    path = write(tmp_path, doc, "broken.yaml")
    with pytest.raises(SpaceError) as info:
        load_space(str(path), known_objectives=list(OBJECTIVES))
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"


def test_yaml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("objective: [unclosed\n")
    with pytest.raises(SpaceError, match="bad.yaml: not valid YAML"):
        load_space(str(path))


def test_unknown_space_name_lists_known_spaces() -> None:
    with pytest.raises(SpaceError) as info:
        load_space("no-such-space")
    assert "unknown space 'no-such-space'" in str(info.value)
    assert "baseline" in str(info.value)


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("objective: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpaceError, match="not valid YAML"):
        load_space(str(path))
