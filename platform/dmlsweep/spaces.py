"""Search spaces: YAML files parsed into typed objects and sampled define-by-run with Optuna.

A space file (``sweeps/spaces/<name>.yaml``)::

    objective: baseline            # a name from trainables.registry.OBJECTIVES
    metric: val/map_at_r           # what the sweep optimises (validation classes only)
    mode: max                      # max | min
    description: free text
    settings:                      # fixed values handed to every trial
      max_epochs: 8
    parameters:
      lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true, default: 1.0e-3}
      embedding_size: {type: categorical, choices: [32, 64], default: 64}
      margin: {type: float, low: 0.1, high: 0.5, step: 0.05}
      curvature: {type: float, low: 1.0e-3, high: 1.0, log: true, when: {hyperbolic: true}}

``when`` makes a parameter conditional: it exists only when every named parameter takes the
given value (or one of a list of values). Conditions may only name parameters declared above
them, so the define-by-run order is the file order and cycles cannot exist.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from dmlsweep.errors import SpaceError

if TYPE_CHECKING:
    import optuna

__all__ = [
    "CategoricalParam",
    "FloatParam",
    "IntParam",
    "Param",
    "SearchSpace",
    "load_space",
    "parse_space",
    "find_space",
    "list_spaces",
    "read_space_file",
    "parse_space_text",
    "SPACES_DIR",
]

# The repository's own spaces (sweeps/spaces next to platform/), found from this file.
SPACES_DIR = Path(__file__).resolve().parents[2] / "sweeps" / "spaces"

_TOP_KEYS = {
    "objective",
    "metric",
    "mode",
    "description",
    "settings",
    "parameters",
    "searcher",
    "scheduler",
}
_REQUIRED_TOP_KEYS = ("objective", "metric", "mode", "parameters")
_COMMON_PARAM_KEYS = {"type", "default", "when"}
_PARAM_KEYS = {
    "float": _COMMON_PARAM_KEYS | {"low", "high", "log", "step"},
    "int": _COMMON_PARAM_KEYS | {"low", "high", "log", "step"},
    "categorical": _COMMON_PARAM_KEYS | {"choices"},
}
_CHOICE_TYPES = (bool, int, float, str, type(None))
MAX_SPACE_BYTES = 64 * 1024  # a space file past this is refused unread
MAX_SPACE_NODES = 10_000  # YAML values in a space file, aliases expanded


@dataclass(frozen=True)
class _ParamBase:
    name: str
    default: Any = None
    # parameter name -> allowed values; the parameter exists only when all hold.
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def active(self, values: Mapping[str, Any]) -> bool:
        return all(n in values and values[n] in allowed for n, allowed in self.when.items())


@dataclass(frozen=True)
class FloatParam(_ParamBase):
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    step: float | None = None

    def suggest(self, trial: optuna.Trial) -> float:
        return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)

    def distribution(self) -> optuna.distributions.BaseDistribution:
        import optuna

        return optuna.distributions.FloatDistribution(
            self.low, self.high, log=self.log, step=self.step
        )


@dataclass(frozen=True)
class IntParam(_ParamBase):
    low: int = 0
    high: int = 1
    log: bool = False
    step: int = 1

    def suggest(self, trial: optuna.Trial) -> int:
        return trial.suggest_int(self.name, self.low, self.high, log=self.log, step=self.step)

    def distribution(self) -> optuna.distributions.BaseDistribution:
        import optuna

        return optuna.distributions.IntDistribution(
            self.low, self.high, log=self.log, step=self.step
        )


@dataclass(frozen=True)
class CategoricalParam(_ParamBase):
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        return trial.suggest_categorical(self.name, list(self.choices))

    def distribution(self) -> optuna.distributions.BaseDistribution:
        import optuna

        return optuna.distributions.CategoricalDistribution(list(self.choices))


Param = FloatParam | IntParam | CategoricalParam


@dataclass(frozen=True)
class SearchSpace:
    """A parsed space file. ``parameters`` keep the file order (the define-by-run order)."""

    name: str
    path: Path
    objective: str
    metric: str
    mode: str
    parameters: tuple[Param, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    searcher: Mapping[str, Any] = field(default_factory=dict)
    scheduler: Mapping[str, Any] = field(default_factory=dict)

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """Define-by-run: suggest every active parameter in file order; return the settings.

        Ray's OptunaSearch merges the returned constants into the trial config, so a trial's
        config is ``{**settings, **sampled parameters}``.
        """
        values: dict[str, Any] = {}
        for param in self.parameters:
            if param.active(values):
                values[param.name] = param.suggest(trial)
        return dict(self.settings)

    def defaults(self) -> dict[str, Any]:
        """The first trial: each active parameter's default (parameters without one are sampled)."""
        point: dict[str, Any] = {}
        for param in self.parameters:
            if param.default is not None and param.active(point):
                point[param.name] = param.default
        return point

    def describe(self) -> str:
        lines = [
            f"space {self.name} ({self.path})",
            f"  objective: {self.objective}   metric: {self.metric} ({self.mode})",
        ]
        if self.description:
            lines.append(f"  {self.description.strip()}")
        for key, value in self.settings.items():
            lines.append(f"  setting   {key} = {value!r}")
        for p in self.parameters:
            if isinstance(p, CategoricalParam):
                rng = f"one of {list(p.choices)}"
            else:
                scale = " log" if p.log else ""
                has_step = p.step is not None and not (isinstance(p, IntParam) and p.step == 1)
                step = f" step {p.step}" if has_step else ""
                rng = f"[{p.low}, {p.high}]{scale}{step}"
            cond = (
                " when " + ", ".join(f"{n} in {list(v)}" for n, v in p.when.items())
                if p.when
                else ""
            )
            default = f" (default {p.default!r})" if p.default is not None else ""
            lines.append(
                f"  parameter {p.name}: {type(p).__name__[:-5].lower()} {rng}{default}{cond}"
            )
        return "\n".join(lines)


def list_spaces(directory: Path = SPACES_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def find_space(name_or_path: str, directory: Path = SPACES_DIR) -> Path:
    """A space is a YAML path, or a name looked up in ``sweeps/spaces``."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.is_file():
            raise SpaceError(f"space file {candidate} does not exist")
        return candidate
    path = directory / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(list_spaces(directory)) or "none"
        raise SpaceError(f"unknown space {name_or_path!r}; known spaces: {known} (in {directory})")
    return path


def load_space(name_or_path: str, *, known_objectives: Sequence[str] | None = None) -> SearchSpace:
    path = find_space(name_or_path)
    return parse_space(read_space_file(path), path=path, known_objectives=known_objectives)


def read_space_file(path: Path) -> Any:
    """The YAML document of a space file, read strictly and at a cost bounded by
    :data:`MAX_SPACE_BYTES`: UTF-8 only, no duplicate key, aliases expanding to at most
    :data:`MAX_SPACE_NODES` nodes (a "billion laughs" file is refused, not expanded)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_SPACE_BYTES + 1)
    except OSError as exc:
        raise SpaceError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    if len(data) > MAX_SPACE_BYTES:
        raise SpaceError(
            f"{path}: larger than {MAX_SPACE_BYTES // 1024} KiB, the most a space file may be"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpaceError(
            f"{path}: not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x})"
        ) from None
    return parse_space_text(text, path=path)


def parse_space_text(text: str, *, path: Path) -> Any:
    """The YAML document ``text`` of the space file ``path``, parsed by :class:`_StrictLoader`."""
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise SpaceError(f"{path}: not valid YAML: {exc}") from exc
    finally:
        loader.dispose()


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a duplicate key and an alias expansion past the bound."""

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            _check_expanded_size(node)
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the mapping's own error says so
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (a later one would silently win)",
                    key_node.start_mark,
                )  # fmt: skip
        return super().construct_mapping(node, deep=deep)


def _check_expanded_size(root: Any) -> None:
    """The node count of ``root`` with every alias expanded, counted without expanding."""
    sizes: dict[int, int] = {}

    def size(node: Any, depth: int) -> int:
        if depth > 100:
            raise yaml.YAMLError(f"nested deeper than 100 levels (line {node.start_mark.line + 1})")
        if id(node) in sizes:
            return sizes[id(node)]
        children: list[Any] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        total = 1 + sum(size(child, depth + 1) for child in children)
        if total > MAX_SPACE_NODES:
            raise yaml.YAMLError(
                f"expands to more than {MAX_SPACE_NODES} values (aliases reused too often)"
            )
        sizes[id(node)] = total
        return total

    size(root, 0)


def parse_space(
    raw: Any, *, path: Path, known_objectives: Sequence[str] | None = None
) -> SearchSpace:
    """Validate a loaded YAML document; each problem names the file, the key and what is allowed."""

    def fail(key: str, problem: str) -> SpaceError:
        return SpaceError(f"{path}: {key}: {problem}")

    if not isinstance(raw, dict):
        raise fail("<top level>", f"expected a mapping with keys {sorted(_TOP_KEYS)}")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise fail(
            ", ".join(sorted(map(str, unknown))), f"unknown key; allowed: {sorted(_TOP_KEYS)}"
        )
    for key in _REQUIRED_TOP_KEYS:
        if key not in raw:
            raise fail(key, "missing (required)")

    objective = raw["objective"]
    if not isinstance(objective, str):
        raise fail("objective", f"must be an objective's name, got {objective!r}")
    if not isinstance(raw.get("description") or "", str):
        raise fail("description", "must be text")
    if known_objectives is not None and objective not in known_objectives:
        raise fail(
            "objective", f"unknown objective {objective!r}; known: {sorted(known_objectives)}"
        )
    if raw["mode"] not in ("max", "min"):
        raise fail("mode", f"{raw['mode']!r} is not allowed; allowed: 'max', 'min'")
    if not isinstance(raw["metric"], str) or not raw["metric"]:
        raise fail("metric", "must be a non-empty metric name such as 'val/map_at_r'")
    for key in ("settings", "searcher", "scheduler"):
        if not isinstance(raw.get(key) or {}, dict):
            raise fail(key, "must be a mapping")
    settings = dict(raw.get("settings") or {})
    for key, value in settings.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise fail(f"settings.{key}", "a setting's name must be an identifier")
        if not _is_setting_value(value):
            raise fail(
                f"settings.{key}",
                f"must be a number, string, boolean, null or a list of them, got {value!r}",
            )

    params_raw = raw["parameters"]
    if not isinstance(params_raw, dict) or not params_raw:
        raise fail("parameters", "must be a non-empty mapping of parameter name -> definition")
    clash = set(params_raw) & set(settings)
    if clash:
        raise fail("parameters", f"{sorted(clash)} are both searched and fixed in settings")

    params: list[Param] = []
    for name, spec in params_raw.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise fail(f"parameters.{name}", "a parameter's name must be an identifier")
        params.append(_parse_param(str(name), spec, declared=[p.name for p in params], fail=fail))

    return SearchSpace(
        name=path.stem,
        path=path,
        objective=objective,
        metric=raw["metric"],
        mode=raw["mode"],
        parameters=tuple(params),
        settings=settings,
        description=str(raw.get("description") or ""),
        searcher=dict(raw.get("searcher") or {}),
        scheduler=dict(raw.get("scheduler") or {}),
    )


def _parse_param(name: str, spec: Any, *, declared: list[str], fail: Any) -> Param:
    key = f"parameters.{name}"
    if not isinstance(spec, dict):
        raise fail(key, "must be a mapping with a 'type' (float, int, categorical)")
    kind = spec.get("type")
    if kind not in _PARAM_KEYS:
        raise fail(f"{key}.type", f"{kind!r} is not allowed; allowed: {sorted(_PARAM_KEYS)}")
    unknown = set(spec) - _PARAM_KEYS[kind]
    if unknown:
        raise fail(
            f"{key}.{sorted(unknown)[0]}",
            f"unknown key for a {kind} parameter; allowed: {sorted(_PARAM_KEYS[kind])}",
        )
    when = _parse_when(spec.get("when"), key=key, declared=declared, fail=fail)
    default = spec.get("default")

    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise fail(f"{key}.choices", "must be a non-empty list")
        if not all(isinstance(c, _CHOICE_TYPES) for c in choices):
            raise fail(f"{key}.choices", "choices must be numbers, strings, booleans or null")
        if len(set(map(repr, choices))) != len(choices):
            raise fail(f"{key}.choices", "choices must be distinct")
        if default is not None and default not in choices:
            raise fail(f"{key}.default", f"{default!r} is not one of the choices {choices}")
        return CategoricalParam(name=name, default=default, when=when, choices=tuple(choices))

    number = float if kind == "float" else int
    for bound in ("low", "high"):
        if bound not in spec:
            raise fail(f"{key}.{bound}", "missing (required for float and int parameters)")
        value = spec[bound]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail(f"{key}.{bound}", f"must be a number, got {value!r}")
        if kind == "int" and not float(value).is_integer():
            raise fail(f"{key}.{bound}", f"must be an integer, got {value!r}")
        if not math.isfinite(value):
            raise fail(f"{key}.{bound}", "must be finite")
    low, high = number(spec["low"]), number(spec["high"])
    if low >= high:
        raise fail(key, f"low ({low}) must be < high ({high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise fail(f"{key}.log", "must be true or false")
    if log and low <= 0:
        raise fail(f"{key}.low", f"log scale needs low > 0, got {low}")
    step = spec.get("step")
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0:
            raise fail(f"{key}.step", f"must be a positive number, got {step!r}")
        if log:
            raise fail(f"{key}.step", "cannot be combined with log: true (Optuna forbids it)")
        step = number(step)
    if default is not None:
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            raise fail(f"{key}.default", f"must be a number, got {default!r}")
        if not low <= default <= high:
            raise fail(f"{key}.default", f"{default} is outside [{low}, {high}]")
        default = number(default)
    if kind == "float":
        return FloatParam(
            name=name, default=default, when=when, low=low, high=high, log=log, step=step
        )
    return IntParam(
        name=name, default=default, when=when, low=int(low), high=int(high), log=log,
        step=int(step or 1),
    )  # fmt: skip


def _parse_when(
    raw: Any, *, key: str, declared: list[str], fail: Any
) -> dict[str, tuple[Any, ...]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise fail(f"{key}.when", "must be a mapping {parameter: value or [values]}")
    when: dict[str, tuple[Any, ...]] = {}
    for other, allowed in raw.items():
        if other not in declared:
            raise fail(
                f"{key}.when.{other}",
                f"condition on unknown parameter {other!r}; it must be a parameter declared "
                f"above this one (declared so far: {declared or 'none'})",
            )
        values = tuple(allowed) if isinstance(allowed, list) else (allowed,)
        if not values or not all(isinstance(v, _CHOICE_TYPES) for v in values):
            raise fail(f"{key}.when.{other}", "must be a value or a non-empty list of values")
        when[str(other)] = values
    return when


def _is_setting_value(value: Any) -> bool:
    if isinstance(value, list):
        return all(isinstance(v, _CHOICE_TYPES) for v in value)
    return isinstance(value, _CHOICE_TYPES)
