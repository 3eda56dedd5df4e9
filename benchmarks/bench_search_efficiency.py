"""Search efficiency on the ``baseline`` objective: the share of a fixed epoch budget that
TPE + ASHA needs to reach the best validation MAP@R that random search + FIFO reaches with all
of it.

    .venv/bin/python benchmarks/bench_search_efficiency.py [--seeds 3] [--first-seed 0]
        [--num-samples 16] [--max-epochs 6] [--folds 1] [--tpe-samples N]
        [--n-startup-trials N] [--grace-period 1] [--reduction-factor 2] [--shared-sampler-seed]

Per seed s, both sweeps train with the same trial seed s (same class split or folds,
initialisation and batch order), so their validation values are comparable:

1. random + FIFO: ``num_samples`` trials of the space ``baseline`` as it is. Target T = the
   best final val/map_at_r of its COMPLETE trials.
2. TPE + ASHA: the same space and settings, with a ``searcher`` block added (the TPE sampler's
   own seed and, with ``--n-startup-trials``, how many random trials TPE draws before its
   model takes over; Optuna's default is 10). ``--tpe-samples`` trials (default: enough that
   ASHA's expected spend is about B).

With ``--folds K`` (K >= 2) every trial of BOTH sweeps is scored by class-disjoint K-fold
cross-validation over the non-test classes (``--set folds=K``): its metric is the mean over
the folds of each fold's final-epoch value, one report per fold, so ASHA's rungs are folds and
its early values are running means over the folds done (never an epoch of a fold mid-way).

Budget is counted in epochs trained: B = num_samples * max_epochs * max(folds, 1), an epoch
report costs one epoch and a fold report ``max_epochs`` epochs; a stopped trial costs only what
it trained. Every report of a sweep is ordered by the time the driver received it (MLflow
metric timestamps), so reports of trials still running count too. The fraction is

    f = (epochs of the reports up to and including the first final report >= T of a COMPLETE
         trial) / B

and "f > x (not reached)" when no COMPLETE trial reaches T, x being what TPE + ASHA spent in
all (its trajectory does not depend on ``--tpe-samples``, which only sets where it stops; so a
smaller one saves time without changing whether f <= 1/3). Only final values of trials that
ran to the end (all epochs, or all folds) count on both sides: an ASHA trial's early value is
never compared with a fully trained one. Goal: f <= 1/3.

For scale: a second random search with a fresh sampler seed reaches the first one's best
within B/3 with probability (N/3) / (N + N/3) = 1/4 per seed (i.i.d. final values, no ties),
so the goal asks TPE + ASHA to do clearly better than chance, seed after seed. The report also
prints where random search itself first reached its best (uniform over the run on average).

Sampler seeds: with one seed, Optuna's TPE draws its startup trials from a RandomSampler with
that seed, i.e. the very configurations random search draws first (checked with Optuna 5),
which would hand TPE part of random's target for free. So the TPE sweep's sampler seed
(``searcher.seed`` in its space file) is the trial seed + 10000; ``--shared-sampler-seed``
turns that off to show its effect. Both sweeps still start with the space's default
configuration (the platform enqueues it); the report marks a seed whose target came from that
shared trial.

Machine load changes wall time, not the fractions: those depend only on the order of reports,
which two trials running at once can shift slightly.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]
# Tune warns on every fast checkpoint of these short trials; the warnings drown the figures.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

from dmlsweep.spaces import SPACES_DIR  # noqa: E402
from dmlsweep.sweep import SweepOutcome, SweepRequest, plan_sweep, run_sweep  # noqa: E402

SPACE = "baseline"
METRIC = "val/map_at_r"  # the space's metric, mode max
GOAL = 1 / 3
SAMPLER_SEED_OFFSET = 10_000  # TPE's sampler seed = seed + this (unless --shared-sampler-seed)


@dataclass(frozen=True)
class Scale:
    """What one report is and costs: an epoch, or with cross-validation a whole fold."""

    max_epochs: int
    folds: int  # 1: the fixed validation split

    @property
    def final_step(self) -> int:  # training_iteration of a trial's last report
        return self.folds if self.folds > 1 else self.max_epochs

    @property
    def epochs_per_report(self) -> int:
        return self.max_epochs if self.folds > 1 else 1

    def budget(self, num_samples: int) -> int:
        return num_samples * self.final_step * self.epochs_per_report


@dataclass(frozen=True)
class Report:
    timestamp_ms: int  # when the driver received it
    trial: str
    step: int  # epoch, or folds done
    value: float


@dataclass(frozen=True)
class SweepTrace:
    """One sweep, reduced to what the fraction needs."""

    reports: list[Report]  # every report of every trial, in the order received
    complete: set[str]  # trials that ran to the end
    states: dict[str, int]  # COMPLETE / PRUNED / FAIL -> count
    defaults_trials: set[str]  # trials that ran the space's default configuration
    scale: Scale
    wall_s: float

    @property
    def epochs(self) -> int:
        return len(self.reports) * self.scale.epochs_per_report

    def finals(self) -> list[tuple[float, str]]:
        """(final value, trial) of every COMPLETE trial, in the order received."""
        return [
            (r.value, r.trial)
            for r in self.reports
            if r.step == self.scale.final_step and r.trial in self.complete
        ]

    def best_final(self) -> tuple[float, str] | None:
        """The best final value of a COMPLETE trial, and that trial."""
        finals = self.finals()
        return max(finals) if finals else None

    def epochs_to_reach(self, target: float) -> int | None:
        """Epochs of the reports received up to the first final report >= target of a
        COMPLETE trial (reports received in the same millisecond count too); None if never."""
        for r in self.reports:
            if r.step == self.scale.final_step and r.trial in self.complete and r.value >= target:
                received = sum(1 for q in self.reports if q.timestamp_ms <= r.timestamp_ms)
                return received * self.scale.epochs_per_report
        return None


def trace(outcome: SweepOutcome, *, scale: Scale, wall_s: float) -> SweepTrace:
    """Read every report's metric with its timestamp from the sweep's MLflow child runs."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=outcome.tracking_uri)
    defaults = outcome.space.defaults()
    reports: list[Report] = []
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
                f"Tune counted {row['epochs']}"
            )
        reports += [Report(m.timestamp, trial, m.step, m.value) for m in history]
    reports.sort(key=lambda r: (r.timestamp_ms, r.trial, r.step))
    return SweepTrace(
        reports=reports,
        complete=complete,
        states=states,
        defaults_trials=defaults_trials,
        scale=scale,
        wall_s=wall_s,
    )


def tpe_space(workdir: Path, *, seed: int, sampler_seed: int, n_startup_trials: int | None) -> Path:
    """The baseline space file with a TPE ``searcher`` block added; nothing else differs."""
    keys = [f"algorithm: tpe, seed: {sampler_seed}"]
    if n_startup_trials is not None:
        keys.append(f"n_startup_trials: {n_startup_trials}")
    path = workdir / f"baseline_tpe_seed{seed}.yaml"
    text = (SPACES_DIR / f"{SPACE}.yaml").read_text()
    path.write_text(f"{text.rstrip()}\nsearcher: {{{', '.join(keys)}}}\n")
    return path


@dataclass(frozen=True)
class Strategy:
    """What a sweep of the benchmark runs besides the trial seed."""

    space: str  # a space name or file
    searcher: str
    scheduler: str
    num_samples: int
    grace_period: int | None = None
    reduction_factor: int | None = None
    n_startup_trials: int | None = None  # tpe only; written into its space file


def sweep(strategy: Strategy, *, scale: Scale, seed: int, runs_dir: Path, name: str) -> SweepTrace:
    request = SweepRequest(
        space=strategy.space,
        num_samples=strategy.num_samples,
        max_epochs=scale.max_epochs,
        searcher=strategy.searcher,
        scheduler=strategy.scheduler,
        grace_period=strategy.grace_period,
        reduction_factor=strategy.reduction_factor,
        seed=seed,
        runs_dir=runs_dir,
        models_top_k=0,
        name=name,
        extra_settings={"folds": scale.folds} if scale.folds > 1 else {},
    )
    tic = time.perf_counter()
    outcome = run_sweep(plan_sweep(request))
    return trace(outcome, scale=scale, wall_s=time.perf_counter() - tic)


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
    scale: Scale,
    num_samples: int,
    tpe: Strategy,
    workdir: Path,
    sampler_seed_offset: int,
) -> SeedResult:
    budget = scale.budget(num_samples)
    random = sweep(
        Strategy(space=SPACE, searcher="random", scheduler="fifo", num_samples=num_samples),
        scale=scale,
        seed=seed,
        runs_dir=workdir / f"seed{seed}-random",
        name=f"random-fifo-seed{seed}",
    )
    best = random.best_final()
    if best is None:
        raise RuntimeError(f"seed {seed}: no random-search trial completed; no target")
    target, target_trial = best
    reached_random = random.epochs_to_reach(target)
    assert reached_random is not None  # the target is one of its own final values
    space = tpe_space(
        workdir,
        seed=seed,
        sampler_seed=seed + sampler_seed_offset,
        n_startup_trials=tpe.n_startup_trials,
    )
    tpe_trace = sweep(
        replace(tpe, space=str(space)),
        scale=scale,
        seed=seed,
        runs_dir=workdir / f"seed{seed}-tpe",
        name=f"tpe-asha-seed{seed}",
    )
    reached = tpe_trace.epochs_to_reach(target)
    tpe_best = tpe_trace.best_final()
    return SeedResult(
        seed=seed,
        budget=budget,
        target=target,
        target_is_defaults=target_trial in random.defaults_trials,
        random=random,
        random_fraction=reached_random / budget,
        tpe=tpe_trace,
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


def asha_steps_per_trial(*, final_step: int, grace: int, reduction: int) -> float:
    """Expected reports per trial under ASHA if each rung keeps exactly 1/reduction of the
    trials reaching it (rungs grace * reduction^k below final_step): sizes --tpe-samples."""
    rungs = []
    rung = min(grace, final_step)
    while rung < final_step:
        rungs.append(rung)
        rung *= reduction
    rungs.append(final_step)
    steps, survivors, done = 0.0, 1.0, 0
    for rung in rungs:
        steps += survivors * (rung - done)
        done = rung
        survivors /= reduction
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds (consecutive)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first .. first+seeds-1")
    parser.add_argument("--num-samples", type=int, default=16, help="random-search trials")
    parser.add_argument("--max-epochs", type=int, default=6, help="epochs per trial (per fold)")
    parser.add_argument(
        "--folds", type=int, default=1, help="K >= 2: score every trial by K-fold CV (both sides)"
    )
    parser.add_argument(
        "--tpe-samples", type=int, default=None, help="TPE + ASHA trials (default: spend ~B)"
    )
    parser.add_argument(
        "--n-startup-trials", type=int, default=None, help="TPE's random trials (Optuna: 10)"
    )
    parser.add_argument("--grace-period", type=int, default=1, help="ASHA's first rung")
    parser.add_argument("--reduction-factor", type=int, default=2, help="ASHA keeps 1/this")
    parser.add_argument(
        "--shared-sampler-seed",
        action="store_true",
        help="TPE's sampler seeded like random search's (see the docstring)",
    )
    args = parser.parse_args()
    scale = Scale(max_epochs=args.max_epochs, folds=args.folds)
    budget = scale.budget(args.num_samples)
    per_trial = asha_steps_per_trial(
        final_step=scale.final_step, grace=args.grace_period, reduction=args.reduction_factor
    )
    tpe_samples = args.tpe_samples or math.ceil(budget / (per_trial * scale.epochs_per_report))
    tpe = Strategy(
        space=SPACE,
        searcher="tpe",
        scheduler="asha",
        num_samples=tpe_samples,
        grace_period=args.grace_period,
        reduction_factor=args.reduction_factor,
        n_startup_trials=args.n_startup_trials,
    )
    offset = 0 if args.shared_sampler_seed else SAMPLER_SEED_OFFSET

    import ray

    # The first sweep starts one local Ray (with the checkout on its workers' path); the later
    # sweeps reuse it.
    results = []
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-search-efficiency-") as workdir:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            results.append(
                run_seed(
                    seed,
                    scale=scale,
                    num_samples=args.num_samples,
                    tpe=tpe,
                    workdir=Path(workdir),
                    sampler_seed_offset=offset,
                )
            )
            print(f"\n{describe(results[-1])}\n", flush=True)
    ray.shutdown()
    minutes = (time.perf_counter() - tic) / 60

    unit = f"{args.max_epochs} epochs" + (f" x {args.folds} folds" if args.folds > 1 else "")
    print(
        f"\nsearch efficiency, {SPACE} ({METRIC}, max"
        f"{f', {args.folds}-fold CV' if args.folds > 1 else ''}): budget B = "
        f"{args.num_samples} trials x {unit} = {budget} epochs; TPE + ASHA {tpe_samples} trials "
        f"(n_startup_trials {args.n_startup_trials or 'Optuna default 10'}, grace "
        f"{args.grace_period}, reduction {args.reduction_factor}); sampler seeds "
        f"{'shared' if args.shared_sampler_seed else 'independent'}; {minutes:.1f} min"
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
