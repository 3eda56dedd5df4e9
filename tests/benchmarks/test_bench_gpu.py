"""``benchmarks/bench_gpu.py`` runs tiny on the CPU (as CI has no GPU), so it cannot rot: every
objective trains from a generated real-layout tree and the figures it prints add up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support import REPO_ROOT


def test_the_gpu_benchmark_runs_tiny_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_gpu.py"), "--tiny",
         "--packing", "1,2", "--json", str(out), "--data", str(tmp_path / "trees")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["tiny"] is True
    # the trees are in the real layouts, as the readers check
    assert (tmp_path / "trees" / "CUB_200_2011" / "images.txt").is_file()
    assert (tmp_path / "trees" / "Sketchy" / "zeroshot1" / "cname_cid.txt").is_file()

    loader = figures["loader"]
    assert sorted((r["tree"], r["workers"]) for r in loader) == [
        ("cub200", 0), ("cub200", 0), ("cub200", 1), ("cub200", 1),
        ("sketchy", 0), ("sketchy", 0), ("sketchy", 1), ("sketchy", 1),
    ]  # fmt: skip
    for row in loader:
        assert row["images_per_s"] > 0
        assert row["per_core"] == row["images_per_s"] / max(row["workers"], 1)
    assert "per core" in proc.stdout

    training = {r["objective"]: r for r in figures["training"]}
    assert set(training) == {"ahsml", "dsn", "mathm", "baseline"}
    for row in training.values():
        assert row["device"] == "cpu" and row["amp"] == "off"  # no autocast on the CPU
        assert row["images_per_s"] > 0
        assert 0.0 <= row["data_wait_share"] <= 1.0
        assert row["peak_gpu_mib"] is None

    packs = figures["packing"]
    assert [(p["objective"], p["k"]) for p in packs] == [("baseline", 1), ("baseline", 2)]
    assert packs[0]["gain"] == 1.0
    assert packs[1]["gain"] == packs[1]["total_images_per_s"] / packs[0]["total_images_per_s"]
