"""Where a sweep runs: start or join Ray, check its resources, and where Tune keeps its state."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmlsweep.errors import DmlsweepError, ResourceError

if TYPE_CHECKING:
    from dmlsweep.sweep.plan import SweepPlan

REPO_ROOT = Path(__file__).resolve().parents[3]


def local_gpus() -> int:
    """The GPUs a local Ray would find: ``CUDA_VISIBLE_DEVICES`` when set, else ``nvidia-smi``."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def check_local_resources(plan: SweepPlan) -> None:
    """A sweep on a local Ray: this machine must hold one trial's CPUs and GPUs."""
    cpus = len(os.sched_getaffinity(0))
    check_resources(plan, cpus=cpus, gpus=local_gpus(), where="this machine (a local Ray)")


def check_resources(plan: SweepPlan, *, cpus: float, gpus: float, where: str) -> None:
    if plan.cpus_per_trial > cpus:
        raise ResourceError(
            f"--cpus-per-trial {plan.cpus_per_trial:g}: each trial asks for more CPUs than "
            f"{where} has ({cpus:g})"
        )
    if plan.gpus_per_trial > gpus:
        raise ResourceError(
            f"--gpus-per-trial {plan.gpus_per_trial:g}: each trial asks for more GPUs than "
            f"{where} has ({gpus:g})"
            + (
                "; without a GPU leave --gpus-per-trial out (trials then train on the CPU)"
                if gpus == 0
                else ""
            )
        )


def check_cluster(plan: SweepPlan) -> None:
    """For ``--dry-run`` on a cluster: join it, check its resources, leave; nothing written."""
    import ray

    assert plan.address is not None
    probe_ray_address(plan.address)
    init_ray(plan.address, env={})
    try:
        check_cluster_resources(plan)
    finally:
        ray.shutdown()


def check_cluster_resources(plan: SweepPlan) -> None:
    import ray

    total = ray.cluster_resources()
    check_resources(
        plan,
        cpus=total.get("CPU", 0.0),
        gpus=total.get("GPU", 0.0),
        where=f"the Ray cluster at {plan.address or 'a local Ray'}",
    )


def probe_ray_address(address: str, *, timeout: float = 5.0) -> None:
    """Refuse an address nobody listens on: ``ray.init`` would retry it for minutes."""
    if address == "auto":
        return  # Ray reads the running cluster's address from its own session files
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise DmlsweepError(f"cannot connect to Ray at {address}: {exc}") from exc


def s3_keys() -> dict[str, str]:
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    return {name: os.environ[name] for name in names if os.environ.get(name)}


def tune_storage(runs_dir: Path) -> dict[str, Any]:
    """Where Tune keeps results and checkpoints: the S3 bucket of ``DMLSWEEP_S3_BUCKET`` when
    set (so every node of a cluster, and a resumed driver, sees them), else under runs_dir."""
    if not os.environ.get("DMLSWEEP_S3_BUCKET", "").strip():
        return {"storage_path": str(runs_dir / "ray")}
    from dmlsweep.remote_storage import RemoteStorage

    remote = RemoteStorage.from_env()
    remote.check_access()
    return {
        "storage_path": remote.storage_path("ray"),
        # Keys come from each process's environment (see init_ray), never from the pickle.
        "storage_filesystem": remote.pyarrow_filesystem(with_keys=False),
    }


def experiment_path(storage: dict[str, Any], experiment: str) -> str:
    return f"{storage['storage_path'].rstrip('/')}/{experiment}"


def init_ray(address: str | None, *, env: dict[str, str]) -> None:
    """Join (or start) Ray; ``env`` is added to every worker's environment."""
    import ray

    if ray.is_initialized():
        return
    # Trials import the objectives; make the checkout importable in workers even when the
    # package is not installed in their environment.
    runtime_env = {
        "env_vars": {
            "PYTHONPATH": os.pathsep.join(
                [str(REPO_ROOT), str(REPO_ROOT / "platform"), os.environ.get("PYTHONPATH", "")]
            ),
            **env,
        }
    }
    # Without an address, ray.init() joins RAY_ADDRESS if it is set, else starts a Ray that
    # must go when this driver goes, however it ends.
    local = not address and not os.environ.get("RAY_ADDRESS")
    from dmlsweep.sweep import reaper

    try:
        with reaper.marked_environment() if local else contextlib.nullcontext():
            if address:
                ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
            else:
                ray.init(include_dashboard=False, runtime_env=runtime_env, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise DmlsweepError(
            f"cannot connect to Ray at {address or 'a new local instance'}: {exc}"
        ) from exc
    if local:
        reaper.start_reaper()


__all__ = [
    "check_cluster_resources",
    "check_local_resources",
    "experiment_path",
    "init_ray",
    "probe_ray_address",
    "tune_storage",
]
