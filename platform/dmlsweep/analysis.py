"""What a finished sweep taught: hyperparameter importance and plots of its Optuna study, logged
to the sweep's MLflow parent run under ``analysis/``.

Only COMPLETE trials count: PRUNED ones are what ASHA stopped half-trained and FAIL ones what
broke, so neither has a comparable final score.

Importance is Optuna's fANOVA (``FanovaImportanceEvaluator``): a random forest fitted to
``score = f(params)`` over the complete trials, whose variance is split among the parameters;
param ``p`` gets ``V_p / sum_q V_q`` with ``V_p`` the variance of the forest's marginal of ``p``.
(Not Optuna 5's default, PED-ANOVA: it reads only the top 10 % of trials, one or two in a
sweep of 15 complete trials; on 8 such random sweeps where only ``lr`` mattered it ranked ``lr``
first 3 times, this fANOVA 8 times.)
fANOVA is fitted on a copy of the study in which every trial holds every assessed parameter:
alone it keeps only the trials that hold all of them, which for a conditional (define-by-run)
space can be none, or only those where the parameter that conditions the others is constant. In
the copy an inactive conditional parameter takes a value of its own (the category
``"(inactive)"``, or a number one range-width below its range), as SMAC's forest does, so the
forest can split on it; and a log-scaled number is given as its log10, the scale it was sampled
on (fANOVA averages uniformly over the range). The plots show the study itself.

Example::

    importance = log_study_analysis(study=optuna.load_study(study_name=name, storage=url),
                                    client=MlflowClient(tracking_uri), run_id=parent_run_id,
                                    params=space.names)
    print(dashboard_command(url))
"""

from __future__ import annotations

import json
import math
import re
import shlex
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.importance import (
    BaseImportanceEvaluator,
    FanovaImportanceEvaluator,
    get_param_importances,
)
from optuna.trial import FrozenTrial, TrialState

from dmlsweep.secrets import redact

__all__ = ["ARTIFACT_DIR", "dashboard_command", "log_study_analysis", "plotting_modules"]

ARTIFACT_DIR = "analysis"
INACTIVE = "(inactive)"
_FANOVA_SEED = 0  # the forest is random: one seed, so re-running the analysis agrees
_METRIC_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. :/]")  # what MLflow refuses in a metric name


def dashboard_command(storage_url: str) -> str:
    """The shell command that opens the sweep's study in optuna-dashboard (password masked)."""
    return f"optuna-dashboard {shlex.quote(redact(storage_url))}"


def log_study_analysis(
    *, study: optuna.Study, client: MlflowClient, run_id: str, params: Sequence[str]
) -> dict[str, float]:
    """Hyperparameter importance + plots of a finished sweep's Optuna study, logged to the
    sweep's MLflow parent run ``run_id``; returns the importances (param -> share, summing to 1).

    Logged under ``analysis/``: ``importance.json``, and the optimisation history,
    parallel-coordinate, slice and importance plots, each as ``<plot>.html`` (plotly, the
    library from a CDN) and ``<plot>.png`` (matplotlib); each share also as the metric
    ``importance/<param>``. Assessed are the ``params`` (the searched ones) that take more than
    one value over at least two complete trials. With fewer than two complete trials or no such
    parameter there is no importance: ``README.txt`` says why, only the history is plotted, and
    the result is ``{}``.

    Sets matplotlib's backend to Agg (files only; the sweep's driver has no display).
    """
    if isinstance(params, str):
        raise TypeError(f"params must be a sequence of parameter names, not the string {params!r}")
    if len(study.directions) > 1:
        raise ValueError(
            f"study {study.study_name!r} has {len(study.directions)} objectives; "
            "importance is assessed for a single-objective study"
        )
    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]
    assessed = [p for p in dict.fromkeys(params) if _varies(p, complete)]
    target_name = study.metric_names[0] if study.metric_names else "Objective Value"

    importance: dict[str, float] = {}
    why_none = None
    if len(complete) < 2:
        why_none = (
            f"Only {len(complete)} of the study's {len(study.trials)} trials completed "
            "(pruned and failed trials do not count); importance needs at least 2."
        )
    elif not assessed:
        why_none = (
            f"None of the searched parameters {list(params)} took more than one value "
            f"over the {len(complete)} complete trials."
        )
    else:
        importance = {
            p: float(v)
            for p, v in get_param_importances(
                _complete_study(complete, assessed, direction=study.direction),
                evaluator=FanovaImportanceEvaluator(seed=_FANOVA_SEED),
                params=assessed,
            ).items()
        }

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        _write_plot(
            out,
            "optimization_history",
            lambda vis: vis.plot_optimization_history(study, target_name=target_name),
        )
        if why_none is not None:
            (out / "README.txt").write_text(f"No hyperparameter importance: {why_none}\n")
        else:
            (out / "importance.json").write_text(json.dumps(importance, indent=2) + "\n")
            _write_plot(
                out,
                "parallel_coordinate",
                lambda vis: vis.plot_parallel_coordinate(
                    study, params=assessed, target_name=target_name
                ),
            )
            _write_plot(
                out,
                "slice",
                lambda vis: vis.plot_slice(study, params=assessed, target_name=target_name),
            )
            _write_plot(
                out,
                "param_importances",
                lambda vis: vis.plot_param_importances(
                    study, evaluator=_Known(importance), params=assessed, target_name=target_name
                ),
            )
        client.log_artifacts(run_id, str(out), artifact_path=ARTIFACT_DIR)
    if importance:
        client.log_batch(
            run_id,
            metrics=[
                Metric(key=f"importance/{_METRIC_UNSAFE.sub('_', p)}", value=v, timestamp=0, step=0)
                for p, v in importance.items()
            ],
        )
    return importance


class _Known(BaseImportanceEvaluator):
    """Gives the importances already computed, so the plots show exactly the logged figures
    (and the forest is fitted once, not once per plot)."""

    def __init__(self, importance: dict[str, float]) -> None:
        self._importance = importance

    def evaluate(
        self,
        study: optuna.Study,
        params: list[str] | None = None,
        *,
        target: Callable[[FrozenTrial], float] | None = None,
    ) -> dict[str, float]:
        return dict(self._importance)


def _varies(name: str, trials: list[FrozenTrial]) -> bool:
    """Whether ``name`` is set in at least two of ``trials`` and takes more than one value."""
    values = [t.params[name] for t in trials if name in t.params]
    return len(values) >= 2 and any(v != values[0] for v in values[1:])


def _complete_study(
    trials: list[FrozenTrial], names: list[str], *, direction: optuna.study.StudyDirection
) -> optuna.Study:
    """An in-memory copy of ``trials`` for fANOVA, in which every trial holds every one of
    ``names``. A log-scaled number is given as its log10: fANOVA averages its marginals
    uniformly over a parameter's range, which must be the scale the sweep sampled on (Optuna's
    own fANOVA uses the linear scale, where 1e-4..1e-1 is 90 % the decade nobody sampled much).
    Ranges and choices span every distribution a parameter had (a resumed sweep may change
    them)."""
    distributions: dict[str, BaseDistribution] = {}
    columns: dict[str, list[Any]] = {}
    for name in names:
        seen = [t.distributions[name] for t in trials if name in t.distributions]
        conditional = len(seen) < len(trials)
        numeric = [d for d in seen if isinstance(d, (FloatDistribution, IntDistribution))]
        if len(numeric) == len(seen):
            scale: Callable[[float], float] = math.log10 if all(d.log for d in numeric) else float
            low, high = scale(min(d.low for d in numeric)), scale(max(d.high for d in numeric))
            inactive = low - (high - low)  # a range-width below: a value of its own
            distributions[name] = FloatDistribution(inactive if conditional else low, high)
            columns[name] = [
                scale(t.params[name]) if name in t.params else inactive for t in trials
            ]
        else:  # categorical (or a type that changed): its choices and every value it took
            choices = dict.fromkeys(
                [c for d in seen if isinstance(d, CategoricalDistribution) for c in d.choices]
                + [t.params[name] for t in trials if name in t.params]
            )
            distributions[name] = CategoricalDistribution(
                [*choices, INACTIVE] if conditional else list(choices)
            )
            columns[name] = [t.params.get(name, INACTIVE) for t in trials]
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory"
    try:
        copy = optuna.create_study(direction=direction)
    finally:
        optuna.logging.set_verbosity(verbosity)
    copy.add_trials(
        [
            optuna.trial.create_trial(
                value=t.value, distributions=distributions, params={n: columns[n][i] for n in names}
            )
            for i, t in enumerate(trials)
        ]
    )
    return copy


def plotting_modules() -> tuple[Any, Any, Any]:
    """``matplotlib.pyplot`` (on Agg: files only), ``optuna.visualization`` and its matplotlib
    twin. Seconds of imports: the runner calls this while the trials run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization as vis
    import optuna.visualization.matplotlib as vis_mpl

    return plt, vis, vis_mpl


def _write_plot(out: Path, name: str, plot: Callable[[Any], Any]) -> None:
    """``plot`` called with ``optuna.visualization`` (-> ``name.html``) and with its matplotlib
    twin (-> ``name.png``)."""
    import numpy as np

    plt, vis, vis_mpl = plotting_modules()
    plot(vis).write_html(out / f"{name}.html", include_plotlyjs="cdn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the twins are
        warnings.filterwarnings("ignore", "No artists with labels")  # an empty history's legend
        axes = plot(vis_mpl)
    figure = np.ravel(axes)[0].figure  # plot_slice gives one Axes per parameter
    try:
        figure.savefig(out / f"{name}.png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(figure)
