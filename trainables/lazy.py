"""Package attributes whose module is imported on first use (PEP 562).

The ResNets, augmentations and image files need torchvision, whose import costs every trial
worker and the sweep's driver seconds (it loads ``torch._dynamo``); the embedded digits and the
small CNN need none of it. Their packages export those names lazily::

    __getattr__ = lazy_attributes(__name__, {"augment": ("weak_augment", ...)})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_attributes(package: str, modules: Mapping[str, tuple[str, ...]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` giving each name of ``modules[m]`` from ``package.m``."""
    home = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{home[name]}"), name)

    return __getattr__
