"""Shared fixtures: one local Ray cluster for every test that needs Ray (started once)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from ray_nodes import start_head


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real local Ray head (2 CPUs) shared by the whole test session, as ``host:port``;
    SIGKILLed with its workers at the end (a test cluster has nothing to save)."""
    # A loopback-only test cluster: token auth off for the head and every driver alike (a
    # stale ~/.ray/auth_token would otherwise turn it on for the head only). The compose
    # stack and the cluster manifests keep token auth on.
    os.environ["RAY_AUTH_MODE"] = "disabled"
    head = start_head(tmp_path_factory.mktemp("ray"), num_cpus=2)
    os.environ["RAY_ADDRESS"] = head.address  # in-process ray.init() joins this cluster
    try:
        yield head.address
    finally:
        import ray

        ray.shutdown()  # else the driver waits a minute for the stopped head at exit
        head.kill()


@pytest.fixture(autouse=True)
def _restore_mlflow_tracking_uri() -> Iterator[None]:
    """``mlflow.set_tracking_uri`` is process-global (and exports MLFLOW_TRACKING_URI):
    undo it after each test so one test's store never becomes the next test's default."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if os.environ.get("MLFLOW_TRACKING_URI") != before:
        import mlflow

        mlflow.set_tracking_uri(before)


pytest_plugins = ["pytester"]
