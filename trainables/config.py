"""Objective configs: frozen dataclasses built from a trial's flat config in one place."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")

# Keys the platform adds to every trial config; objectives may ignore them.
PLATFORM_KEYS = frozenset({"objective"})


class ConfigError(ValueError):
    """A trial config with an unknown key or a value of the wrong kind."""


def check_noise(owner: str, noise: str, rate: float) -> None:
    """Label noise corrupts a fraction ``rate`` in [0, 1) of the training labels."""
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"{owner}.noise_rate: {rate!r} is not in [0, 1) (a fraction of labels)")
    if noise == "none" and rate:
        raise ConfigError(
            f"{owner}.noise_rate: {rate!r} with noise none; set noise to symmetric or small_cluster"
        )


def from_flat(cls: type[T], config: dict[str, Any]) -> T:
    """Build the dataclass ``cls`` from a flat config, naming any bad key and what is allowed."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(config) - set(fields) - PLATFORM_KEYS
    if unknown:
        raise ConfigError(
            f"{cls.__name__}: unknown config keys {sorted(unknown)}; allowed: {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, value in config.items():
        if name not in fields:
            continue
        values[name] = _coerce(cls.__name__, name, hints[name], value)
    return cls(**values)


def _coerce(owner: str, name: str, hint: Any, value: Any) -> Any:
    # YAML and Optuna give ints where floats are meant (1 vs 1.0), never the reverse.
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    allowed = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None
    if allowed is not None:
        if value not in allowed:
            raise ConfigError(f"{owner}.{name}: {value!r} is not allowed; allowed: {list(allowed)}")
        return value
    if hint in (int, float, bool, str) and not isinstance(value, hint):
        raise ConfigError(f"{owner}.{name}: expected {hint.__name__}, got {value!r}")
    return value
