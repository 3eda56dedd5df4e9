"""Fractional GPUs on a Ray cluster that declares one logical GPU (this machine has none):
``--gpus-per-trial 0.25`` runs four trials at once on the same GPU id, and a trial assigned a
GPU that cannot use CUDA fails at once, saying so.

The cluster is this module's own (the suite's shared head declares no GPU), stopped by its
process group and worker ids only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from ray_nodes import RayNode, start_head
from support import run_cli

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def gpu_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayNode]:
    head = start_head(tmp_path_factory.mktemp("ray-gpu"), num_cpus=4, num_gpus=1)
    try:
        yield head
    finally:
        head.kill()


def _trial_runs(runs_dir: Path, name: str) -> list:
    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("dmlsweep-baseline")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    return [
        r
        for r in runs
        if r.data.tags.get("dmlsweep.role") == "trial" and r.info.run_name.startswith(f"{name}-")
    ]


def test_a_quarter_gpu_each_packs_four_trials_on_one_gpu(gpu_head: RayNode, tmp_path: Path) -> None:
    proc = run_cli(
        "--space", "baseline", "--num-samples", "4", "--max-epochs", "6",
        "--address", gpu_head.address, "--gpus-per-trial", "0.25", "--cpus-per-trial", "1",
        "--scheduler", "fifo", "--set", "device=cpu", "--name", "packed",
        "--reproductions", "0", "--log-models", "0",
        cwd=tmp_path,
        # Tune starts a searcher's trials one at a time (each waits for its worker to start);
        # its documented knob lets all four start together, as the README says
        env={"TUNE_MAX_PENDING_TRIALS_PG": "4"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = _trial_runs(tmp_path / "dmlsweep-runs", "packed")
    assert len(runs) == 4
    assert all(r.info.status == "FINISHED" for r in runs)
    # every trial was handed GPU 0 by Ray, and trained on the CPU as its config said
    assert {r.data.tags["dmlsweep.runtime.gpu_ids"] for r in runs} == {"0"}
    assert {r.data.tags["dmlsweep.runtime.device"] for r in runs} == {"cpu"}
    # all four ran at the same time: the last to start started before the first to end ended
    starts = [r.info.start_time for r in runs]
    ends = [r.info.end_time for r in runs]
    assert max(starts) < min(ends), (starts, ends)


def test_a_gpu_trial_without_cuda_fails_at_once_naming_the_gpu(
    gpu_head: RayNode, tmp_path: Path
) -> None:
    proc = run_cli(
        "--space", "baseline", "--num-samples", "1", "--max-epochs", "2",
        "--address", gpu_head.address, "--gpus-per-trial", "0.25",
        "--scheduler", "fifo", "--max-retries", "0", "--name", "nocuda",
        "--reproductions", "0", "--log-models", "0",
        cwd=tmp_path,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert "Ray assigned GPU 0 to this trial, but CUDA is not usable" in output
    assert "torch.cuda.is_available() = False" in output and "device: cpu" in output
    (run,) = _trial_runs(tmp_path / "dmlsweep-runs", "nocuda")
    assert run.info.status == "FAILED"
    assert "val/map_at_r" not in run.data.metrics  # it failed before its first epoch
