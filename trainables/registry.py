"""The objectives a sweep can run, by name: each a module implementing the contract of
:mod:`trainables.objective` (``tests/trainables/test_contract.py`` tests every entry).

Modules are imported only when used, so listing names costs nothing. Adding an objective is one
module, one space file in ``sweeps/spaces`` and one entry here.
"""

from __future__ import annotations

import importlib
from typing import cast

from trainables.objective import Objective

OBJECTIVES: dict[str, str] = {
    "baseline": "trainables.baseline",
    "quadratic": "trainables.quadratic",
    "dsn": "trainables.dsn.objective",
    "mathm": "trainables.mathm.objective",
    "ahsml": "trainables.ahsml.objective",
}


def load_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise KeyError(f"unknown objective {name!r}; known objectives: {sorted(OBJECTIVES)}")
    return cast(Objective, importlib.import_module(OBJECTIVES[name]))
