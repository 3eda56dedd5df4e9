"""Search algorithms and trial schedulers, chosen by name in the space file or by flag.

A space file may say::

    searcher: {algorithm: tpe, n_startup_trials: 5, seed: 7}   # tpe | gp | cmaes | random
    scheduler: {algorithm: asha, grace_period: 1, reduction_factor: 2}
    # scheduler algorithms: asha | hyperband | median | fifo | pbt

A flag (``--searcher``, ``--scheduler``) wins over the file, the file over the defaults (TPE,
ASHA). ``searcher.n_startup_trials`` (optional) is how many trials a model-based searcher (tpe,
gp, cmaes) draws at random before its model takes over (else Optuna's default: 10 for TPE and
GP, 1 for CMA-ES); random search has no model and ignores it. ``searcher.seed`` (optional)
seeds the sampler alone; without it the sampler takes the sweep's seed, which is also every
trial's training seed. ``pbt`` (population-based training) is a mode of its own: it mutates the
hyperparameters of running trials itself, so no Optuna searcher runs beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dmlsweep.errors import SpaceError

if TYPE_CHECKING:
    import optuna
    from ray.tune.schedulers import TrialScheduler

    from dmlsweep.spaces import SearchSpace

SEARCHERS = ("tpe", "gp", "cmaes", "random")
SCHEDULERS = ("asha", "hyperband", "median", "fifo", "pbt")
_SEARCHER_KEYS = {"algorithm", "n_startup_trials", "seed"}
_SCHEDULER_KEYS = {"algorithm", "grace_period", "reduction_factor", "perturbation_interval"}


@dataclass(frozen=True)
class Strategy:
    """The resolved search strategy of a sweep."""

    searcher: str  # one of SEARCHERS; ignored by pbt
    scheduler: str  # one of SCHEDULERS
    grace_period: int = 1  # asha, median: epochs before any stop
    reduction_factor: int = 2  # asha, hyperband: keep 1/this per rung
    perturbation_interval: int = 2  # pbt: epochs between exploit/explore steps
    n_startup_trials: int | None = None  # tpe, gp, cmaes: random trials first; None: Optuna's
    sampler_seed: int | None = None  # None: the sweep's seed (which also seeds the trials)

    def seed_of_sampler(self, sweep_seed: int) -> int:
        return sweep_seed if self.sampler_seed is None else self.sampler_seed

    @property
    def uses_optuna(self) -> bool:
        return self.scheduler != "pbt"

    @property
    def startup_trials(self) -> int | None:
        """``n_startup_trials`` where a model-based Optuna searcher uses it, else ``None``."""
        if not self.uses_optuna or self.searcher == "random":
            return None
        return self.n_startup_trials

    def describe(self) -> str:
        if not self.uses_optuna:
            return f"population-based training (every {self.perturbation_interval} epochs)"
        startup = (
            f" ({self.startup_trials} startup trials)" if self.startup_trials is not None else ""
        )
        return f"optuna {self.searcher}{startup} + {self.scheduler}"


def resolve_strategy(
    space: SearchSpace,
    *,
    searcher: str | None = None,
    scheduler: str | None = None,
    grace_period: int | None = None,
    reduction_factor: int | None = None,
) -> Strategy:
    """Flags over the space file over the defaults; unknown names fail naming the choices."""
    unknown = set(space.searcher) - _SEARCHER_KEYS
    if unknown:
        raise SpaceError(
            f"{space.path}: searcher.{sorted(unknown)[0]}: unknown key; allowed: "
            f"{sorted(_SEARCHER_KEYS)}"
        )
    searcher_numbers = {
        key: space.searcher[key] for key in ("n_startup_trials", "seed") if key in space.searcher
    }
    for key, value in searcher_numbers.items():
        minimum = 1 if key == "n_startup_trials" else 0
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise SpaceError(
                f"{space.path}: searcher.{key} needs an integer >= {minimum}, got {value!r}"
            )
    unknown = set(space.scheduler) - _SCHEDULER_KEYS
    if unknown:
        raise SpaceError(
            f"{space.path}: scheduler.{sorted(unknown)[0]}: unknown key; allowed: "
            f"{sorted(_SCHEDULER_KEYS)}"
        )
    chosen_searcher = searcher or space.searcher.get("algorithm", "tpe")
    chosen_scheduler = scheduler or space.scheduler.get("algorithm", "asha")
    if chosen_searcher not in SEARCHERS:
        raise SpaceError(f"unknown searcher {chosen_searcher!r}; known: {list(SEARCHERS)}")
    if chosen_scheduler not in SCHEDULERS:
        raise SpaceError(f"unknown scheduler {chosen_scheduler!r}; known: {list(SCHEDULERS)}")
    numbers = {
        "grace_period": grace_period or space.scheduler.get("grace_period", 1),
        "reduction_factor": reduction_factor or space.scheduler.get("reduction_factor", 2),
        "perturbation_interval": space.scheduler.get("perturbation_interval", 2),
    }
    for key, value in numbers.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SpaceError(f"scheduler {key} needs a positive integer, got {value!r}")
    if numbers["reduction_factor"] < 2:
        raise SpaceError("scheduler reduction_factor must be >= 2")
    if chosen_scheduler == "pbt" and any(p.when for p in space.parameters):
        raise SpaceError(
            f"{space.path}: population-based training cannot mutate conditional parameters "
            f"({[p.name for p in space.parameters if p.when]}); use an Optuna searcher"
        )
    return Strategy(
        searcher=chosen_searcher,
        scheduler=chosen_scheduler,
        n_startup_trials=searcher_numbers.get("n_startup_trials"),
        sampler_seed=searcher_numbers.get("seed"),
        **numbers,
    )


def build_sampler(strategy: Strategy, *, seed: int) -> optuna.samplers.BaseSampler:
    """The strategy's Optuna sampler, seeded with ``strategy.sampler_seed`` if set, else
    ``seed`` (the sweep's)."""
    import optuna

    seed = strategy.seed_of_sampler(seed)
    # Only when set: each sampler keeps its own default otherwise.
    startup: dict[str, Any] = (
        {"n_startup_trials": strategy.startup_trials} if strategy.startup_trials is not None else {}
    )
    if strategy.searcher == "tpe":
        return optuna.samplers.TPESampler(seed=seed, **startup)
    if strategy.searcher == "gp":
        return optuna.samplers.GPSampler(seed=seed, **startup)
    if strategy.searcher == "cmaes":
        # CMA-ES handles float and int parameters; categorical ones go to a seeded random
        # sampler (Optuna's documented fallback), quietly.
        return optuna.samplers.CmaEsSampler(
            seed=seed,
            warn_independent_sampling=False,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            **startup,
        )
    return optuna.samplers.RandomSampler(seed=seed)


def build_scheduler(strategy: Strategy, *, space: SearchSpace, max_epochs: int) -> TrialScheduler:
    """Every scheduler counts time in epochs (``training_iteration``)."""
    from ray.tune.schedulers import (
        ASHAScheduler,
        FIFOScheduler,
        HyperBandScheduler,
        MedianStoppingRule,
        PopulationBasedTraining,
    )

    grace = min(strategy.grace_period, max_epochs)
    if strategy.scheduler == "asha":
        return ASHAScheduler(
            time_attr="training_iteration",
            max_t=max_epochs,
            grace_period=grace,
            reduction_factor=strategy.reduction_factor,
        )
    if strategy.scheduler == "hyperband":
        return HyperBandScheduler(
            time_attr="training_iteration",
            max_t=max_epochs,
            reduction_factor=strategy.reduction_factor,
        )
    if strategy.scheduler == "median":
        return MedianStoppingRule(
            time_attr="training_iteration", grace_period=grace, min_samples_required=3
        )
    if strategy.scheduler == "pbt":
        return PopulationBasedTraining(
            time_attr="training_iteration",
            perturbation_interval=strategy.perturbation_interval,
            hyperparam_mutations=tune_domains(space),
        )
    return FIFOScheduler()


def tune_domains(space: SearchSpace) -> dict[str, Any]:
    """The space as Ray Tune distributions: PBT's initial sampling and its resampling."""
    from ray import tune

    from dmlsweep.spaces import CategoricalParam, FloatParam

    domains: dict[str, Any] = {}
    for p in space.parameters:
        if isinstance(p, CategoricalParam):
            domains[p.name] = tune.choice(list(p.choices))
        elif isinstance(p, FloatParam):
            if p.step:
                domains[p.name] = tune.quniform(p.low, p.high, p.step)
            else:
                domains[p.name] = (tune.loguniform if p.log else tune.uniform)(p.low, p.high)
        elif p.step > 1:
            domains[p.name] = tune.qrandint(p.low, p.high, p.step)  # both ends included
        else:
            # randint's upper bound is exclusive; the space's is inclusive.
            domains[p.name] = (tune.lograndint if p.log else tune.randint)(p.low, p.high + 1)
    return domains


def strategy_params(strategy: Strategy, *, seed: int) -> Mapping[str, Any]:
    """What the parent MLflow run records about the strategy."""
    return {
        "sweep/searcher": "none (pbt)"
        if not strategy.uses_optuna
        else f"optuna {strategy.searcher} (seed {strategy.seed_of_sampler(seed)})",
        **(
            {"sweep/n_startup_trials": strategy.startup_trials}
            if strategy.startup_trials is not None
            else {}
        ),
        "sweep/scheduler": strategy.scheduler,
        "sweep/grace_period": strategy.grace_period,
        "sweep/reduction_factor": strategy.reduction_factor,
        **(
            {"sweep/perturbation_interval": strategy.perturbation_interval}
            if strategy.scheduler == "pbt"
            else {}
        ),
    }


__all__ = [
    "SEARCHERS",
    "SCHEDULERS",
    "Strategy",
    "resolve_strategy",
    "build_sampler",
    "build_scheduler",
    "tune_domains",
    "strategy_params",
]
