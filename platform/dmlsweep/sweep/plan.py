"""The sweep plan: everything a sweep will do, resolved and checked before anything starts.

:func:`build_plan` turns a :class:`SweepRequest` (the command line's flags, or a test's) into one
frozen :class:`SweepPlan`: the space and its objective, the settings with ``${VAR}`` expanded
once, the strategy, the budget, the names, the stores' URLs and the resources. Every check that
can be made without Ray runs here, so ``--dry-run`` refuses exactly what a real run would refuse
before it writes anything, and no trial is the first to find a bad input.

A plan is stored with its sweep (the parent run's ``dmlsweep.plan`` tag, :meth:`SweepPlan.
to_json`); ``--resume NAME`` continues from the stored plan (:func:`resumed_plan`): a flag that
contradicts it is refused, and a larger ``--num-samples`` extends the sweep.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmlsweep.errors import DmlsweepError, ResourceError, SpaceError
from dmlsweep.names import check_sweep_name
from dmlsweep.secrets import redact
from dmlsweep.spaces import (
    CategoricalParam,
    FloatParam,
    IntParam,
    SearchSpace,
    load_space,
    parse_space,
    parse_space_text,
)
from dmlsweep.strategies import Strategy, resolve_strategy

DEFAULT_NUM_SAMPLES = 20
DEFAULT_RUNS_DIR = Path("dmlsweep-runs")


@dataclass(frozen=True)
class SweepRequest:
    """What the user asked for. ``None`` means "not given": the space's value or the default,
    and on ``--resume`` the stored plan's (a given value must agree with it)."""

    space: str | None = None
    num_samples: int | None = None  # None: DEFAULT_NUM_SAMPLES
    max_epochs: int | None = None  # None: the space's settings.max_epochs
    cpus_per_trial: float | None = None  # None: 1
    gpus_per_trial: float | None = None  # None: 0
    max_concurrent: int | None = None  # None: as many as the resources allow
    address: str | None = None  # None: start a local Ray
    tracking_uri: str | None = None  # None: SQLite under runs_dir
    storage: str | None = None  # Optuna storage URL; None: SQLite under runs_dir
    name: str | None = None  # None: <space>-<timestamp>
    seed: int | None = None  # None: 0
    searcher: str | None = None  # None: the space file's, else tpe
    scheduler: str | None = None  # None: the space file's, else asha
    grace_period: int | None = None
    reduction_factor: int | None = None
    max_retries: int | None = None  # None: 2 (a dead worker or node; never a bad input)
    models_top_k: int | None = None  # None: 3
    runs_dir: Path = DEFAULT_RUNS_DIR
    extra_settings: Mapping[str, Any] = field(default_factory=dict)  # --set KEY=VALUE
    resume: bool = False  # continue the sweep ``name``
    reproductions: int | None = None  # None: 0 (off)
    reproduce_top: int | None = None  # None: 1
    time_budget: float | None = None  # seconds this invocation may run; None: no limit
    trial_timeout: float | None = None  # seconds a trial may run; None: no limit


# What a plan takes from the request when given, else this default; and on resume what must
# agree with the stored plan (the request's field -> the plan's field, the flag's name).
_DEFAULTS: dict[str, Any] = {
    "num_samples": DEFAULT_NUM_SAMPLES,
    "cpus_per_trial": 1.0,
    "gpus_per_trial": 0.0,
    "seed": 0,
    "max_retries": 2,
    "models_top_k": 3,
    "reproductions": 0,
    "reproduce_top": 1,
    "trial_timeout": None,
}
_FLAGS = {
    "space": "--space",
    "num_samples": "--num-samples",
    "max_epochs": "--max-epochs",
    "cpus_per_trial": "--cpus-per-trial",
    "gpus_per_trial": "--gpus-per-trial",
    "max_concurrent": "--max-concurrent",
    "seed": "--seed",
    "searcher": "--searcher",
    "scheduler": "--scheduler",
    "grace_period": "--grace-period",
    "reduction_factor": "--reduction-factor",
    "max_retries": "--max-retries",
    "models_top_k": "--log-models",
    "reproductions": "--reproductions",
    "reproduce_top": "--reproduce-top",
    "trial_timeout": "--trial-timeout",
}


@dataclass(frozen=True)
class Segment:
    """One Ray Tune experiment of a sweep: the first holds its first ``num_samples`` trials;
    each extension (``--resume NAME --num-samples N``) adds one with the new trials."""

    experiment: str
    num_samples: int


@dataclass(frozen=True)
class SweepPlan:
    """A sweep, resolved: what :func:`dmlsweep.sweep.run.run_sweep` runs."""

    name: str
    space_ref: str  # the space as given (a name in sweeps/spaces or a path)
    space: SearchSpace
    settings: Mapping[str, Any]  # the fixed settings of every trial, environment expanded
    overrides: Mapping[str, Any]  # which of them came from --set
    strategy: Strategy
    num_samples: int
    max_epochs: int
    folds: int
    seed: int
    cpus_per_trial: float
    gpus_per_trial: float
    max_concurrent: int | None
    max_retries: int
    models_top_k: int
    reproductions: int
    reproduce_top: int
    trial_timeout: float | None  # seconds a trial may run in its worker; None: no limit
    segments: tuple[Segment, ...]
    runs_dir: Path
    tracking_uri: str
    storage_url: str | None  # None: population-based training has no Optuna study
    address: str | None
    resume: bool = False
    time_budget: float | None = None  # this invocation's, never stored with the plan

    @property
    def objective(self) -> str:
        return self.space.objective

    @property
    def experiment(self) -> str:
        """The MLflow experiment."""
        return f"dmlsweep-{self.space.name}"

    @property
    def budget(self) -> int:
        """What the schedulers count to: epochs, or with cross-validation the folds."""
        return self.folds if self.folds > 1 else self.max_epochs

    @property
    def local_tracking(self) -> bool:
        return self.tracking_uri.startswith("sqlite:///")

    def constants(self) -> dict[str, Any]:
        """What every trial's config holds besides the searched parameters."""
        return {
            **self.settings,
            "objective": self.space.objective,
            "max_epochs": self.max_epochs,
            "seed": self.seed,
        }

    def describe(self) -> str:
        """What ``--dry-run`` prints: the plan, as every trial will get it."""
        lines = [
            f"sweep {self.name}: {self.num_samples} trials of {self.objective}, metric "
            f"{self.space.metric} ({self.space.mode}), up to {self.max_epochs} epochs each"
            + (f" ({self.folds} folds)" if self.folds > 1 else ""),
            f"  strategy: {self.strategy.describe()}; seed {self.seed}; up to {self.max_retries} "
            "retries of a trial whose worker or node died",
            f"  resources: {self.cpus_per_trial:g} CPUs and {self.gpus_per_trial:g} GPUs per "
            f"trial on {self.address or 'a local Ray'}"
            + (f", at most {self.max_concurrent} at once" if self.max_concurrent else ""),
            f"  tracking: {redact(self.tracking_uri)}  experiment {self.experiment}",
        ]
        if self.storage_url:
            lines.append(f"  optuna: {redact(self.storage_url)}  study {self.name}")
        lines.append(f"  runs dir: {self.runs_dir}")
        if self.trial_timeout:
            lines.append(
                f"  trial timeout: {self.trial_timeout:g} s, then the trial is stopped and "
                "recorded as failed (timed out), not retried"
            )
        if self.time_budget:
            lines.append(f"  time budget: {self.time_budget:g} s, then the sweep stops (resumable)")
        described = self.space.describe().splitlines()
        lines += [line for line in described if not line.startswith("  setting")]
        lines += [f"  setting   {k} = {v!r}" for k, v in self.settings.items()]
        lines.append(f"  first trial: {self.space.defaults()}")
        return "\n".join(lines)

    # --- storage: what --resume reads back (never a URL: those may hold secrets)
    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "space": self.space_ref,
                "space_path": str(self.space.path),
                "space_text": self.space.path.read_text(encoding="utf-8"),
                "settings": dict(self.settings),
                "overrides": dict(self.overrides),
                "strategy": dataclasses.asdict(self.strategy),
                "num_samples": self.num_samples,
                "max_epochs": self.max_epochs,
                "folds": self.folds,
                "seed": self.seed,
                "cpus_per_trial": self.cpus_per_trial,
                "gpus_per_trial": self.gpus_per_trial,
                "max_concurrent": self.max_concurrent,
                "max_retries": self.max_retries,
                "models_top_k": self.models_top_k,
                "reproductions": self.reproductions,
                "reproduce_top": self.reproduce_top,
                "trial_timeout": self.trial_timeout,
                "segments": [dataclasses.asdict(s) for s in self.segments],
            },
            default=str,
        )


def build_plan(request: SweepRequest) -> SweepPlan:
    """The plan of a new sweep; raises :class:`DmlsweepError` naming the problem."""
    from trainables.registry import OBJECTIVES

    if not request.space:
        raise DmlsweepError("--space is required (see --list-spaces)")
    space = load_space(request.space, known_objectives=list(OBJECTIVES))
    return _plan(request, space=space, space_ref=request.space, segments=None)


def _plan(
    request: SweepRequest,
    *,
    space: SearchSpace,
    space_ref: str,
    segments: tuple[Segment, ...] | None,
) -> SweepPlan:
    value = {key: _given(request, key) for key in _DEFAULTS}
    num_samples = value["num_samples"]
    _check_int("--num-samples", num_samples, minimum=1)
    _check_int("--max-retries", value["max_retries"], minimum=0)
    _check_int("--log-models", value["models_top_k"], minimum=0)
    _check_int("--reproduce-top", value["reproduce_top"], minimum=1)
    if request.max_concurrent is not None:
        _check_int("--max-concurrent", request.max_concurrent, minimum=1)
    if value["reproductions"] and value["reproductions"] < 2:
        raise DmlsweepError(
            f"--reproductions needs at least 2 runs (for a confidence interval), got "
            f"{value['reproductions']}"
        )
    _check_resource_request(value["cpus_per_trial"], value["gpus_per_trial"])
    _check_seconds("--time-budget", request.time_budget)
    _check_seconds("--trial-timeout", value["trial_timeout"])
    strategy = resolve_strategy(
        space,
        searcher=request.searcher,
        scheduler=request.scheduler,
        grace_period=request.grace_period,
        reduction_factor=request.reduction_factor,
    )
    max_epochs = _max_epochs(space, request)
    settings = _settings(space, request.extra_settings)
    folds = int(settings.get("folds", 1))
    if folds > 1 and not strategy.uses_optuna:
        raise DmlsweepError(
            "cross-validation (settings.folds > 1) cannot run under population-based "
            "training: a trial's folds are not one training run"
        )
    _check_objective(space, settings, overrides=set(request.extra_settings), max_epochs=max_epochs)
    if request.name:
        name = check_sweep_name(request.name)
    else:
        name = f"{space.name}-{dt.datetime.now():%Y%m%d-%H%M%S}"
        check_sweep_name(name, flag=f"the default name (from the space file {space.path.name})")
    runs_dir = check_runs_dir(request.runs_dir)
    if request.address:
        _check_address(request.address)
    plan = SweepPlan(
        name=name,
        space_ref=space_ref,
        space=space,
        settings=settings,
        overrides=dict(request.extra_settings),
        strategy=strategy,
        num_samples=num_samples,
        max_epochs=max_epochs,
        folds=folds,
        seed=value["seed"],
        cpus_per_trial=float(value["cpus_per_trial"]),
        gpus_per_trial=float(value["gpus_per_trial"]),
        max_concurrent=request.max_concurrent,
        max_retries=value["max_retries"],
        models_top_k=value["models_top_k"],
        reproductions=value["reproductions"],
        reproduce_top=value["reproduce_top"],
        trial_timeout=value["trial_timeout"],
        segments=segments or (Segment(name, num_samples),),
        runs_dir=runs_dir,
        tracking_uri=request.tracking_uri or f"sqlite:///{runs_dir / 'mlflow.db'}",
        storage_url=(request.storage or f"sqlite:///{runs_dir / 'optuna.db'}")
        if strategy.uses_optuna
        else None,
        address=request.address,
        resume=request.resume,
        time_budget=request.time_budget,
    )
    _check_stores(plan)
    if not request.address:
        from dmlsweep.sweep.cluster import check_local_resources

        check_local_resources(plan)
    return plan


def _check_seconds(flag: str, seconds: Any) -> None:
    if seconds is not None and not (
        isinstance(seconds, int | float)
        and not isinstance(seconds, bool)
        and 0 < seconds < float("inf")
    ):
        raise DmlsweepError(f"{flag} must be a number of seconds > 0, got {seconds!r}")


def check_runs_dir(runs_dir: Path) -> Path:
    """``runs_dir``, absolute, if a sweep can make and write it; nothing is created here."""
    path = runs_dir.expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise DmlsweepError(f"--runs-dir {path} is a file, not a directory")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise DmlsweepError(f"--runs-dir {path} cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DmlsweepError(f"--runs-dir {path} cannot be written: {existing} is not writable")
    return path


def _check_stores(plan: SweepPlan) -> None:
    """The stores' URLs open with what is installed (a database URL's driver)."""
    from dmlsweep.databases import check_database_url

    if not plan.tracking_uri.startswith(("http://", "https://", "file:", "databricks")):
        check_database_url(plan.tracking_uri, flag="--tracking-uri")
    if plan.storage_url:
        check_database_url(plan.storage_url, flag="--storage")


def _given(request: SweepRequest, key: str) -> Any:
    given = getattr(request, key)
    return _DEFAULTS[key] if given is None else given


def _check_int(flag: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DmlsweepError(f"{flag} must be an integer >= {minimum}, got {value!r}")


def _check_resource_request(cpus: float, gpus: float) -> None:
    if not cpus > 0:
        raise ResourceError(f"--cpus-per-trial must be > 0, got {cpus:g}")
    if gpus < 0:
        raise ResourceError(f"--gpus-per-trial must be >= 0, got {gpus:g}")
    if gpus > 1 and not float(gpus).is_integer():
        raise ResourceError(
            f"--gpus-per-trial {gpus:g}: fractional GPUs are allowed only below 1 (e.g. 0.25 "
            "to pack 4 trials on a GPU)"
        )


def _check_address(address: str) -> None:
    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise DmlsweepError(
            f"--address must be HOST:PORT, ray://HOST:PORT or auto, got {address!r}"
        )


def _max_epochs(space: SearchSpace, request: SweepRequest) -> int:
    """``--max-epochs``, else ``--set max_epochs=``, else the space's setting."""
    max_epochs: Any
    if request.max_epochs is not None:
        max_epochs, source = request.max_epochs, "--max-epochs"
    elif "max_epochs" in request.extra_settings:
        max_epochs, source = request.extra_settings["max_epochs"], "--set max_epochs"
    else:
        max_epochs, source = space.settings.get("max_epochs"), f"{space.path}: settings.max_epochs"
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
        raise SpaceError(f"{source}: needs a positive integer number of epochs, got {max_epochs!r}")
    return max_epochs


def _settings(space: SearchSpace, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The space's settings overridden by ``--set``, each ``${VAR}`` taken from the
    environment (once: the plan, the dry run and every trial see the same value)."""
    searched = {param.name for param in space.parameters}
    both = sorted(searched & set(overrides))
    if both:
        raise DmlsweepError(
            f"--set {', '.join(both)}: searched by {space.path}, so it cannot also be fixed; "
            "remove it from the space's parameters to fix it"
        )
    settings = {**space.settings, **overrides}
    settings.pop("max_epochs", None)  # the plan's max_epochs
    for key, value in settings.items():
        if isinstance(value, str) and "${" in value:
            expanded = os.path.expandvars(value)
            if "${" in expanded:
                variable = expanded[expanded.index("${") + 2 :].split("}")[0]
                raise DmlsweepError(
                    f"{space.path}: settings.{key} = {value!r} reads the environment variable "
                    f"{variable}, which is not set: export {variable}=... or pass "
                    f"--set {key}=..."
                )
            settings[key] = expanded
    return settings


def _check_objective(
    space: SearchSpace, settings: dict[str, Any], *, overrides: set[str], max_epochs: int
) -> None:
    """The objective's contract, before any trial: the space's metric is one it reports; the
    settings' and parameters' names are in its config; its ``validate`` accepts the settings
    (values, data, weights) and every searched parameter's extreme values."""
    from trainables.config import PLATFORM_KEYS
    from trainables.registry import load_objective

    objective = load_objective(space.objective)
    metrics = dict(objective.METRICS)
    if space.metric not in metrics:
        raise SpaceError(
            f"{space.path}: metric {space.metric!r} is not reported by objective "
            f"{space.objective!r}; it reports: {', '.join(sorted(metrics))}"
        )
    if space.mode != metrics[space.metric]:
        raise SpaceError(
            f"{space.path}: mode {space.mode!r} for {space.metric}, which is better when "
            f"{'higher' if metrics[space.metric] == 'max' else 'lower'}: use mode "
            f"{metrics[space.metric]}"
        )
    allowed = {f.name for f in dataclasses.fields(objective.CONFIG)}
    searched = {param.name for param in space.parameters}
    for names, where in (
        (overrides, "--set"),
        (set(space.settings), f"{space.path}: settings"),
        (searched, f"{space.path}: parameters"),
    ):
        unknown = sorted(names - allowed - PLATFORM_KEYS)
        if unknown:
            raise DmlsweepError(
                f"{where}: {', '.join(unknown)} not known to objective {space.objective!r}; "
                f"it accepts: {', '.join(sorted(allowed))}"
            )
    _check_search_happens(space, objective.CONFIG)
    base = {**settings, "max_epochs": max_epochs, **space.defaults()}
    _validate(objective, base, where=f"{space.path} (settings, --set)")
    for param in space.parameters:
        extremes = param.choices if isinstance(param, CategoricalParam) else (param.low, param.high)
        for extreme in extremes:
            point = {**base, param.name: extreme}
            if param.active(point):
                _validate(
                    objective, point, where=f"{space.path}: parameters.{param.name} = {extreme!r}"
                )


# Set by the platform in every trial's config, over any searched value (see SweepPlan.constants)
PLATFORM_SET = {
    "seed": "--seed",
    "max_epochs": "--max-epochs",
    "objective": "the space's objective",
    "folds": "settings.folds",
}


def _check_search_happens(space: SearchSpace, config: type) -> None:
    """Refuse a search that would not happen as written: Optuna would record values that no
    trial ran with, or a parameter that never varies."""
    import typing

    hints = typing.get_type_hints(config)
    params = {param.name: param for param in space.parameters}
    for param in space.parameters:
        where = f"{space.path}: parameters.{param.name}"
        if param.name in PLATFORM_SET:
            raise SpaceError(
                f"{where}: {param.name} is set by {PLATFORM_SET[param.name]} in every trial, "
                "so searching it would record values no trial ran with; fix it instead"
            )
        if isinstance(param, FloatParam) and hints.get(param.name) is int:
            raise SpaceError(
                f"{where}: a float parameter, but {config.__name__}.{param.name} holds an "
                "integer; use type: int"
            )
        if isinstance(param, CategoricalParam):
            values = len(param.choices)
        elif isinstance(param, IntParam) or param.step is not None:
            step = param.step if param.step is not None else 1
            values = 1 + int((param.high - param.low) // step)
        else:
            values = 2  # a continuous range
        if values < 2:
            raise SpaceError(
                f"{where}: can take only one value as written; fix it in settings instead"
            )
        for other, allowed in param.when.items():
            parent = params[other]
            if isinstance(parent, CategoricalParam):
                possible = [v for v in allowed if v in parent.choices]
            else:
                possible = [
                    v
                    for v in allowed
                    if isinstance(v, int | float) and parent.low <= v <= parent.high
                ]
            if not possible:
                raise SpaceError(
                    f"{where}.when.{other}: {list(allowed)} is never taken by {other}, so "
                    f"{param.name} would never be searched"
                )


def _validate(objective: Any, settings: dict[str, Any], *, where: str) -> None:
    from trainables.objective import is_not_retried

    try:
        objective.validate(settings)
    except (OSError, ValueError) as exc:
        if not (is_not_retried(exc) or isinstance(exc, OSError)):
            raise
        raise DmlsweepError(f"{where}: {exc}") from exc


# --- resume -------------------------------------------------------------------------------------
def plan_sweep(request: SweepRequest) -> SweepPlan:
    """The plan of a new sweep, or with ``request.resume`` the stored plan it continues."""
    if not request.resume:
        return build_plan(request)
    return resumed_plan(request, stored_plan(request))


def stored_plan(request: SweepRequest) -> dict[str, Any]:
    """The plan stored with the sweep ``request.name`` (its parent run's tag)."""
    from dmlsweep import schema
    from dmlsweep.tracking import find_sweep_run

    if not request.name:
        raise DmlsweepError("--resume needs the sweep's name: --resume NAME")
    check_sweep_name(request.name, flag="--resume")
    runs_dir = check_runs_dir(request.runs_dir)
    tracking_uri = request.tracking_uri or f"sqlite:///{runs_dir / 'mlflow.db'}"
    ray_state = runs_dir / "ray" / request.name
    orphaned = (
        f", although its Ray state is at {ray_state}: the MLflow store that went with it is "
        "missing, or it is another (--tracking-uri)"
        if ray_state.is_dir()
        else ""
    )
    if tracking_uri.startswith("sqlite:///"):
        store = Path(tracking_uri.removeprefix("sqlite:///"))
        if not store.is_file():  # opening it would create an empty store in a mistyped dir
            raise DmlsweepError(
                f"no sweep named {request.name!r} to resume: there is no MLflow store at "
                f"{store}" + (orphaned or " (is --runs-dir the one the sweep was started with?)")
            )
    try:
        run = find_sweep_run(tracking_uri, request.name)
    except DmlsweepError as exc:
        raise DmlsweepError(f"{exc}{orphaned}") from exc
    text = run.data.tags.get(schema.PLAN)
    if not text:
        raise DmlsweepError(
            f"sweep {request.name!r} (run {run.info.run_id}) records no plan; it was not "
            "started by this version of dmlsweep and cannot be resumed"
        )
    stored: dict[str, Any] = json.loads(text)
    return stored


def resumed_plan(request: SweepRequest, stored: Mapping[str, Any]) -> SweepPlan:
    """The plan of the sweep ``request.name`` as stored, for ``--resume``; this invocation's
    URLs, address and runs dir. A flag given now must agree with the stored plan, except
    ``--num-samples``, which may grow: the extra trials become a new segment."""

    from trainables.registry import OBJECTIVES

    space_ref = stored["space"]
    # the space as the sweep began, even if its file has changed since (read, not written)
    space = parse_space(
        parse_space_text(stored["space_text"], path=Path(stored["space_path"])),
        path=Path(stored["space_path"]),
        known_objectives=list(OBJECTIVES),
    )
    strategy = stored["strategy"]
    stored_request = {
        "space": space_ref,
        "max_epochs": stored["max_epochs"],
        "searcher": strategy["searcher"],
        "scheduler": strategy["scheduler"],
        "grace_period": strategy["grace_period"],
        "reduction_factor": strategy["reduction_factor"],
        **{key: stored.get(key, default) for key, default in _DEFAULTS.items()},
        "max_concurrent": stored["max_concurrent"],
    }
    for key, flag in _FLAGS.items():
        given = getattr(request, key)
        if given is None or key == "num_samples":
            continue
        if _differs(given, stored_request[key]):
            raise DmlsweepError(
                f"--resume {stored['name']}: {flag} {given} contradicts the sweep's plan "
                f"({flag} {stored_request[key]}); leave the flag out to continue as planned"
            )
    searched = {param.name for param in space.parameters}
    for key, given in request.extra_settings.items():
        if key in searched:
            raise DmlsweepError(
                f"--resume {stored['name']}: --set {key}: {key} is searched by the sweep's "
                "space, which a resumed sweep keeps; leave it out to continue as planned"
            )
        planned = stored["settings"].get(key, "(not set)")
        if key == "max_epochs":
            planned = stored["max_epochs"]
        if _differs(given, planned):
            raise DmlsweepError(
                f"--resume {stored['name']}: --set {key}={given!r} contradicts the sweep's "
                f"plan ({key} = {planned!r}); leave it out to continue as planned"
            )
    segments = tuple(Segment(**s) for s in stored["segments"])
    num_samples = stored["num_samples"]
    if request.num_samples is not None:
        if request.num_samples < num_samples:
            raise DmlsweepError(
                f"--resume {stored['name']}: --num-samples {request.num_samples} is below the "
                f"sweep's {num_samples} trials; a sweep can be extended, not shortened"
            )
        if request.num_samples > num_samples:
            if strategy["scheduler"] == "pbt":
                raise DmlsweepError(
                    f"--resume {stored['name']}: --num-samples cannot extend a population-"
                    "based training sweep (its population is fixed when it starts)"
                )
            segments += (
                Segment(f"{stored['name']}.{len(segments) + 1}", request.num_samples - num_samples),
            )
            num_samples = request.num_samples
    merged = SweepRequest(
        **{
            **{f.name: getattr(request, f.name) for f in dataclasses.fields(SweepRequest)},
            **{key: stored_request[key] for key in _FLAGS if key != "num_samples"},
            "num_samples": num_samples,
            "extra_settings": stored["overrides"],
            "name": stored["name"],
            "resume": True,
        }
    )
    plan = _plan(merged, space=space, space_ref=space_ref, segments=segments)
    if stored.get("strategy") != dataclasses.asdict(plan.strategy):
        plan = dataclasses.replace(plan, strategy=Strategy(**stored["strategy"]))
    return plan


def _differs(given: Any, planned: Any) -> bool:
    if isinstance(given, int | float) and isinstance(planned, int | float):
        return float(given) != float(planned)
    return bool(given != planned)


__all__ = ["Segment", "SweepPlan", "SweepRequest", "build_plan", "plan_sweep", "resumed_plan"]
