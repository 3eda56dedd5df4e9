"""What Ray Tune itself records of each trial: ``result.json`` and ``progress.csv`` (Tune's
tools and the fault tests read them), but no TensorBoard event files, which repeat what MLflow
shows at the price of an fsync per result.

Example::

    tuner = tune.Tuner(..., run_config=tune.RunConfig(callbacks=[*mine, *tune_loggers()]))
    with without_default_loggers():
        tuner.fit()
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_VARIABLE = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"  # read by Tune when a run starts


def tune_loggers() -> list[Any]:
    """The logger callbacks to give a ``RunConfig``."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    return [JsonLoggerCallback(), CSVLoggerCallback()]


@contextmanager
def without_default_loggers() -> Iterator[None]:
    """While a run starts and goes, Tune adds no loggers of its own (TensorBoard's among them);
    other Tuners of the process, before and after, keep Tune's defaults."""
    previous = os.environ.get(_VARIABLE)
    os.environ[_VARIABLE] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_VARIABLE, None)
        else:
            os.environ[_VARIABLE] = previous
