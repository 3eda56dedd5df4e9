"""Processes the fault tests start and break: a sweep driver and an MLflow server (the Ray
clusters are in ``ray_nodes``). Each is started in its own process group and stopped by it;
the MLflow server listens on loopback only.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ray_nodes import kill_group, processes_in_group, wait_until
from support import CLI_URL_VARIABLES, REPO_ROOT, VENV_BIN, free_port, http_ok

# -- the sweep driver ---------------------------------------------------------------------------


@dataclass
class Driver:
    """``python sweeps/launch.py ...`` running in the background, its output in ``log``."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.is_file() else ""

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the driver process only: what a crashed or OOM-killed driver looks like."""
        self.process.kill()
        self.process.wait(timeout=30)

    def wait(self, *, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(
                f"the driver ran past {timeout:.0f} s:\n{self.output()[-4000:]}"
            ) from None


StartDriver = Callable[..., Driver]  # the ``drivers`` fixture: ``drivers(*cli_args, env=...)``


def start_driver(*args: str, cwd: Path, log: Path, env: dict[str, str] | None = None) -> Driver:
    """Start the CLI as ``support.run_cli`` runs it, without waiting for it."""
    inherited = {
        k: v for k, v in os.environ.items() if k not in CLI_URL_VARIABLES and k != "RAY_ADDRESS"
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "sweeps" / "launch.py"), *args],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**inherited, **(env or {})},
        )
    return Driver(process=process, log=log)


# -- an MLflow tracking server ------------------------------------------------------------------


@dataclass
class MlflowServer:
    """``mlflow server`` on a SQLite store, on a fixed loopback port so that it can be
    stopped and started again at the same address."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / "mlflow-server.log"

    def start(self, *, timeout: float = 120) -> None:
        mlflow_bin = shutil.which("mlflow", path=str(VENV_BIN)) or "mlflow"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        # No GenAI job runner: a faster start, the same tracking.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    mlflow_bin,
                    "server",
                    "--backend-store-uri",
                    f"sqlite:///{self.root / 'mlflow.db'}",
                    "--artifacts-destination",
                    (self.root / "artifacts").as_uri(),
                    "--serve-artifacts",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    "1",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        process = self.process
        try:
            wait_until(
                lambda: http_ok(f"{self.url}/health") or process.poll() is not None,
                timeout=timeout,
                what="the MLflow server",
                interval=0.2,
            )
        except BaseException:
            self.stop()
            raise
        if process.poll() is not None:
            raise AssertionError(f"mlflow server exited:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM the server's process group (an administrator's restart); SIGKILL it if any
        of it is left after 20 s."""
        process, self.process = self.process, None
        if process is None:
            return
        kill_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=20)
            # uvicorn's worker, in the same group, may outlive the parent for a moment.
            wait_until(
                lambda: not processes_in_group(process.pid),
                timeout=20,
                what="the MLflow server's processes to exit",
            )
        except (subprocess.TimeoutExpired, AssertionError):
            kill_group(process)
            process.wait(timeout=20)


__all__ = ["Driver", "MlflowServer", "StartDriver", "start_driver"]
