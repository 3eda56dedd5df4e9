"""AHSML against its base MS loss under 40% symmetric label noise on the embedded digits.

Equal budgets (same epochs, batches, learning rate, embedding size), fixed default
hyperparameters, 5 seeds; reports mean and std of the validation MAP@R at the best epoch.
Trials are run directly (no Ray) on one thread.

    .venv/bin/python benchmarks/bench_ahsml_noise.py [--seeds 5] [--epochs 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]

import torch  # noqa: E402

import trainables.reporting as reporting  # noqa: E402
from trainables import baseline  # noqa: E402
from trainables.ahsml import objective as ahsml  # noqa: E402


def best_map_at_r(train, config: dict) -> float:
    reports: list[dict] = []
    reporting.restore_state = lambda: None
    reporting.report_epoch = lambda metrics, *, state=None: reports.append(metrics)
    train(config)
    return max(r["val/map_at_r"] for r in reports)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    common = {
        "max_epochs": args.epochs,
        "noise": "symmetric",
        "noise_rate": 0.4,
        "lr": 1e-3,
        "embedding_size": 32,
    }
    arms = {
        "MS (baseline)": (baseline.train, {}),
        "AHSML (MS base)": (ahsml.train, {}),
        "AHSML, Euclidean": (ahsml.train, {"hyperbolic": False}),
    }
    print(f"40% symmetric noise, {args.epochs} epochs, seeds 0..{args.seeds - 1}")
    for name, (train, extra) in arms.items():
        values = [best_map_at_r(train, {**common, **extra, "seed": s}) for s in range(args.seeds)]
        print(
            f"{name:18s} val MAP@R {statistics.mean(values):.4f} +- "
            f"{statistics.stdev(values):.4f}   {[round(v, 3) for v in values]}",
            flush=True,
        )


if __name__ == "__main__":
    main()
