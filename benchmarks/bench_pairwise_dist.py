"""Pairwise geodesic distance on the Poincare ball: ``pairwise_dist`` (closed form, float64
Gram terms) against geoopt's broadcast ``ball.dist(x[:, None], y[None])``, forward + backward,
CPU float32, one thread.

    .venv/bin/python benchmarks/bench_pairwise_dist.py
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import geoopt  # noqa: E402
import torch  # noqa: E402

from trainables.dml.hyperbolic import pairwise_dist  # noqa: E402


def milliseconds(fn: Callable[[], None], reps: int) -> float:
    fn()  # warm-up (geoopt compiles on first use)
    tic = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - tic) / reps * 1e3


def main() -> None:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    ball = geoopt.PoincareBall(c=0.1)
    print(f"{'B x D':>10}  {'pairwise_dist':>14}  {'geoopt':>10}  speed-up")
    for b, d in [(128, 128), (400, 128), (400, 512)]:
        x = (torch.randn(b, d) * 0.05).requires_grad_(True)
        ours = milliseconds(lambda x=x: pairwise_dist(x, x, curvature=0.1).sum().backward(), 10)
        geo = milliseconds(lambda x=x: ball.dist(x[:, None], x[None]).sum().backward(), 2)
        print(f"{b:>4} x {d:<4}  {ours:11.1f} ms  {geo:7.1f} ms  x{geo / ours:.0f}")


if __name__ == "__main__":
    main()
