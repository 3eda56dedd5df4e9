"""No process of a driver's local Ray outlives the driver, however it ends.

Ray stops the processes of a local instance when its driver exits, but a driver that is killed
(SIGKILL, a crash, a second Ctrl-C) leaves some behind: ``ray::DashboardAgent`` and
``ray::RuntimeEnvAgent`` poll for their raylet and outlive it for a minute or more, holding
memory and ports. The reaper is a small process of its own session, started by the driver once
its local Ray is up: every ``INTERVAL`` seconds it notes the driver's descendants (the Ray
instance the driver started, by process id and start time); when the driver is gone it ends
the ones still there and whatever they started since its last look (SIGTERM, then SIGKILL
after ``GRACE`` seconds) and exits.

Example::

    ray.init(...)
    start_reaper()  # before any trial starts
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

READY_SECONDS = 30.0  # how long the driver waits for the reaper's first look
INTERVAL = 0.5  # seconds between looks at the driver's process tree
GRACE = 2.0  # seconds between SIGTERM and SIGKILL


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
    told = False
    while True:
        try:
            if not driver.is_running() or driver.status() == psutil.STATUS_ZOMBIE:
                break
            for process in driver.children(recursive=True):
                if process.pid != me:
                    known.setdefault(process.pid, process)
        except psutil.NoSuchProcess:
            break
        if not told:  # the driver waits for this
            told = True
            sys.stdout.write("r")
            sys.stdout.flush()
        time.sleep(INTERVAL)
    # is_running() compares start times: a pid reused since is not ours
    left = [p for p in known.values() if p.is_running()]
    # and what they started since the last look (a trial's worker, forked by the raylet)
    for process in list(left):
        try:
            for child in process.children(recursive=True):
                if child.pid != me and child.pid not in known:
                    known[child.pid] = child
                    left.append(child)
        except psutil.NoSuchProcess:
            pass
    for process in left:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(left, timeout=GRACE)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    return [p.pid for p in left]


if __name__ == "__main__":
    reap(int(sys.argv[1]))
