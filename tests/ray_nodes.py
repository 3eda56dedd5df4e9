"""Local Ray clusters for the tests, each node a ``ray start --block`` process in its own
process group, stopped by that group's id and its workers' pids (never ``ray stop``, which
would stop every Ray on the machine, other sessions' included; nor SIGTERM, which Ray's
daemons take tens of seconds to honour): the suite's shared head and the fault tests' two-node
cluster.

Ray nodes are started with ``--node-ip-address 127.0.0.1`` and joined at 127.0.0.1; Ray 2.60
still registers them under the machine's routable address, which drivers are then pointed to.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from support import VENV_BIN, free_port

T = TypeVar("T")


class Watched(Protocol):
    """A background process whose early exit ends a wait (a sweep driver)."""

    process: subprocess.Popen[bytes]

    def output(self) -> str: ...


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    driver: Watched | None = None,
    interval: float = 0.25,
) -> T:
    """Poll ``condition()`` until it returns something truthy, and return that; fail naming
    ``what`` on timeout, or at once if ``driver`` exits first (with the end of its output)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if driver is not None and driver.process.poll() is not None:
            raise AssertionError(
                f"the driver exited ({driver.process.returncode}) before {what}:\n"
                f"{driver.output()[-4000:]}"
            )
        if time.monotonic() > deadline:
            tail = f"\ndriver output:\n{driver.output()[-4000:]}" if driver else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{tail}")
        time.sleep(interval)


def kill_group(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(command name, parent pid, process group) of a live process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie is as good as gone
        return None
    return name, int(fields[1]), int(fields[2])


def alive(pid: int) -> bool:
    return _stat(pid) is not None


def start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot): with the pid, names one process even
    after the pid is reused."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text[text.rindex(")") + 2 :].split()[19])


def is_ray_worker(pid: int) -> bool:
    """Whether ``pid`` is a Ray worker process (guards every kill of a pid read from a file):
    ``ray::<task>`` once it runs, ``.../default_worker.py`` while it starts."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return alive(pid) and (cmdline.startswith(b"ray::") or b"/default_worker.py" in cmdline)


def processes_in_group(pgid: int) -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[2] == pgid:
                found[int(entry.name)] = stat[0]
    return found


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == pid:
                found.append(int(entry.name))
    return found


# -- Ray nodes ---------------------------------------------------------------------


def _ray_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return {**env, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", **extra}


@dataclass
class RayNode:
    """One ``ray start --block`` process, leader of the process group of the node's daemons
    (raylet, agents); the node's worker processes, the raylet's children, run in sessions of
    their own, so they are tracked and killed by pid."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    temp_dir: Path
    address: str = ""  # host:port of the GCS, for a head
    _workers_seen: dict[int, int | None] = field(default_factory=dict)  # pid -> start time

    def raylet_pid(self) -> int | None:
        found = [p for p, n in processes_in_group(self.process.pid).items() if n == "raylet"]
        return found[0] if found else None

    def worker_pids(self) -> list[int]:
        """The node's Ray worker processes (children of its raylet) alive now."""
        raylet = self.raylet_pid()
        workers = [p for p in children_of(raylet) if is_ray_worker(p)] if raylet else []
        self._workers_seen.update((p, start_time(p)) for p in workers)
        return workers

    def kill(self) -> None:
        """SIGKILL the node's daemons: a node lost to the cluster. Its workers, which notice
        their raylet's death by themselves, are killed too should any linger."""
        self.worker_pids()
        kill_group(self.process)
        self.process.wait(timeout=30)
        for pid, started in self._workers_seen.items():
            if is_ray_worker(pid) and start_time(pid) == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def started(self) -> bool:
        return "Ray runtime started" in self.log.read_text(errors="replace")


def _start_node(
    name: str,
    *,
    root: Path,
    num_cpus: int,
    args: list[str],
    env: dict[str, str],
    address: str = "",
    num_gpus: int = 0,
) -> RayNode:
    """``ray start --block`` in a new session; its log in ``root/<name>.log``. Its temp dir,
    the node's own (two raylets on one machine need their own sockets), is made under /tmp:
    a socket path under pytest's deep temp dirs passes Unix's 107-byte limit."""
    ray_bin = shutil.which("ray", path=str(VENV_BIN)) or "ray"
    log = root / f"{name}.log"
    temp_dir = Path(tempfile.mkdtemp(prefix=f"dmlsweep-{name}-"))
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                ray_bin,
                "start",
                "--block",
                f"--num-cpus={num_cpus}",
                f"--num-gpus={num_gpus}",  # logical GPUs: Ray schedules them, nothing uses them
                f"--temp-dir={temp_dir}",
                "--disable-usage-stats",
                # Fixed default ports would collide with the other node and other clusters.
                f"--dashboard-agent-listen-port={free_port()}",
                f"--dashboard-agent-grpc-port={free_port()}",
                f"--metrics-export-port={free_port()}",
                f"--runtime-env-agent-port={free_port()}",
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    node = RayNode(name=name, process=process, log=log, temp_dir=temp_dir, address=address)
    try:
        wait_until(
            lambda: node.started() or process.poll() is not None,
            timeout=120,
            what=f"the Ray {name} node",
        )
        if process.poll() is not None:
            raise AssertionError(f"ray {name} node exited:\n{log.read_text()[-3000:]}")
    except BaseException:
        node.kill()
        raise
    return node


def start_head(
    root: Path, *, num_cpus: int, num_gpus: int = 0, env: dict[str, str] | None = None
) -> RayNode:
    """A Ray head node listening on a free port (its address: ``node.address``); ``num_gpus``
    logical GPUs (on a CPU machine Ray schedules them like real ones)."""
    port = free_port()
    return _start_node(
        "head",
        root=root,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        address=f"127.0.0.1:{port}",
        args=[
            "--head",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            f"--ray-client-server-port={free_port()}",
        ],
        env=_ray_env(**(env or {})),
    )


@dataclass
class RayCluster:
    address: str  # host:port of the head's GCS
    head: RayNode
    worker: RayNode

    def stop(self) -> None:
        for node in (self.worker, self.head):
            if node.process.poll() is None:
                node.kill()


def start_two_node_cluster(root: Path) -> RayCluster:
    """A head and a worker node of one CPU each, as two ``ray start`` processes.

    The head's GCS declares a node dead after ~5 s of failed health checks (instead of ~15 s),
    so a node loss is handled within the test's time; not much less, lest a node of this busy
    2-core machine (its own head's raylet included) be declared dead while it lives."""
    head = start_head(
        root,
        num_cpus=1,
        env={"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "5"},
    )
    try:
        worker = _start_node(
            "worker", root=root, num_cpus=1, args=[f"--address={head.address}"], env=_ray_env()
        )
    except BaseException:
        head.kill()
        raise
    return RayCluster(address=head.address, head=head, worker=worker)
