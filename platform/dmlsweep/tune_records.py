"""What Ray Tune itself records of each trial: ``result.json`` and ``progress.csv`` (Tune's
tools and the fault tests read them), but no TensorBoard event files, which repeat what MLflow
shows at the price of an fsync per result."""

from __future__ import annotations

import os
from typing import Any


def tune_loggers() -> list[Any]:
    """The logger callbacks to give a ``RunConfig``; Tune then adds no others."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    # Read by Tune when the run starts: without it Tune adds the TensorBoard logger.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    return [JsonLoggerCallback(), CSVLoggerCallback()]
