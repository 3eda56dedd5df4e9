"""Shared fixtures: one local Ray cluster for every test that needs Ray (started once)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import VENV_BIN, free_port


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real local Ray head (2 CPUs) shared by the whole test session, as ``host:port``."""
    ray_bin = shutil.which("ray", path=str(VENV_BIN)) or "ray"
    port = free_port()
    temp_dir = tmp_path_factory.mktemp("ray")
    # A loopback-only test cluster: token auth off for the head and every driver alike (a
    # stale ~/.ray/auth_token would otherwise turn it on for the head only). The compose
    # stack and the cluster manifests keep token auth on.
    os.environ["RAY_AUTH_MODE"] = "disabled"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run(
        [ray_bin, "start", "--head", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
         "--include-dashboard=false", "--node-ip-address=127.0.0.1", f"--temp-dir={temp_dir}",
         "--disable-usage-stats"],
        check=True, env=env, capture_output=True, timeout=120,
    )
    address = f"127.0.0.1:{port}"
    os.environ["RAY_ADDRESS"] = address  # in-process ray.init() joins this cluster
    yield address
    import ray

    ray.shutdown()  # else the driver waits a minute for the stopped head at exit
    stop_ray_processes(temp_dir)


def stop_ray_processes(temp_dir: Path, *, timeout: float = 30.0) -> None:
    """Stop the Ray processes of one cluster (those whose command line names its temp dir);
    ``ray stop`` would stop every Ray on the machine, other clusters included."""
    import signal
    import time

    def pids() -> list[int]:
        out = subprocess.run(["pgrep", "-f", str(temp_dir)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split() if int(p) != os.getpid()]

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not pids():
            return


@pytest.fixture(autouse=True)
def _restore_mlflow_tracking_uri() -> Iterator[None]:
    """``mlflow.set_tracking_uri`` is process-global (and exports MLFLOW_TRACKING_URI):
    undo it after each test so one test's store never becomes the next test's default."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if os.environ.get("MLFLOW_TRACKING_URI") != before:
        import mlflow

        mlflow.set_tracking_uri(before)
