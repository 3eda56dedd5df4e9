"""What Ray Tune itself records of each trial: ``result.json`` and ``progress.csv`` (Tune's
tools and the fault tests read them), but no TensorBoard event files, which repeat what MLflow
shows at the price of an fsync per result.

Example::

    tuner = tune.Tuner(..., run_config=tune.RunConfig(callbacks=[*mine, *tune_loggers()]))
    with tune_environment():
        tuner.fit()
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# What dmlsweep's runs set in Tune's environment (Tune reads them when a run starts):
# - no loggers of Tune's own (TensorBoard's among them): tune_loggers() names those we keep;
# - no warning about frequent experiment snapshots: a checkpoint per epoch with num_to_keep
#   forces one each time, so the warning would flood the console of every short-epoch sweep;
# - no check that every result holds the metric: the plan checks the space's metric against
#   what the objective reports, and the report of a failure that is not retried holds none.
SETTINGS = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
}


def tune_loggers() -> list[Any]:
    """The logger callbacks to give a ``RunConfig``."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    return [JsonLoggerCallback(), CSVLoggerCallback()]


@contextmanager
def tune_environment() -> Iterator[None]:
    """While a run starts and goes, Tune sees ``SETTINGS``; other Tuners of the process, before
    and after, keep Tune's defaults."""
    previous = {name: os.environ.get(name) for name in SETTINGS}
    os.environ.update(SETTINGS)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
