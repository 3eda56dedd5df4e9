"""Sweeps that share a runs dir: one driver per sweep name, and the stores set up one at a time.

Both are ``flock`` locks, which the kernel releases when their holder dies, however it dies: a
crashed driver never leaves a sweep locked. The stores' lock is the runs dir itself; a sweep's
is ``<runs dir>/<name>.lock``, there only while its driver runs.
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


@contextlib.contextmanager
def sole_driver(runs_dir: Path, name: str) -> Iterator[None]:
    """Held while this process drives the sweep ``name``; a second driver of it is refused."""
    path = runs_dir / f"{name}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DmlsweepError(
                f"sweep {name!r} is being run by another driver (pid {holder}) on {runs_dir}; "
                f"once it stops, continue it with: python sweeps/launch.py --resume {name}"
            ) from None
        try:  # the file locked must still be the one at path (its last holder removes it)
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def store_setup(runs_dir: Path, *, timeout: float = SETUP_TIMEOUT_SECONDS) -> Iterator[None]:
    """Held while a driver creates or opens the stores (MLflow's and Optuna's schemas, the
    experiment): drivers started together take turns instead of creating a schema twice."""
    fd = os.open(runs_dir, os.O_RDONLY | os.O_DIRECTORY)
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
                        f"{timeout:.0f} s; is it hung?"
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)
