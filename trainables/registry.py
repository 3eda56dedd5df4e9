"""The objectives a sweep can run, by name.

Each entry names a module exposing ``train(config: dict) -> None`` (a Ray Tune function
trainable that reports through ``trainables.reporting``) and ``build_model(config: dict) ->
torch.nn.Module`` (rebuilds the network from a trial's config, to load a checkpoint into it),
and ``CONFIG``, the dataclass its trial config is built into (``trainables.config.from_flat``).
Modules are imported only when used, so listing names costs nothing.
"""

from __future__ import annotations

import importlib
from types import ModuleType

OBJECTIVES: dict[str, str] = {
    "baseline": "trainables.baseline",
    "quadratic": "trainables.quadratic",
    "dsn": "trainables.dsn.objective",
    "mathm": "trainables.mathm.objective",
    "ahsml": "trainables.ahsml.objective",
}


def load_objective(name: str) -> ModuleType:
    if name not in OBJECTIVES:
        raise KeyError(f"unknown objective {name!r}; known objectives: {sorted(OBJECTIVES)}")
    return importlib.import_module(OBJECTIVES[name])
