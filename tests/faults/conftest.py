"""Fixtures of the fault tests (beside the suite's shared Ray head): sweep drivers started in
the background (killed if a test leaves one running), runs directories, a two-node Ray cluster,
an MLflow server that can be stopped. Every process is killed by its process group or pid, even
on failure."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faults.cluster import Driver, MlflowServer, StartDriver, start_driver
from ray_nodes import RayCluster, start_two_node_cluster


@pytest.fixture(scope="session")
def mlflow_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store with its schema made. Copied into each sweep's runs
    directory (and under the MLflow server), it spares every sweep the seconds of creating the
    schema; made in a subprocess so that no connection keeps the file open."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    code = (
        "import sys\nfrom mlflow.tracking import MlflowClient\n"
        "MlflowClient(f'sqlite:///{sys.argv[1]}').search_experiments()"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(path)], check=True, capture_output=True, timeout=300
    )
    return path


@pytest.fixture(scope="session")
def make_runs_dir(mlflow_db_template: Path) -> Callable[[Path], Path]:
    """``make_runs_dir(path)``: a new runs directory at ``path`` holding an empty MLflow store."""

    def make(path: Path) -> Path:
        path.mkdir(parents=True)
        shutil.copyfile(mlflow_db_template, path / "mlflow.db")
        return path

    return make


@pytest.fixture
def runs_dir(tmp_path: Path, make_runs_dir: Callable[[Path], Path]) -> Path:
    return make_runs_dir(tmp_path / "runs")


@pytest.fixture
def drivers(tmp_path: Path) -> Iterator[StartDriver]:
    """``drivers(*cli_args)`` starts the CLI in ``tmp_path`` (log ``driver-<n>.log``)."""
    started: list[Driver] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Driver:
        driver = start_driver(
            *args, cwd=tmp_path, log=tmp_path / f"driver-{len(started)}.log", env=env
        )
        started.append(driver)
        return driver

    yield start
    for driver in started:
        if driver.process.poll() is None:
            driver.kill()


@pytest.fixture(scope="module")
def two_node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    cluster = start_two_node_cluster(tmp_path_factory.mktemp("two-node"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def mlflow_server(tmp_path: Path, mlflow_db_template: Path) -> Iterator[MlflowServer]:
    root = tmp_path / "mlflow-server"
    root.mkdir()
    shutil.copyfile(mlflow_db_template, root / "mlflow.db")
    server = MlflowServer(root=root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
