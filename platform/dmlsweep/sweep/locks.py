"""Sweeps that share a runs dir: one driver per sweep name, and the stores set up one at a time.

Both are ``flock`` locks on files in ``<runs dir>/locks``: the kernel releases them when their
holder dies, however it dies, so a crashed driver never leaves a sweep locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from dmlsweep.errors import DmlsweepError

SETUP_TIMEOUT_SECONDS = 300.0


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


@contextlib.contextmanager
def sole_driver(runs_dir: Path, name: str) -> Iterator[None]:
    """Held while this process drives the sweep ``name``; a second driver of it is refused."""
    path = runs_dir / "locks" / f"{name}.lock"
    fd = _open(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise DmlsweepError(
                f"sweep {name!r} is being run by another driver (pid {holder}) on {runs_dir}; "
                f"once it stops, continue it with: python sweeps/launch.py --resume {name}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def store_setup(runs_dir: Path, *, timeout: float = SETUP_TIMEOUT_SECONDS) -> Iterator[None]:
    """Held while a driver creates or opens the stores (MLflow's and Optuna's schemas, the
    experiment): drivers started together take turns instead of creating a schema twice."""
    fd = _open(runs_dir / "locks" / "store-setup.lock")
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DmlsweepError(
                        f"another driver has been setting up the stores of {runs_dir} for "
                        f"{timeout:.0f} s; is it hung? (see {runs_dir / 'locks'})"
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)
