"""Ctrl-C and SIGTERM during a sweep: the first stops it cleanly, a second at once.

The first SIGINT or SIGTERM asks Tune to stop (its own stop signal, SIGUSR1): no trial is
started any more, Tune saves its experiment state, the running trials are stopped (each keeps
its last epoch's checkpoint) and the sweep's records are left as ``--resume NAME`` continues
them: the trials' MLflow runs KILLED with ``dmlsweep.state`` INTERRUPTED, their Optuna trials
RUNNING. A second signal exits at once (status 130), as resumable as after a kill.
``--time-budget SECONDS`` stops the sweep in the same way when the time is spent.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_requested = threading.Event()
_budget_spent = threading.Event()


_TUNE_LOGGERS = ("ray.tune.tune", "ray.tune.analysis.experiment_analysis")


class _TuneStopMessages(logging.Filter):
    """Tune's own words on a stop point to its Python API (``Tuner.restore``) and to Ctrl-C
    semantics that are not the sweep's; the sweep prints its own (``--resume NAME``)."""

    _PHRASES = ("Stop signal received", "Tuner.restore", "Failed to fetch metrics")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (_requested.is_set() and any(p in message for p in self._PHRASES))


def requested() -> bool:
    """Whether the sweep running in this process was asked to stop."""
    return _requested.is_set()


def budget_spent() -> bool:
    """Whether the stop was the time budget's (not a signal's)."""
    return _budget_spent.is_set()


def _ask_tune_to_stop() -> bool:
    """Send Tune its stop signal; False when Tune's loop is not running (nothing to stop)."""
    if signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):
        return False
    os.kill(os.getpid(), signal.SIGUSR1)
    return True


@contextmanager
def stop_on_signals(resume_hint: str, *, time_budget: float | None = None) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM stop the sweep as described above, and so does
    ``time_budget`` seconds passing (the same clean, resumable stop)."""
    _requested.clear()
    _budget_spent.clear()

    def spend_budget() -> None:
        if _requested.is_set():
            return
        _budget_spent.set()
        _requested.set()
        print(
            f"\ndmlsweep: the time budget ({time_budget:g} s) is spent: stopping the sweep (the "
            "running trials keep their last checkpoint)",
            file=sys.stderr,
            flush=True,
        )
        _ask_tune_to_stop()  # if Tune's loop has not started, run_sweep starts none

    timer = threading.Timer(time_budget, spend_budget) if time_budget else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    # Tune's own SIGINT handler would end the sweep without telling us; SIGUSR1 is its
    # documented stop signal, which it always handles while it runs.
    tune_handler = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"

    def handle(signum: int, frame: FrameType | None) -> None:
        if _requested.is_set():
            print(f"\ndmlsweep: stopped at once; {resume_hint}", file=sys.stderr, flush=True)
            os._exit(130)
        _requested.set()
        print(
            f"\ndmlsweep: {signal.Signals(signum).name}: stopping the sweep (the running trials "
            "keep their last checkpoint); press Ctrl-C again to exit at once",
            file=sys.stderr,
            flush=True,
        )
        if not _ask_tune_to_stop():
            raise KeyboardInterrupt  # Tune's loop has not started: nothing to stop in it

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    quiet = _TuneStopMessages()
    loggers = [logging.getLogger(name) for name in _TUNE_LOGGERS]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()
        for logger in loggers:
            logger.removeFilter(quiet)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if tune_handler is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = tune_handler


__all__ = ["budget_spent", "requested", "stop_on_signals"]
