"""Wall time of the README's main job: the default 20-trial ``baseline`` sweep, from a cold start
(a new process, a new local Ray, fresh databases), as a user runs it.

    .venv/bin/python benchmarks/bench_default_sweep.py [--space baseline]

Goal on the 2-core machine: under 60 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--space", default="baseline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        tic = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(ROOT / "sweeps" / "launch.py"), "--space", args.space],
            cwd=workdir,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - tic
    if proc.returncode != 0:
        sys.exit(proc.stdout[-2000:] + proc.stderr[-4000:])
    print("\n".join(line for line in proc.stdout.splitlines() if "finished:" in line))
    print(f"default {args.space} sweep (20 trials), cold start: {seconds:.1f} s   (goal < 60 s)")


if __name__ == "__main__":
    main()
