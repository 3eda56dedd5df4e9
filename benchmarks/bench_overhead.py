"""Platform overhead: the same trivial trainable swept by bare Ray Tune + OptunaSearch and by
dmlsweep with full tracking (MLflow parent/child runs, metrics, models, progress), in one run.

    .venv/bin/python benchmarks/bench_overhead.py [--trials 50] [--repeats 3]

Goal: dmlsweep / bare <= 1.10 for 50 trials. Both share one local Ray instance (started once,
not timed) and the same Tune settings: ASHA alike, TPE with the same seed, reuse_actors=True,
and dmlsweep's checkpoint retention (the trainable checkpoints every epoch and only the latest
is kept, which makes Tune snapshot its experiment state at each one: Tune's default, keeping
every checkpoint, runs the bare side ~1.7 s faster and would leave unbounded disk use to a
real sweep). To show where the difference goes, bare Tune also runs with its Optuna study
persisted in SQLite (as dmlsweep keeps it), and dmlsweep's end-of-sweep analysis is timed on
its own.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

import optuna  # noqa: E402


def quadratic_space(trial: optuna.Trial, *, max_epochs: int) -> dict:
    trial.suggest_float("x", -1.0, 1.0)
    trial.suggest_float("y", -1.0, 1.0)
    return {"max_epochs": max_epochs, "seed": 0, "objective": "quadratic"}


def bare(
    trials: int, max_epochs: int, storage: Path, *, optuna_db: Path | None = None
) -> tuple[float, int]:
    """Bare Tune + OptunaSearch, searching as dmlsweep does (the same seeded TPE, the space's
    defaults as the first trial); the study in memory, or persisted in SQLite at
    ``optuna_db``. Seconds, and the epochs the trials ran."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from dmlsweep.databases import open_optuna_storage
    from dmlsweep.spaces import load_space
    from trainables.quadratic import train

    tuner = tune.Tuner(
        tune.with_resources(train, {"cpu": 1}),
        tune_config=tune.TuneConfig(
            metric="val/score",
            mode="max",
            num_samples=trials,
            reuse_actors=True,
            search_alg=OptunaSearch(
                space=partial(quadratic_space, max_epochs=max_epochs),
                metric="val/score",
                mode="max",
                seed=0,
                points_to_evaluate=[load_space("quadratic").defaults()],
                **(
                    {"storage": open_optuna_storage(f"sqlite:///{optuna_db}"), "study_name": "bare"}
                    if optuna_db
                    else {}
                ),
            ),
            scheduler=ASHAScheduler(max_t=max_epochs, grace_period=1, reduction_factor=2),
        ),
        run_config=tune.RunConfig(
            name="bare",
            storage_path=str(storage),
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    tic = time.perf_counter()
    results = tuner.fit()
    seconds = time.perf_counter() - tic
    return seconds, sum(int(r.metrics["training_iteration"]) for r in results)


def platform(trials: int, max_epochs: int, runs_dir: Path, name: str) -> tuple[float, float, int]:
    """Seconds of the whole sweep and of its end-of-sweep analysis (importance and plots), and
    the epochs the trials ran."""
    from dmlsweep.sweep import SweepRequest, outcome, plan_sweep, run_sweep

    analysis_seconds = 0.0
    log_analysis = outcome.log_analysis

    def timed_analysis(*args: Any, **kwargs: Any) -> None:
        nonlocal analysis_seconds
        tic = time.perf_counter()
        log_analysis(*args, **kwargs)
        analysis_seconds = time.perf_counter() - tic

    tic = time.perf_counter()
    with mock.patch.object(outcome, "log_analysis", timed_analysis):
        result = run_sweep(
            plan_sweep(
                SweepRequest(
                    space="quadratic",
                    num_samples=trials,
                    max_epochs=max_epochs,
                    runs_dir=runs_dir,
                    name=name,
                )
            )
        )
    seconds = time.perf_counter() - tic
    return seconds, analysis_seconds, sum(int(r["epochs"] or 0) for r in result.trials)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--max-epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="rounds; medians are reported")
    args = parser.parse_args()
    import ray

    ray.init(include_dashboard=False, log_to_driver=False)
    times: dict[str, list[float]] = {"bare": [], "bare_db": [], "platform": [], "analysis": []}
    epochs: dict[str, list[int]] = {"bare": [], "bare_db": [], "platform": []}
    with tempfile.TemporaryDirectory() as tmp:
        # Warm both paths once (imports, Ray worker start) so neither pays a cold start. The
        # warm-up also creates the MLflow and Optuna databases, a one-time cost of a fresh
        # runs directory (about 2 s of schema migrations), as a user's ./dmlsweep-runs is reused.
        bare(2, args.max_epochs, Path(tmp) / "bare")
        platform(2, args.max_epochs, Path(tmp) / "runs", "warm-up")
        # Rounds alternate the sides, so a slow spell of the machine hits them alike.
        for round_ in range(args.repeats):
            for key, db in (("bare", None), ("bare_db", Path(tmp) / f"bare-{round_}.db")):
                seconds, ran = bare(args.trials, args.max_epochs, Path(tmp) / "bare", optuna_db=db)
                times[key].append(seconds)
                epochs[key].append(ran)
            total, analysis, ran = platform(
                args.trials, args.max_epochs, Path(tmp) / "runs", f"measured-{round_}"
            )
            times["platform"].append(total)
            times["analysis"].append(analysis)
            epochs["platform"].append(ran)
    median = {k: statistics.median(v) for k, v in times.items()}
    without_analysis = statistics.median(
        t - a for t, a in zip(times["platform"], times["analysis"], strict=True)
    )

    def line(label: str, key: str, note: str = "") -> None:
        each = " ".join(f"{t:.2f}" for t in times[key])
        if key in epochs:  # ASHA's stops depend on the order trials finish in
            note = f"   epochs run: {' '.join(map(str, epochs[key]))}"
        print(f"{label:<29}: {median[key]:7.2f} s   ({each}){note}")

    print(
        f"\n{args.trials} trials x {args.max_epochs} epochs (quadratic objective), medians of "
        f"{args.repeats} rounds"
    )
    line("bare Ray Tune + OptunaSearch", "bare")
    line("  the same, study in SQLite", "bare_db")
    line("dmlsweep, full tracking", "platform")
    line("  of which the analysis", "analysis", "  importance and plots, at the end")
    print(f"{'  dmlsweep without it':<29}: {without_analysis:7.2f} s")
    print(
        f"ratio                        : {median['platform'] / median['bare']:7.3f}   "
        "(goal <= 1.10)"
    )
    print(f"  without the analysis       : {without_analysis / median['bare']:7.3f}")
    print(
        f"  and against bare in SQLite : {without_analysis / median['bare_db']:7.3f}   "
        "(what dmlsweep adds to a persisted study)"
    )


if __name__ == "__main__":
    main()
