"""The objective contract: what every objective module provides to the platform.

An objective is a module (registered by name in :mod:`trainables.registry`) with:

- ``CONFIG``: the frozen dataclass its trial config is built into (:func:`trainables.config.
  from_flat`); its ``__post_init__`` refuses values out of range;
- ``METRICS``: the metrics each epoch reports that a space may optimise, name -> ``"max"`` or
  ``"min"`` (a space's ``metric`` and ``mode`` are checked against it before anything starts);
- ``validate(settings)``: everything that can be known before a trial runs (the config's
  values, the data directory and its layout, weights files), raising what
  :func:`is_not_retried` names;
- ``train(config)``: a Ray Tune function trainable reporting once per epoch through
  :mod:`trainables.reporting`, resuming from its last checkpoint;
- ``build_model(config)``: the trial's network, to load a checkpoint into;
- ``evaluate_test(model, config)``: the final evaluation on the test classes, ``test/*``.

``tests/trainables/test_contract.py`` runs one suite on every registered objective.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol, runtime_checkable

from trainables.config import ConfigError

Mode = Literal["max", "min"]

# A trial's last result carrying this key (the error's type and message) reports an error that
# a retry would only repeat (:func:`is_not_retried`): the trial ends failed, not retried.
NOT_RETRIED_KEY = "dmlsweep/not_retried"


@runtime_checkable
class Objective(Protocol):
    """A module implementing the contract (see the module docstring)."""

    CONFIG: type
    METRICS: Mapping[str, Mode]

    def validate(self, settings: dict[str, Any]) -> None: ...

    def train(self, config: dict[str, Any]) -> None: ...

    def build_model(self, config: dict[str, Any]) -> Any: ...

    def evaluate_test(self, model: Any, config: dict[str, Any]) -> dict[str, float]: ...


def is_not_retried(error: BaseException) -> bool:
    """Whether a trial's error repeats however often the trial runs (a bad value, a missing or
    malformed dataset, a diverged loss) or ends it for good (its time limit): retrying it only
    repeats the failure."""
    from trainables.dml.data.readers import LayoutError  # imports the data stack: seconds
    from trainables.timeout import TrialTimeoutError

    return isinstance(error, ConfigError | LayoutError | FloatingPointError | TrialTimeoutError)


__all__ = ["NOT_RETRIED_KEY", "Mode", "Objective", "is_not_retried"]
