"""A trial's time limit (``--trial-timeout``), enforced inside the trial's own worker.

A trial that hangs never reports, so nothing the driver sees (a scheduler, a stopper) can stop
it. The watchdog is a thread beside the trial's: at the deadline it raises
:class:`TrialTimedOut` in the trial's thread (again every second, should a handler swallow it),
which the trial wrapper turns into :class:`TrialTimeoutError`: an error that is not retried
(:func:`trainables.objective.is_not_retried`), so the trial ends failed with the reason recorded
in Tune, Optuna and MLflow, its worker free for the next trial. A thread stuck in native code
never sees a Python exception: if the trial has not ended ``KILL_AFTER`` seconds past the
deadline, the watchdog ends the worker process, which Tune counts as a worker failure (retried
up to ``--max-retries`` times, each try with the same limit).

The limit counts from the trial's start in its worker, or from its restore from a checkpoint
(a retry, a resumed sweep).
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

KILL_AFTER = 30.0  # seconds past the deadline before a trial stuck in native code is killed
EXIT_STATUS = 124  # the worker's exit status then (timeout(1)'s)


class TrialTimedOut(BaseException):
    """Raised asynchronously in a trial's thread at its deadline. A ``BaseException``, so that
    the objective's ``except Exception`` handlers let it through."""


class TrialTimeoutError(Exception):
    """A trial ran past ``--trial-timeout``: it ends failed, not retried."""


def with_timeout(
    train_fn: Callable[[dict[str, Any]], None], seconds: float | None
) -> Callable[[dict[str, Any]], None]:
    """``train_fn`` ended by :class:`TrialTimeoutError` once it has run ``seconds`` (None: no
    limit)."""
    if not seconds:
        return train_fn

    def train(config: dict[str, Any]) -> None:
        watchdog = _Watchdog(seconds, threading.get_ident())
        try:
            try:
                train_fn(config)
            finally:
                watchdog.stop()
        except TrialTimedOut:
            raise TrialTimeoutError(
                f"the trial ran past --trial-timeout {seconds:g} s and was stopped"
            ) from None

    return train


class _Watchdog:
    def __init__(self, seconds: float, target: int) -> None:
        self._seconds = seconds
        self._target = target
        self._stopped = threading.Event()
        self._lock = threading.Lock()  # no exception is raised once stop() has returned
        threading.Thread(target=self._watch, name="dmlsweep-trial-timeout", daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            self._stopped.set()
            _raise_in(self._target, None)  # withdraw one raised but not yet delivered

    def _watch(self) -> None:
        if self._stopped.wait(self._seconds):
            return
        for _ in range(int(KILL_AFTER)):
            with self._lock:
                if self._stopped.is_set():
                    return
                _raise_in(self._target, TrialTimedOut)
            if self._stopped.wait(1.0):
                return
        sys.stderr.write(
            f"dmlsweep: the trial ran past --trial-timeout {self._seconds:g} s and did not "
            f"stop within {KILL_AFTER:g} s (stuck outside Python): ending its worker\n"
        )
        sys.stderr.flush()
        os._exit(EXIT_STATUS)


def _raise_in(thread_id: int, exception: type[BaseException] | None) -> None:
    """Raise ``exception`` in the thread ``thread_id`` at its next Python instruction (None:
    withdraw a pending one); the documented C API, as ``threading`` has no public form of it."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exception) if exception else None
    )


__all__ = ["KILL_AFTER", "TrialTimedOut", "TrialTimeoutError", "with_timeout"]
