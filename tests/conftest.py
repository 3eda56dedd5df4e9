"""Shared fixtures: one local Ray cluster for every test that needs Ray (started once)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

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
         "--include-dashboard=false", "--node-ip-address=127.0.0.1", f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        check=True, env=env, capture_output=True, timeout=120,
    )
    address = f"127.0.0.1:{port}"
    os.environ["RAY_ADDRESS"] = address  # in-process ray.init() joins this cluster
    yield address
    import ray

    ray.shutdown()  # else the driver waits a minute for the stopped head at exit
    subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.fixture(autouse=True)
def _restore_mlflow_tracking_uri() -> Iterator[None]:
    """``mlflow.set_tracking_uri`` is process-global (and exports MLFLOW_TRACKING_URI):
    undo it after each test so one test's store never becomes the next test's default."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if os.environ.get("MLFLOW_TRACKING_URI") != before:
        import mlflow

        mlflow.set_tracking_uri(before)
