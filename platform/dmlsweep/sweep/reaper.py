"""No process of a driver's local Ray outlives the driver, however it ends.

Ray stops the processes of a local instance when its driver exits, but a driver that is killed
(SIGKILL, a crash, a second Ctrl-C) leaves some behind: ``ray::DashboardAgent`` and
``ray::RuntimeEnvAgent`` poll for their raylet and outlive it for a minute or more, holding
memory and ports. The reaper is a small process of its own session, started by the driver once
its local Ray is up: every ``INTERVAL`` seconds it notes the driver's descendants (by process
id and start time). A process born since its last look may already be orphaned (the raylet
shares the driver's fate), so the driver marks its environment while it starts Ray
(:data:`MARK` = its pid): the raylet inherits it, and so does every worker the raylet starts
later (the agents, whose title overwrites it, are long-lived and noted). When the driver is
gone, the reaper ends the noted processes still there and every process carrying the mark
(SIGTERM, then SIGKILL after ``GRACE`` seconds) and exits. It also exits, ending nothing, once
none of the processes of its first look is left while the driver lives (``ray.shutdown()``):
a driver that starts Ray again starts a new reaper, and none accumulate.

Example::

    with marked_environment():
        ray.init(...)
    start_reaper()  # before any trial starts
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MARK = "DMLSWEEP_RAY_DRIVER"  # environment variable: the pid of the driver that started Ray
READY_SECONDS = 30.0  # how long the driver waits for the reaper's first look
INTERVAL = 0.5  # seconds between looks at the driver's process tree
GRACE = 2.0  # seconds between SIGTERM and SIGKILL


@contextmanager
def marked_environment() -> Iterator[None]:
    """Mark this process's environment while the local Ray it starts inherits it; only that
    Ray carries the mark (what the driver starts afterwards is not the reaper's)."""
    before = os.environ.get(MARK)
    os.environ[MARK] = str(os.getpid())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(MARK, None)
        else:
            os.environ[MARK] = before


def start_reaper() -> subprocess.Popen[bytes]:
    """Start the reaper of this process's local Ray (a process in a session of its own, so
    a Ctrl-C to the terminal's process group reaches the driver, not the reaper). Returns once
    the reaper has noted the driver's Ray (or after ``READY_SECONDS``)."""
    reaper = subprocess.Popen(
        [sys.executable, "-m", "dmlsweep.sweep.reaper", str(os.getpid())],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert reaper.stdout is not None
    ready, _, _ = select.select([reaper.stdout], [], [], READY_SECONDS)
    if ready:
        reaper.stdout.read(1)  # its first look is taken: a kill from now on is covered
    return reaper


def reap(driver_pid: int) -> list[int]:
    """Watch ``driver_pid`` until it is gone, then end what it left; the pids ended."""
    import psutil

    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        return []
    me = os.getpid()
    known: dict[int, psutil.Process] = {}
    first: list[psutil.Process] = []  # the Ray instance this reaper guards
    while True:
        try:
            if not driver.is_running() or driver.status() == psutil.STATUS_ZOMBIE:
                break
            for process in driver.children(recursive=True):
                if process.pid != me:
                    known.setdefault(process.pid, process)
        except psutil.NoSuchProcess:
            break
        if not first:  # the driver waits for this
            first = list(known.values()) or [driver]
            sys.stdout.write("r")
            sys.stdout.flush()
        elif not any(p.is_running() for p in first):  # shut down while the driver lives
            return []
        time.sleep(INTERVAL)
    # is_running() compares start times: a pid reused since is not ours
    left = {p.pid: p for p in known.values() if p.is_running()}
    left.update((p.pid, p) for p in _marked(str(driver_pid)))  # born since the last look
    for process in left.values():
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(list(left.values()), timeout=GRACE)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    return list(left)


def _marked(driver_pid: str) -> list[Any]:
    """The processes (this one excepted) whose environment carries ``driver_pid``'s mark."""
    import psutil

    found = []
    for process in psutil.process_iter():
        try:
            if process.pid != os.getpid() and process.environ().get(MARK) == driver_pid:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


if __name__ == "__main__":
    reap(int(sys.argv[1]))
