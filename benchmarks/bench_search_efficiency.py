"""Search efficiency on the ``baseline`` objective: the share of a fixed epoch budget that
TPE + ASHA needs to reach the best validation MAP@R that random search + FIFO reaches with all
of it.

    .venv/bin/python benchmarks/bench_search_efficiency.py [--seeds 3] [--num-samples 16]
        [--max-epochs 6] [--tpe-samples N] [--shared-sampler-seed]

Per seed s, both sweeps train with the same trial seed s (same class split, initialisation
and batch order), so their validation values are comparable:

1. random + FIFO: ``num_samples`` trials of ``max_epochs`` epochs, budget
   B = num_samples * max_epochs epochs. Target T = the best final (epoch ``max_epochs``)
   val/map_at_r of its COMPLETE trials.
2. TPE + ASHA: enough trials that its epochs spent can pass B (``--tpe-samples``, default
   ceil(B / 2): ASHA with grace 1 and reduction 2 trains about 2.25 epochs per trial).

Budget is counted in epochs trained (a stopped trial costs only its epochs). Every epoch
report of a sweep is ordered by the time the driver received it (MLflow metric timestamps),
so epochs of trials still running count too. The fraction is

    f = (epoch reports up to and including the first final-epoch report >= T of a COMPLETE
         trial) / B

and f > 1 (not reached) when no COMPLETE trial reaches T. Only final values of trials that
ran all epochs count on both sides: an ASHA trial's early value is never compared with a
fully trained one. Goal: f <= 1/3.

Sampler seeds: with one seed, Optuna's TPE draws its first 10 (startup) trials from a
RandomSampler with that seed, i.e. the very configurations random search draws first (checked
with Optuna 5), which would hand TPE part of random's target for free. So the TPE sweep's
sampler seed is shifted (the trial seed is not); ``--shared-sampler-seed`` turns that off to
show its effect. Both
sweeps still start with the space's default configuration (the platform enqueues it); the
report marks a seed whose target came from that shared trial.

Machine load changes wall time, not the fractions: those depend only on the order of epoch
reports, which two trials running at once can shift slightly.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]
# Tune warns on every fast checkpoint of these short trials; the warnings drown the figures.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

from dmlsweep import runner  # noqa: E402
from dmlsweep.runner import SweepOptions, SweepOutcome, run_sweep  # noqa: E402

SPACE = "baseline"
METRIC = "val/map_at_r"  # the space's metric, mode max
GOAL = 1 / 3
SAMPLER_SEED_OFFSET = 10_000  # TPE's sampler seed = seed + this (unless --shared-sampler-seed)


@dataclass(frozen=True)
class EpochReport:
    timestamp_ms: int  # when the driver received it
    trial: str
    epoch: int
    value: float


@dataclass(frozen=True)
class SweepTrace:
    """One sweep, reduced to what the fraction needs."""

    reports: list[EpochReport]  # every epoch report of every trial, in the order received
    complete: set[str]  # trials that ran all epochs
    states: dict[str, int]  # COMPLETE / PRUNED / FAIL -> count
    defaults_trials: set[str]  # trials that ran the space's default configuration
    wall_s: float

    @property
    def epochs(self) -> int:
        return len(self.reports)

    def best_final(self, *, max_epochs: int) -> tuple[float, str] | None:
        """The best final value of a COMPLETE trial, and that trial."""
        finals = [
            (r.value, r.trial)
            for r in self.reports
            if r.epoch == max_epochs and r.trial in self.complete
        ]
        return max(finals) if finals else None

    def epochs_to_reach(self, target: float, *, max_epochs: int) -> int | None:
        """Epoch reports received up to the first final report >= target of a COMPLETE
        trial (reports received in the same millisecond count too); None if never."""
        for r in self.reports:
            if r.epoch == max_epochs and r.trial in self.complete and r.value >= target:
                return sum(1 for q in self.reports if q.timestamp_ms <= r.timestamp_ms)
        return None


def trace(outcome: SweepOutcome, *, wall_s: float) -> SweepTrace:
    """Read every epoch's metric with its timestamp from the sweep's MLflow child runs."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=outcome.tracking_uri)
    defaults = outcome.space.defaults()
    reports: list[EpochReport] = []
    complete: set[str] = set()
    states: dict[str, int] = {}
    defaults_trials: set[str] = set()
    for row in outcome.trials:
        trial, state = str(row["trial"]), row["state"]
        states[state] = states.get(state, 0) + 1
        if state == "COMPLETE":
            complete.add(trial)
        if all(row.get(name) == value for name, value in defaults.items()):
            defaults_trials.add(trial)
        if row["run_id"] is None:
            continue
        history = client.get_metric_history(row["run_id"], METRIC)
        if row["epochs"] is not None and len(history) != row["epochs"]:
            # The count is the budget: a lost or duplicated report would bias the figure.
            raise RuntimeError(
                f"trial {trial}: MLflow holds {len(history)} reports of {METRIC}, "
                f"Tune counted {row['epochs']} epochs"
            )
        reports += [EpochReport(m.timestamp, trial, m.step, m.value) for m in history]
    reports.sort(key=lambda r: (r.timestamp_ms, r.trial, r.epoch))
    return SweepTrace(
        reports=reports,
        complete=complete,
        states=states,
        defaults_trials=defaults_trials,
        wall_s=wall_s,
    )


def sweep(
    *,
    searcher: str,
    scheduler: str,
    num_samples: int,
    max_epochs: int,
    seed: int,
    runs_dir: Path,
    sampler_seed_offset: int = 0,
) -> SweepTrace:
    options = SweepOptions(
        space=SPACE,
        num_samples=num_samples,
        max_epochs=max_epochs,
        searcher=searcher,
        scheduler=scheduler,
        seed=seed,
        runs_dir=runs_dir,
        models_top_k=0,
        name=f"{searcher}-{scheduler}-seed{seed}",
    )
    # SweepOptions.seed is both the trial seed and the sampler seed; only the latter moves.
    shift: AbstractContextManager[Any] = nullcontext()
    if sampler_seed_offset:
        build_sampler = runner.build_sampler

        def shifted(strategy: Any, *, seed: int) -> Any:
            return build_sampler(strategy, seed=seed + sampler_seed_offset)

        shift = mock.patch.object(runner, "build_sampler", shifted)
    tic = time.perf_counter()
    with shift:
        outcome = run_sweep(options)
    return trace(outcome, wall_s=time.perf_counter() - tic)


@dataclass(frozen=True)
class SeedResult:
    seed: int
    budget: int
    target: float
    target_is_defaults: bool
    random: SweepTrace
    random_fraction: float  # where random itself first reached its target
    tpe: SweepTrace
    tpe_best: float | None
    fraction: float  # inf: not reached


def run_seed(
    seed: int,
    *,
    num_samples: int,
    max_epochs: int,
    tpe_samples: int,
    workdir: Path,
    sampler_seed_offset: int,
) -> SeedResult:
    budget = num_samples * max_epochs
    random = sweep(
        searcher="random",
        scheduler="fifo",
        num_samples=num_samples,
        max_epochs=max_epochs,
        seed=seed,
        runs_dir=workdir / f"seed{seed}-random",
    )
    best = random.best_final(max_epochs=max_epochs)
    if best is None:
        raise RuntimeError(f"seed {seed}: no random-search trial completed; no target")
    target, target_trial = best
    reached_random = random.epochs_to_reach(target, max_epochs=max_epochs)
    assert reached_random is not None  # the target is one of its own final values
    tpe = sweep(
        searcher="tpe",
        scheduler="asha",
        num_samples=tpe_samples,
        max_epochs=max_epochs,
        seed=seed,
        runs_dir=workdir / f"seed{seed}-tpe",
        sampler_seed_offset=sampler_seed_offset,
    )
    reached = tpe.epochs_to_reach(target, max_epochs=max_epochs)
    tpe_best = tpe.best_final(max_epochs=max_epochs)
    return SeedResult(
        seed=seed,
        budget=budget,
        target=target,
        target_is_defaults=target_trial in random.defaults_trials,
        random=random,
        random_fraction=reached_random / budget,
        tpe=tpe,
        tpe_best=tpe_best[0] if tpe_best else None,
        fraction=reached / budget if reached is not None else math.inf,
    )


def describe(result: SeedResult) -> str:
    tpe = result.tpe
    fraction = (
        f"{result.fraction:.3f}"
        if math.isfinite(result.fraction)
        else f"> {tpe.epochs / result.budget:.2f} (not reached)"
    )
    states = " ".join(f"{k.lower()} {v}" for k, v in sorted(tpe.states.items()))
    best = f"{result.tpe_best:.4f}" if result.tpe_best is not None else "none"
    return (
        f"seed {result.seed}: target {result.target:.4f}"
        f"{' (the shared default trial)' if result.target_is_defaults else ''}, "
        f"random reached it at {result.random_fraction:.3f} of B={result.budget} "
        f"({result.random.epochs} epochs, {result.random.wall_s:.0f} s)\n"
        f"        tpe+asha: fraction {fraction}   {goal_mark(result.fraction)}   "
        f"[{sum(tpe.states.values())} trials: {states}; {tpe.epochs} epochs spent, "
        f"best final {best}, {tpe.wall_s:.0f} s]"
    )


def goal_mark(fraction: float) -> str:
    return "goal met" if fraction <= GOAL else "goal MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. seeds-1")
    parser.add_argument("--num-samples", type=int, default=16, help="random-search trials")
    parser.add_argument("--max-epochs", type=int, default=6)
    parser.add_argument(
        "--tpe-samples", type=int, default=None, help="TPE + ASHA trials (default: ceil(B / 2))"
    )
    parser.add_argument(
        "--shared-sampler-seed",
        action="store_true",
        help="TPE's sampler seeded like random search's (see the docstring)",
    )
    args = parser.parse_args()
    budget = args.num_samples * args.max_epochs
    tpe_samples = args.tpe_samples or math.ceil(budget / 2)
    offset = 0 if args.shared_sampler_seed else SAMPLER_SEED_OFFSET

    import ray

    # The first sweep starts one local Ray (with the checkout on its workers' path); the later
    # sweeps reuse it.
    results = []
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-search-efficiency-") as workdir:
        for seed in range(args.seeds):
            results.append(
                run_seed(
                    seed,
                    num_samples=args.num_samples,
                    max_epochs=args.max_epochs,
                    tpe_samples=tpe_samples,
                    workdir=Path(workdir),
                    sampler_seed_offset=offset,
                )
            )
            print(f"\n{describe(results[-1])}\n", flush=True)
    ray.shutdown()
    minutes = (time.perf_counter() - tic) / 60

    print(
        f"\nsearch efficiency, {SPACE} ({METRIC}, max): budget B = {args.num_samples} x "
        f"{args.max_epochs} = {budget} epochs; TPE + ASHA {tpe_samples} trials; sampler "
        f"seeds {'shared' if args.shared_sampler_seed else 'independent'}; {minutes:.1f} min"
    )
    for result in results:
        print(describe(result))
    fractions = [r.fraction for r in results]
    reached = [f for f in fractions if math.isfinite(f)]
    median = statistics.median(fractions)
    mean = (
        f"{statistics.fmean(reached):.3f}"
        if len(reached) == len(fractions)
        else f"n/a ({len(fractions) - len(reached)} of {len(fractions)} not reached)"
    )
    print(
        f"fraction of B that TPE + ASHA needed: median "
        f"{f'{median:.3f}' if math.isfinite(median) else 'not reached'}, mean {mean}; "
        f"{sum(f <= GOAL for f in fractions)} of {len(fractions)} seeds <= 1/3   "
        f"(goal: median <= 1/3: {goal_mark(median)})"
    )


if __name__ == "__main__":
    main()
