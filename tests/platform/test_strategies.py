"""Searchers and schedulers chosen by space file or flag; each runs a real (tiny) sweep."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from ray import tune

from dmlsweep.errors import SpaceError
from dmlsweep.spaces import SPACES_DIR, load_space
from dmlsweep.strategies import (
    build_sampler,
    build_scheduler,
    resolve_strategy,
    strategy_params,
    tune_domains,
)
from dmlsweep.sweep import SweepRequest, plan_sweep, run_sweep

QUADRATIC = SPACES_DIR / "quadratic.yaml"


def space_with(tmp_path: Path, extra: str, *, base: Path = QUADRATIC) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(base.read_text() + extra)
    return path


def test_flag_beats_space_file_beats_default(tmp_path: Path) -> None:
    extra = "searcher: {algorithm: random}\nscheduler: {algorithm: median, grace_period: 2}\n"
    space = load_space(str(space_with(tmp_path, extra)))
    assert resolve_strategy(load_space("quadratic")).searcher == "tpe"
    assert resolve_strategy(load_space("quadratic")).scheduler == "asha"
    from_file = resolve_strategy(space)
    assert from_file.searcher == "random"
    assert (from_file.scheduler, from_file.grace_period) == ("median", 2)
    flagged = resolve_strategy(space, searcher="gp", scheduler="hyperband")
    assert (flagged.searcher, flagged.scheduler) == ("gp", "hyperband")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("searcher: {algorithm: annealing}\n", "unknown searcher 'annealing'"),
        ("scheduler: {algorithm: bohb}\n", "unknown scheduler 'bohb'"),
        ("searcher: {algo: tpe}\n", "searcher.algo: unknown key"),
        ("scheduler: {algorithm: asha, reduction_factor: 1}\n", "reduction_factor must be >= 2"),
        ("scheduler: {algorithm: asha, grace_period: 0}\n", "grace_period needs a positive"),
        ("searcher: {algorithm: tpe, n_startup_trials: 0}\n", "n_startup_trials needs an integer"),
        ("searcher: {algorithm: tpe, n_startup_trials: 2.5}\n", "n_startup_trials needs"),
        ("searcher: {algorithm: tpe, n_startup_trials: true}\n", "n_startup_trials needs"),
        ("searcher: {algorithm: tpe, seed: -1}\n", "searcher.seed needs an integer >= 0"),
        ("searcher: {algorithm: tpe, sampler_seed: 1}\n", "searcher.sampler_seed: unknown key"),
    ],
)
def test_bad_strategy_names_the_problem(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        resolve_strategy(load_space(str(space_with(tmp_path, extra))))


def test_pbt_refuses_conditional_parameters() -> None:
    with pytest.raises(SpaceError, match="conditional"):
        resolve_strategy(load_space("ahsml"), scheduler="pbt")


def test_samplers_and_schedulers_are_the_named_ones() -> None:
    space = load_space("quadratic")
    expected = {
        "tpe": optuna.samplers.TPESampler,
        "gp": optuna.samplers.GPSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "random": optuna.samplers.RandomSampler,
    }
    for name, cls in expected.items():
        assert isinstance(build_sampler(resolve_strategy(space, searcher=name), seed=0), cls)
    expected_schedulers = {
        "asha": tune.schedulers.AsyncHyperBandScheduler,
        "hyperband": tune.schedulers.HyperBandScheduler,
        "median": tune.schedulers.MedianStoppingRule,
        "fifo": tune.schedulers.FIFOScheduler,
        "pbt": tune.schedulers.PopulationBasedTraining,
    }
    for name, cls in expected_schedulers.items():
        scheduler = build_scheduler(
            resolve_strategy(space, scheduler=name), space=space, max_epochs=4
        )
        assert type(scheduler) is cls


def test_tune_domains_keep_the_space_bounds(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "objective: quadratic\nmetric: val/score\nmode: max\nparameters:\n"
        "  a: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}\n"
        "  b: {type: int, low: 2, high: 5}\n"
        "  c: {type: categorical, choices: [x, y]}\n"
    )
    domains = tune_domains(load_space(str(path)))
    samples = [{k: d.sample() for k, d in domains.items()} for _ in range(300)]
    assert all(1e-4 <= s["a"] <= 1e-1 for s in samples)
    assert {s["b"] for s in samples} == {2, 3, 4, 5}  # both ends included
    assert {s["c"] for s in samples} == {"x", "y"}


def sweep(
    tmp_path: Path,
    ray_address: str,
    *,
    space: str = "quadratic",
    num_samples: int = 6,
    **kwargs: object,
):
    request = SweepRequest(
        space=space,
        num_samples=num_samples,
        runs_dir=tmp_path / "runs",
        address=ray_address,
        models_top_k=0,
        **kwargs,
    )
    return run_sweep(plan_sweep(request))


@pytest.mark.parametrize(
    ("searcher", "scheduler"),
    [
        ("gp", "asha"),
        ("cmaes", "asha"),
        ("random", "fifo"),
        ("tpe", "hyperband"),
        ("tpe", "median"),
    ],
)
def test_each_strategy_runs_a_sweep(
    tmp_path: Path, ray_address: str, searcher: str, scheduler: str
) -> None:
    outcome = sweep(tmp_path, ray_address, searcher=searcher, scheduler=scheduler)
    study = optuna.load_study(study_name=outcome.study_name, storage=outcome.storage)
    assert len(study.trials) == 6
    assert all(t.state.is_finished() for t in study.trials)
    assert any(r["state"] == "COMPLETE" for r in outcome.trials)
    params = MlflowClient(outcome.tracking_uri).get_run(outcome.parent_run_id).data.params
    assert params["sweep/scheduler"] == scheduler
    assert params["sweep/searcher"].startswith(f"optuna {searcher}")
    if scheduler == "fifo":
        assert {r["state"] for r in outcome.trials} == {"COMPLETE"}


def test_population_based_training_mutates_running_trials(tmp_path: Path, ray_address: str) -> None:
    path = space_with(tmp_path, "scheduler: {algorithm: pbt, perturbation_interval: 1}\n")
    outcome = sweep(tmp_path, ray_address, space=str(path), num_samples=4, max_epochs=6)
    assert outcome.study_name is None  # no searcher beside PBT
    assert [r["state"] for r in outcome.trials] == ["COMPLETE"] * 4  # PBT never stops a trial
    assert all(r["epochs"] == 6 for r in outcome.trials)
    client = MlflowClient(outcome.tracking_uri)
    assert client.get_run(outcome.parent_run_id).data.params["sweep/scheduler"] == "pbt"
    # Every exploit restarts a trial from another's checkpoint with perturbed values; the child
    # run keeps its starting params and shows the schedule beside them.
    runs = client.search_runs(
        [client.get_run(outcome.parent_run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{outcome.parent_run_id}'",
    )
    mutated = [r for r in runs if "dmlsweep.config_changes" in r.data.tags]
    assert mutated
    for run in mutated:
        final = json.loads(run.data.tags["dmlsweep.config"])
        moved = [k for k in ("x", "y") if float(run.data.params[k]) != final[k]]
        assert moved
        for key in moved:
            history = client.get_metric_history(run.info.run_id, f"config/{key}")
            assert [m.value for m in history if m.step == 0] == [float(run.data.params[key])]
            # The current value is charted too (at the step it took effect; an exploit restarts
            # from another trial's checkpoint, so steps may go back).
            assert final[key] in {m.value for m in history if m.step > 0}
            assert 2 <= len(history) <= int(run.data.tags["dmlsweep.config_changes"]) + 1


def suggestions(sampler: optuna.samplers.BaseSampler, *, n: int) -> list[float]:
    """The first ``n`` values a sampler suggests on a 1-D quadratic (the study told each)."""
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", -5.0, 5.0) - 1.0) ** 2, n_trials=n)
    return [t.params["x"] for t in study.trials]


def test_searcher_startup_trials_and_seed_come_from_the_space_file(tmp_path: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plain = resolve_strategy(load_space("quadratic"))
    assert (plain.n_startup_trials, plain.sampler_seed) == (None, None)
    extra = "searcher: {algorithm: tpe, n_startup_trials: 3, seed: 11}\n"
    strategy = resolve_strategy(load_space(str(space_with(tmp_path, extra))))
    assert (strategy.n_startup_trials, strategy.sampler_seed) == (3, 11)
    # The sampler is TPE with exactly these settings: the sweep's seed (0) is not used.
    built = suggestions(build_sampler(strategy, seed=0), n=8)
    direct = suggestions(optuna.samplers.TPESampler(seed=11, n_startup_trials=3), n=8)
    default_startup = suggestions(optuna.samplers.TPESampler(seed=11), n=8)
    assert built == direct
    assert built[:3] != suggestions(optuna.samplers.TPESampler(seed=0, n_startup_trials=3), n=3)
    # Past 3 startup trials the model proposes; with the default 10 they are still random.
    assert built[3:] != default_startup[3:]
    params = strategy_params(strategy, seed=0)
    assert params["sweep/searcher"] == "optuna tpe (seed 11)"
    assert params["sweep/n_startup_trials"] == 3
    assert "3 startup trials" in strategy.describe()
    # Without the keys the sweep's seed seeds the sampler and nothing extra is recorded.
    assert strategy_params(plain, seed=5)["sweep/searcher"] == "optuna tpe (seed 5)"
    assert "sweep/n_startup_trials" not in strategy_params(plain, seed=5)


def test_startup_trials_reach_gp_and_cmaes_and_random_ignores_them(tmp_path: Path) -> None:
    extra = "searcher: {algorithm: tpe, n_startup_trials: 4}\n"
    space = load_space(str(space_with(tmp_path, extra)))
    gp = build_sampler(resolve_strategy(space, searcher="gp"), seed=0)
    cmaes = build_sampler(resolve_strategy(space, searcher="cmaes"), seed=0)
    assert (gp._n_startup_trials, cmaes._n_startup_trials) == (4, 4)
    random = resolve_strategy(space, searcher="random")
    assert isinstance(build_sampler(random, seed=0), optuna.samplers.RandomSampler)
    assert "sweep/n_startup_trials" not in strategy_params(random, seed=0)
    assert "startup" not in random.describe()
