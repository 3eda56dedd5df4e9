"""Reproductions: the best configurations re-trained with fresh seeds, evaluated on test classes.

A search picks the configuration that did best on the validation classes with one seed; how
good it is only shows when it is trained again with other seeds and evaluated, once, on the
test classes (the Reality Check protocol). ``--reproductions N`` does that for the top
``--reproduce-top K`` configurations after the search: K x N Ray Tune trials, each a full
training run followed by the objective's ``evaluate_test``. Every reproduction gets a child run
(``dmlsweep.role = reproduction``); the parent run gets, per test metric ``M``, ``repro/M/mean``,
``repro/M/std``, ``repro/M/ci95_low``, ``repro/M/ci95_high`` and ``repro/n`` for the best
configuration (``repro/rank<k>/M/...`` for the k-th), and the console a table.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dmlsweep import schema
from dmlsweep.errors import DmlsweepError

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof 1) and the Student-t confidence interval."""

    mean: float
    std: float
    ci_low: float
    ci_high: float
    n: int

    def format(self) -> str:
        return (
            f"{self.mean:.4f} ± {self.std:.4f} [{self.ci_low:.4f}, {self.ci_high:.4f}] (n={self.n})"
        )


def summarize(values: Sequence[float], *, confidence: float = CONFIDENCE) -> Summary:
    """``mean ± t_{(1+c)/2, n-1} · s / sqrt(n)``: the interval for the mean over seeds."""
    from scipy import stats

    n = len(values)
    if n < 2:
        raise ValueError(f"a confidence interval needs at least 2 values, got {n}")
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf((1 + confidence) / 2, df=n - 1)) * std / math.sqrt(n)
    return Summary(mean=mean, std=std, ci_low=mean - half, ci_high=mean + half, n=n)


def reproduction_seeds(*, search_seed: int, n: int) -> list[int]:
    """Seeds no search trial used (the search ran every trial with ``search_seed``); the same
    seeds for every configuration, so configurations compare seed by seed."""
    return [search_seed + 1 + i for i in range(n)]


@dataclass(frozen=True)
class Reproduction:
    rank: int  # 1 = the search's best configuration
    seed: int
    metrics: Mapping[str, float]  # the final validation metrics and the test/* metrics
    run_id: str | None = None
    runtime: Mapping[str, str] = field(default_factory=dict)  # runtime/* (device)


def run_reproductions(
    *,
    configs: Sequence[Mapping[str, Any]],
    n: int,
    search_seed: int,
    name: str,
    resources: Mapping[str, float],
    tune_storage: Mapping[str, Any],
    max_retries: int,
) -> list[Reproduction]:
    """Train each configuration ``n`` times with fresh seeds and evaluate it on the test classes."""
    from ray import tune

    from dmlsweep.tracking import runtime_of
    from dmlsweep.tune_records import tune_environment, tune_loggers
    from trainables.reproduction import reproduce

    if n < 2:
        raise DmlsweepError(f"--reproductions needs at least 2 runs (for an interval), got {n}")
    grid = [
        {**config, "seed": seed, "reproduction_rank": rank}
        for rank, config in enumerate(configs, start=1)
        for seed in reproduction_seeds(search_seed=search_seed, n=n)
    ]
    tuner = tune.Tuner(
        tune.with_resources(reproduce, dict(resources)),
        param_space={"reproduction": tune.grid_search(grid)},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(
            name=f"{name}-reproductions",
            **tune_storage,
            verbose=0,
            callbacks=tune_loggers(),
            failure_config=tune.FailureConfig(max_failures=max_retries),
        ),
    )
    out = []
    with tune_environment():
        fitted = tuner.fit()
    results: list[Any] = [fitted[i] for i in range(len(fitted))]  # ResultGrid: not typed iterable
    for result in results:
        config = result.config["reproduction"]
        if result.error is not None:
            raise DmlsweepError(
                f"reproduction of configuration {config['reproduction_rank']} with seed "
                f"{config['seed']} failed: {result.error}"
            )
        metrics = {
            k: float(v)
            for k, v in result.metrics.items()
            if "/" in k and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        out.append(
            Reproduction(
                rank=config["reproduction_rank"],
                seed=config["seed"],
                metrics=metrics,
                runtime=runtime_of(result.metrics),
            )
        )
    return sorted(out, key=lambda r: (r.rank, r.seed))


def summarize_reproductions(reproductions: Sequence[Reproduction]) -> dict[int, dict[str, Summary]]:
    """rank -> test metric -> summary over the seeds."""
    by_rank: dict[int, dict[str, list[float]]] = {}
    for rep in reproductions:
        for key, value in rep.metrics.items():
            if key.startswith("test/"):
                by_rank.setdefault(rep.rank, {}).setdefault(key, []).append(value)
    return {
        rank: {k: summarize(v) for k, v in metrics.items()} for rank, metrics in by_rank.items()
    }


def log_reproductions(
    *,
    client: Any,
    experiment_id: str,
    parent_run_id: str,
    sweep_name: str,
    reproductions: Sequence[Reproduction],
    configs: Sequence[Mapping[str, Any]],
) -> dict[int, dict[str, Summary]]:
    """One child run per reproduction; the statistics on the parent run."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    from dmlsweep.tracking import runtime_tags

    now = int(time.time() * 1000)
    for rep in reproductions:
        config = configs[rep.rank - 1]
        run = client.create_run(
            experiment_id,
            run_name=f"{sweep_name}-repro{rep.rank}-seed{rep.seed}",
            tags={
                MLFLOW_PARENT_RUN_ID: parent_run_id,
                schema.ROLE: schema.REPRODUCTION_ROLE,
                schema.RANK: str(rep.rank),
                schema.SEED: str(rep.seed),
                # where it ran, as a trial's run records it
                **runtime_tags(rep.runtime),
            },
        )
        params = {**config, "seed": rep.seed}
        client.log_batch(
            run.info.run_id,
            params=[Param(k, str(v)[:6000]) for k, v in sorted(params.items())],
            metrics=[Metric(k, v, now, 0) for k, v in rep.metrics.items()],
        )
        client.set_terminated(run.info.run_id, "FINISHED")
    summaries = summarize_reproductions(reproductions)
    metrics = []
    for rank, by_metric in summaries.items():
        prefix = "repro" if rank == 1 else f"repro/rank{rank}"
        for key, s in by_metric.items():
            for stat, value in (
                ("mean", s.mean),
                ("std", s.std),
                ("ci95_low", s.ci_low),
                ("ci95_high", s.ci_high),
            ):
                metrics.append(Metric(f"{prefix}/{key}/{stat}", value, now, 0))
        metrics.append(Metric(f"{prefix}/n", float(next(iter(by_metric.values())).n), now, 0))
    client.log_batch(
        parent_run_id,
        metrics=metrics,
        tags=[RunTag(schema.REPRODUCTIONS, str(len(reproductions)))],
    )
    return summaries


def reproduction_table(summaries: Mapping[int, Mapping[str, Summary]]) -> str:
    """The console table: one row per configuration, one column per test metric."""
    from dmlsweep.progress import summary_table

    keys = sorted({k for by_metric in summaries.values() for k in by_metric})
    rows = [
        {"config": f"#{rank}", **{k: by_metric[k].format() for k in by_metric}}
        for rank, by_metric in sorted(summaries.items())
    ]
    return summary_table(rows, columns=["config", *keys])


__all__ = [
    "Summary",
    "summarize",
    "reproduction_seeds",
    "Reproduction",
    "run_reproductions",
    "summarize_reproductions",
    "log_reproductions",
    "reproduction_table",
]
