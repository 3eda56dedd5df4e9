"""Sweep names and the strings the platform pastes into MLflow filters.

A sweep's name is a path component (Ray's experiment directory, under the runs dir or the
bucket prefix), an Optuna study name and an MLflow run name, and an extension adds ``.N`` to
it. :data:`NAME_RULE` keeps it all three at once: no separator, no ``..``, no quote, no
control character, and short enough for every file system (255 bytes a component).
"""

from __future__ import annotations

import re

from dmlsweep.errors import DmlsweepError

MAX_NAME_LENGTH = 100
NAME_RULE = (
    f"1 to {MAX_NAME_LENGTH} characters of A-Z a-z 0-9 . _ -, starting with a letter or a digit"
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_sweep_name(name: str, *, flag: str = "--name") -> str:
    """``name`` if it follows :data:`NAME_RULE`, else a :class:`DmlsweepError` stating it."""
    if len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        shown = name if len(name) <= 40 else name[:40] + "..."
        raise DmlsweepError(f"{flag} {shown!r}: a sweep name must be {NAME_RULE}")
    return name


def filter_value(value: str) -> str:
    """``value`` as a quoted string of an MLflow search filter. MLflow's filter grammar has no
    escape: a value holding both quote characters cannot be searched for and is refused."""
    for quote in ("'", '"'):
        if quote not in value:
            return f"{quote}{value}{quote}"
    raise DmlsweepError(f"cannot search MLflow for {value!r}: it holds both kinds of quote")
