"""Reproduction statistics match a direct computation; they land on the parent run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from mlflow.tracking import MlflowClient

from dmlsweep.reproductions import (
    Reproduction,
    log_reproductions,
    reproduction_seeds,
    reproduction_table,
    summarize,
)


def reference_interval(values: np.ndarray) -> tuple[float, float]:
    return scipy.stats.t.interval(
        0.95, df=len(values) - 1, loc=values.mean(), scale=scipy.stats.sem(values)
    )


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_summary_matches_scipy(n: int) -> None:
    values = np.random.default_rng(n).normal(0.6, 0.05, size=n)
    s = summarize(list(values))
    low, high = reference_interval(values)
    assert s.n == n
    assert s.mean == pytest.approx(values.mean(), abs=1e-12)
    assert s.std == pytest.approx(values.std(ddof=1), abs=1e-12)
    assert (s.ci_low, s.ci_high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))


def test_summary_needs_two_values() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        summarize([0.5])


def test_seeds_are_fresh_and_shared_by_configurations() -> None:
    seeds = reproduction_seeds(search_seed=7, n=4)
    assert len(set(seeds)) == 4 and 7 not in seeds


def test_logged_statistics_equal_a_direct_computation(tmp_path: Path) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "a").as_uri())
    parent = client.create_run(experiment, run_name="sweep").info.run_id
    rng = np.random.default_rng(0)
    reps = [
        Reproduction(
            rank=rank,
            seed=seed,
            metrics={"test/map_at_r": float(rng.random()), "val/map_at_r": float(rng.random())},
            runtime={"runtime/device": f"cuda:{seed}"},
        )
        for rank in (1, 2)
        for seed in (1, 2, 3)
    ]
    configs = [{"lr": 0.1, "objective": "baseline"}, {"lr": 0.01, "objective": "baseline"}]
    log_reproductions(
        client=client,
        experiment_id=experiment,
        parent_run_id=parent,
        sweep_name="sweep",
        reproductions=reps,
        configs=configs,
    )

    logged = client.get_run(parent).data.metrics
    for rank, prefix in ((1, "repro"), (2, "repro/rank2")):
        values = np.array([r.metrics["test/map_at_r"] for r in reps if r.rank == rank])
        low, high = reference_interval(values)
        assert logged[f"{prefix}/test/map_at_r/mean"] == pytest.approx(values.mean())
        assert logged[f"{prefix}/test/map_at_r/std"] == pytest.approx(values.std(ddof=1))
        assert logged[f"{prefix}/test/map_at_r/ci95_low"] == pytest.approx(low)
        assert logged[f"{prefix}/test/map_at_r/ci95_high"] == pytest.approx(high)
        assert logged[f"{prefix}/n"] == 3
    assert not any(k.startswith("repro/val") for k in logged)  # only test metrics summarised
    children = client.search_runs([experiment], "tags.`dmlsweep.role` = 'reproduction'")
    assert len(children) == 6
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent}
    by_seed = {(c.data.tags["dmlsweep.rank"], c.data.params["seed"]): c for c in children}
    assert by_seed[("2", "3")].data.params["lr"] == "0.01"
    assert by_seed[("2", "3")].data.tags["dmlsweep.runtime.device"] == "cuda:3"  # where it ran


def test_table_has_a_row_per_configuration() -> None:
    table = reproduction_table(
        {1: {"test/a": summarize([0.1, 0.3])}, 2: {"test/a": summarize([0.2, 0.2])}}
    )
    lines = table.splitlines()
    assert lines[0].split() == ["config", "test/a"]
    assert lines[2].startswith("#1") and "0.2000 ± 0.1414" in lines[2]
    assert lines[3].startswith("#2") and "0.2000 ± 0.0000" in lines[3]
