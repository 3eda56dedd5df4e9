"""The reaper of a driver's local Ray guards that Ray only: none when the driver joins a cluster
(``RAY_ADDRESS``), and it leaves when that Ray is shut down while the driver lives, so a
process that starts Ray again and again (a notebook, the test suite) never piles them up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from support import REPO_ROOT

pytestmark = pytest.mark.ray

DRIVER = textwrap.dedent(
    """
    import json, os, time
    import psutil, ray
    from dmlsweep.sweep import cluster, reaper

    def reapers():
        return [p for p in psutil.Process().children(recursive=True)
                if "dmlsweep.sweep.reaper" in " ".join(p.cmdline())]

    cluster.init_ray(None, env={})
    found = reapers()
    report = {"reapers": len(found), "marked": reaper.MARK in os.environ}
    ray.shutdown()
    deadline = time.monotonic() + 20
    while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in found):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    report["left_after_shutdown"] = sum(p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                                        for p in found)
    print(json.dumps(report))
    """
)


def run_driver(**env: str) -> dict[str, int | bool]:
    environment = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    environment["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "platform"), str(REPO_ROOT)])
    result = subprocess.run(
        [sys.executable, "-c", DRIVER],
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, int | bool] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_a_local_ray_has_one_reaper_that_leaves_with_it() -> None:
    report = run_driver()
    assert report == {"reapers": 1, "marked": False, "left_after_shutdown": 0}


def test_a_driver_that_joins_a_cluster_starts_no_reaper(ray_address: str) -> None:
    report = run_driver(RAY_ADDRESS=ray_address)
    assert report == {"reapers": 0, "marked": False, "left_after_shutdown": 0}
