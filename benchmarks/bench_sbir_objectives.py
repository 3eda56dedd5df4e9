"""Do MATHM's adaptive weighting and DSN's memory bank help, at equal budgets? (smoke scale)

On the embedded two-modality digits (SMOKE SCALE: 16x16 digits with a derived sketch modality,
6 train / 2 validation / 2 test classes; says nothing about Sketchy or TU-Berlin), with fixed
hyperparameters (the objectives' defaults) and the same epochs, batches and schedule per pair:

- MATHM, mode ``mathm`` (adaptive per-type weights) vs mode ``all`` (the plain sum of the
  within / cross / hybrid batch-hard triplets);
- DSN (CE + SupCon + memory bank, ``w_mem = 1``) vs CE + SupCon without the bank (``w_mem = 0``).

Each run calls ``train`` directly (no Ray; the reporting seam is replaced by a recorder) and
keeps the validation mAP@all of its last epoch. Seeds change the validation classes, the
initialisation, the batches and the views; the two arms of a pair share them, so the table
also gives the paired difference. The untrained network's mAP@all (same initialisation) is
the floor.

Usage: ``.venv/bin/python benchmarks/bench_sbir_objectives.py [--seeds 5] [--threads 1]``
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trainables.reporting as reporting  # noqa: E402
from trainables.sbir.data import load_sbir_data, sbir_settings  # noqa: E402
from trainables.sbir.evaluation import retrieval_metrics  # noqa: E402

PAIRS: tuple[tuple[str, str, dict[str, Any], str, dict[str, Any]], ...] = (
    ("mathm", "mathm (adaptive)", {"mode": "mathm"}, "all (plain)", {"mode": "all"}),
    ("dsn", "dsn (bank, w_mem=1)", {"w_mem": 1.0}, "CE+SupCon (w_mem=0)", {"w_mem": 0.0}),
)
EPOCHS = {"mathm": 4, "dsn": 3}  # as the digits spaces


def final_val_map(objective: str, config: dict[str, Any]) -> float:
    module = importlib.import_module(f"trainables.{objective}.objective")
    reports: list[dict[str, float]] = []
    reporting.report_epoch = lambda metrics, *, state=None: reports.append(metrics)  # type: ignore[assignment]
    reporting.restore_state = lambda: None  # type: ignore[assignment]
    module.train(config)
    return reports[-1]["val/map_all"]


def untrained_val_map(objective: str, config: dict[str, Any]) -> float:
    module = importlib.import_module(f"trainables.{objective}.objective")
    cfg_class = getattr(module, f"{objective.upper()}Config")
    data = load_sbir_data(sbir_settings(cfg_class(**config)), parts=("val",))
    assert data.val is not None
    torch.manual_seed(config["seed"])  # the initialisation train() starts from
    model = module.build_model(config)
    return retrieval_metrics(model, data.val, prefix="", device=torch.device("cpu"),
                             batch_size=256)["map_all"]  # fmt: skip


def summary(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} +- {std:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = list(range(args.seeds))
    print(
        f"SMOKE SCALE (embedded two-modality digits); seeds {seeds}; torch threads "
        f"{args.threads}; validation mAP@all of the last epoch (mean +- std over seeds)\n"
    )
    print(f"{'objective':9s} {'arm':22s} {'epochs':>6s} {'mAP@all':>18s}  per seed")
    for objective, name_a, over_a, name_b, over_b in PAIRS:
        base = {"max_epochs": EPOCHS[objective]}
        tic = time.perf_counter()
        floor = [untrained_val_map(objective, {**base, "seed": s}) for s in seeds]
        a = [final_val_map(objective, {**base, **over_a, "seed": s}) for s in seeds]
        b = [final_val_map(objective, {**base, **over_b, "seed": s}) for s in seeds]
        diff = [x - y for x, y in zip(a, b, strict=True)]
        for name, values in (("untrained", floor), (name_a, a), (name_b, b)):
            per_seed = " ".join(f"{v:.3f}" for v in values)
            print(
                f"{objective:9s} {name:22s} {EPOCHS[objective]:6d} {summary(values):>18s}  "
                f"{per_seed}"
            )
        wins = sum(d > 0 for d in diff)
        print(
            f"{objective:9s} {'paired difference':22s} {'':6s} {summary(diff):>18s}  "
            f"{name_a.split(' ')[0]} ahead on {wins}/{len(seeds)} seeds; "
            f"{time.perf_counter() - tic:.0f} s\n"
        )


if __name__ == "__main__":
    main()
