"""Compare finished sweeps (e.g. AHSML against its base MS loss): a Markdown report with plots,
logged to MLflow.

    python -m dmlsweep.compare SWEEP [SWEEP ...] --out DIR [--tracking-uri URI]
                               [--log-to-mlflow | --no-log-to-mlflow]

A SWEEP is a sweep name (the parent run's name, looked up in every experiment) or a parent
run id. What is read from each sweep's parent run (written by :mod:`dmlsweep.tracking`, the
reproductions by the reproduction step):

- params ``sweep/objective``, ``sweep/metric`` ("val/map_at_r (max)"), ``sweep/num_samples``,
  ``best/<param>`` (the best config; keys also logged as ``setting/<param>`` or
  ``sweep/<param>`` are the sweep's fixed settings, not hyperparameters, and are left out);
- metrics ``best/<metric>``, ``trials/<ray status>``, and, when the best config was
  reproduced ``n`` times, ``repro/n`` and ``repro/<M>/{mean,std,ci95_low,ci95_high}`` for
  each test metric ``M``;
- child runs (tag ``mlflow.parentRunId``) with tag ``dmlsweep.state`` (COMPLETE, PRUNED,
  FAIL) and the per-epoch history of the sweep metric.

``DIR`` receives ``report.md`` and PNG plots; with ``--log-to-mlflow`` (the default) the
directory is logged as the artifacts of a run ``compare-<a>-vs-<b>...`` in the experiment
``dmlsweep-comparisons``, tagged ``dmlsweep.role=comparison`` and ``dmlsweep.compared`` (the
parent run ids, comma-separated).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmlsweep import schema
from dmlsweep.errors import DmlsweepError
from dmlsweep.names import filter_value
from dmlsweep.secrets import redact

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

COMPARISON_EXPERIMENT = "dmlsweep-comparisons"
DEFAULT_TRACKING_URI = "sqlite:///dmlsweep-runs/mlflow.db"
TRIAL_STATES = ("COMPLETE", "PRUNED", "FAIL")
REPRO_STATS = ("mean", "std", "ci95_low", "ci95_high")

_SQLITE = "sqlite:///"
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_REPRO_KEY = re.compile(r"^repro/(?P<metric>.+)/(?P<stat>mean|std|ci95_low|ci95_high)$")
_RUN_NAME_LIMIT = 250  # MLflow's maximum run name length
_PAGE = 1000


@dataclass(frozen=True)
class ReproducedMetric:
    """A test metric over ``n`` reproductions of the best config: mean, sample standard
    deviation and the 95% confidence interval of the mean, as logged by the reproductions."""

    mean: float
    std: float
    ci95_low: float
    ci95_high: float
    n: int

    def format(self) -> str:
        """``mean ± std [ci95_low, ci95_high] (n=N)``, four decimals."""
        return (
            f"{self.mean:.4f} ± {self.std:.4f} "
            f"[{self.ci95_low:.4f}, {self.ci95_high:.4f}] (n={self.n})"
        )


@dataclass(frozen=True)
class TrialSummary:
    """One trial (child run) of a sweep."""

    run_id: str
    state: str  # COMPLETE | PRUNED | FAIL, "" when the run has no dmlsweep.state tag
    start_time: int  # ms since the epoch; trials are numbered in this order
    value: float | None  # the sweep metric's last reported value; None if never reported
    history: tuple[tuple[int, float], ...]  # (epoch, sweep metric), by epoch
    params: Mapping[str, str]  # the trial's hyperparameters, as logged (text)


@dataclass(frozen=True)
class SweepSummary:
    """What the comparison needs from one finished sweep."""

    name: str
    run_id: str  # the parent run
    experiment: str
    objective: str
    space: str
    metric: str  # the sweep metric, e.g. "val/map_at_r"
    mode: str  # "max" or "min"
    num_samples: int | None
    best_value: float | None  # parent metric best/<metric>; None if no trial completed
    best_run_id: str | None
    best_config: Mapping[str, str]  # hyperparameter -> value as logged (text)
    test: Mapping[str, ReproducedMetric]  # test metric -> reproductions; empty if none
    ray_counts: Mapping[str, int]  # Ray's final trial statuses (parent metrics trials/*)
    trials: tuple[TrialSummary, ...]  # by start time

    def state_counts(self) -> dict[str, int]:
        """Trials per ``dmlsweep.state`` (COMPLETE, PRUNED, FAIL; others under "")."""
        counts = dict.fromkeys((*TRIAL_STATES, ""), 0)
        for trial in self.trials:
            counts[trial.state if trial.state in TRIAL_STATES else ""] += 1
        return counts


# -- reading sweeps -------------------------------------------------------------------------
def load_sweep(client: MlflowClient, ref: str) -> SweepSummary:
    """The finished sweep named ``ref`` (parent run name, any experiment) or with parent run
    id ``ref``. Raises :class:`DmlsweepError` for an unknown, ambiguous or unfinished sweep."""
    parent = _find_parent(client, ref)
    info, data = parent.info, parent.data
    label = f"sweep {info.run_name!r} (run {info.run_id})"
    if info.status != "FINISHED":
        raise DmlsweepError(
            f"{label} is {info.status}, not FINISHED: only finished sweeps can be compared"
        )
    params, metrics, tags = data.params, data.metrics, data.tags
    metric, mode = params.get(schema.SWEEP_METRIC), params.get(schema.SWEEP_MODE)
    if not metric or mode not in ("max", "min"):
        raise DmlsweepError(
            f"{label}: params {schema.SWEEP_METRIC} = {metric!r} and {schema.SWEEP_MODE} = "
            f"{mode!r}: expected a metric name and max or min (not a dmlsweep sweep?)"
        )
    best_config = {
        key: value
        for name, value in params.items()
        if name.startswith("best/")
        and (key := name[len("best/") :])
        and f"setting/{key}" not in params
        and f"sweep/{key}" not in params
    }
    trials = tuple(
        _trial_summary(client, run, metric=metric, hyperparameters=best_config)
        for run in sorted(_children(client, parent), key=lambda r: r.info.start_time or 0)
    )
    num_samples = params.get("sweep/num_samples")
    return SweepSummary(
        name=info.run_name,
        run_id=info.run_id,
        experiment=client.get_experiment(info.experiment_id).name,
        objective=params.get("sweep/objective") or tags.get(schema.OBJECTIVE, ""),
        space=tags.get(schema.SPACE, ""),
        metric=metric,
        mode=mode,
        num_samples=int(num_samples) if num_samples and num_samples.isdigit() else None,
        best_value=metrics.get(f"best/{metric}"),
        best_run_id=tags.get(schema.BEST_RUN_ID) or None,
        best_config=dict(sorted(best_config.items())),
        test=_reproductions(metrics, label=label),
        ray_counts={
            key[len("trials/") :]: int(value)
            for key, value in sorted(metrics.items())
            if key.startswith("trials/")
        },
        trials=trials,
    )


def _find_parent(client: MlflowClient, ref: str) -> Run:
    if _RUN_ID.match(ref):
        try:
            run = client.get_run(ref)
        except Exception:  # not a run id after all: try it as a name
            run = None
        if run is not None:
            if run.data.tags.get(schema.ROLE) != schema.SWEEP_ROLE:
                raise DmlsweepError(
                    f"run {ref} is not a sweep's parent run (dmlsweep.role="
                    f"{run.data.tags.get('dmlsweep.role')!r})"
                )
            return run
    experiment_ids = []
    token = None
    while True:
        page = client.search_experiments(max_results=_PAGE, page_token=token)
        experiment_ids += [e.experiment_id for e in page]
        token = page.token
        if not token:
            break
    # Filtered by name here, not in the filter string, so any name works unquoted.
    found = [
        run
        for run in _search_runs(client, experiment_ids, "tags.`dmlsweep.role` = 'sweep'")
        if run.info.run_name == ref
    ]
    if not found:
        raise DmlsweepError(
            f"no sweep named {ref!r} (no sweep's parent run has that name or run id)"
        )
    if len(found) > 1:
        ids = ", ".join(sorted(r.info.run_id for r in found))
        raise DmlsweepError(
            f"sweep name {ref!r} is ambiguous: {len(found)} parent runs have it ({ids}); "
            "name the sweep by its run id"
        )
    return found[0]


def _search_runs(client: MlflowClient, experiment_ids: list[str], filter_string: str) -> list[Run]:
    runs: list[Run] = []
    for start in range(0, len(experiment_ids), 100):  # some stores cap the ids per query
        token = None
        while True:
            page = client.search_runs(
                experiment_ids[start : start + 100],
                filter_string=filter_string,
                max_results=_PAGE,
                page_token=token,
            )
            runs += page
            token = page.token
            if not token:
                break
    return runs


def _children(client: MlflowClient, parent: Run) -> list[Run]:
    return _search_runs(
        client,
        [parent.info.experiment_id],
        f"tags.`mlflow.parentRunId` = {filter_value(parent.info.run_id)}",
    )


def _trial_summary(
    client: MlflowClient, run: Run, *, metric: str, hyperparameters: Mapping[str, str]
) -> TrialSummary:
    history = sorted(
        (m.step, m.timestamp, m.value) for m in client.get_metric_history(run.info.run_id, metric)
    )
    by_epoch = {step: value for step, _, value in history}  # the latest value of each epoch
    return TrialSummary(
        run_id=run.info.run_id,
        state=run.data.tags.get(schema.STATE, ""),
        start_time=run.info.start_time or 0,
        value=run.data.metrics.get(metric),
        history=tuple(sorted(by_epoch.items())),
        params={k: run.data.params[k] for k in hyperparameters if k in run.data.params},
    )


def _reproductions(metrics: Mapping[str, float], *, label: str) -> dict[str, ReproducedMetric]:
    stats: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if match := _REPRO_KEY.match(key):
            stats.setdefault(match["metric"], {})[match["stat"]] = value
    if not stats:
        return {}
    missing = [
        f"repro/{name}/{stat}"
        for name, got in stats.items()
        for stat in REPRO_STATS
        if stat not in got
    ]
    if "repro/n" not in metrics:
        missing.insert(0, "repro/n")
    if missing:
        raise DmlsweepError(f"{label}: incomplete reproduction record, missing {missing}")
    n = int(round(metrics["repro/n"]))
    return {
        name: ReproducedMetric(
            mean=got["mean"],
            std=got["std"],
            ci95_low=got["ci95_low"],
            ci95_high=got["ci95_high"],
            n=n,
        )
        for name, got in sorted(stats.items())
    }


def best_so_far(sweep: SweepSummary) -> list[float | None]:
    """After each trial (by start time), the best final sweep metric of the COMPLETE trials
    so far: ``b_i = opt(v_j : j <= i, trial j complete)``, ``opt`` = max or min by the sweep's
    mode; None before the first complete trial. Its last value is the sweep's best value."""
    pick = max if sweep.mode == "max" else min
    best: float | None = None
    curve: list[float | None] = []
    for trial in sweep.trials:
        if trial.state == "COMPLETE" and trial.value is not None:
            best = trial.value if best is None else pick(best, trial.value)
        curve.append(best)
    return curve


# -- the report ----------------------------------------------------------------------------
def write_report(summaries: Sequence[SweepSummary], out_dir: Path) -> Path:
    """Write ``out_dir/report.md`` and its PNG plots; return the report's path."""
    if not summaries:
        raise DmlsweepError("nothing to compare: give at least one sweep")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = _write_figures(summaries, out_dir)
    test_metrics = sorted({m for s in summaries for m in s.test})
    parameters = sorted({p for s in summaries for p in s.best_config})

    lines = [
        f"# Comparison: {', '.join(s.name for s in summaries)}",
        "",
        f"Generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by `dmlsweep.compare`. "
        "Test metrics: mean ± std [95% CI of the mean] (n reproductions) of the best "
        "configuration; — where it was not reproduced.",
        "",
        "## Summary",
        "",
    ]
    header = [
        "sweep",
        "objective",
        "trials (complete / pruned / failed)",
        "best validation metric",
        "best config",
        *test_metrics,
    ]
    lines += [_row(header), _row(["---"] * len(header))]
    for s in summaries:
        lines.append(
            _row(
                [
                    s.name,
                    s.objective,
                    _format_counts(s.state_counts()),
                    _format_best(s),
                    ", ".join(f"{k}={v}" for k, v in s.best_config.items()) or "—",
                    *(s.test[m].format() if m in s.test else "—" for m in test_metrics),
                ]
            )
        )

    lines += ["", "## Sweeps", ""]
    for s in summaries:
        lines.append(
            f"- **{s.name}**: parent run `{s.run_id}` in experiment `{s.experiment}`, "
            f"space `{s.space or '?'}`, objective `{s.objective}`, metric `{s.metric}` "
            f"({s.mode}), {len(s.trials)} trials of {s.num_samples or '?'} requested"
            + (f", best trial run `{s.best_run_id}`" if s.best_run_id else "")
            + (
                f"; Ray: {', '.join(f'{v} {k}' for k, v in s.ray_counts.items())}"
                if s.ray_counts
                else ""
            )
        )

    if parameters:
        lines += [
            "",
            "## Hyperparameters",
            "",
            "The best value of each hyperparameter, and what the sweep's trials tried.",
        ]
        for parameter in parameters:
            lines += ["", f"### `{parameter}`", ""]
            lines += [_row(["sweep", "best", "tried"]), _row(["---"] * 3)]
            for s in summaries:
                if parameter in s.best_config:
                    tried = [t.params[parameter] for t in s.trials if parameter in t.params]
                    lines.append(_row([s.name, s.best_config[parameter], _format_tried(tried)]))
                else:
                    lines.append(_row([s.name, "—", "not a hyperparameter of this sweep"]))

    if figures:
        lines += ["", "## Plots", ""]
        lines += [f"![{title}]({path.name})\n" for title, path in figures]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines).rstrip() + "\n")
    return report


def _row(cells: Sequence[str]) -> str:
    # A literal "|" would end the cell early.
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def _format_counts(counts: Mapping[str, int]) -> str:
    text = f"{counts['COMPLETE']} / {counts['PRUNED']} / {counts['FAIL']}"
    return text + (f" (+{counts['']} without state)" if counts[""] else "")


def _format_best(s: SweepSummary) -> str:
    if s.best_value is None:
        return "—"
    return f"{s.best_value:.4f} ({s.metric}, {s.mode})"


def _format_tried(values: Sequence[str]) -> str:
    if not values:
        return "—"
    numbers = [_number(v) for v in values]
    if all(x is not None for x in numbers):
        low = min(x for x in numbers if x is not None)
        high = max(x for x in numbers if x is not None)
        return f"{low:.4g} … {high:.4g} ({len(values)} trials)"
    distinct = sorted(set(values))
    return ", ".join(f"{v} ×{values.count(v)}" for v in distinct)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# -- plots ---------------------------------------------------------------------------------
def _write_figures(summaries: Sequence[SweepSummary], out_dir: Path) -> list[tuple[str, Path]]:
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    written: list[tuple[str, Path]] = []
    makers = (
        ("test metrics (95% CI of the mean)", "test_metrics.png", _plot_test_metrics),
        ("best validation metric vs trial", "best_vs_trial.png", _plot_best_vs_trial),
        ("sweep metric vs epoch, every trial", "learning_curves.png", _plot_learning_curves),
        ("final sweep metric vs hyperparameter", "hyperparameters.png", _plot_hyperparameters),
    )
    for title, filename, make in makers:
        figure = make(summaries)
        if figure is None:
            continue
        path = out_dir / filename
        figure.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append((title, path))
    return written


def _plot_test_metrics(summaries: Sequence[SweepSummary]) -> Figure | None:
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    metrics = sorted({m for s in summaries for m in s.test})
    if not metrics:
        return None
    figure, ax = plt.subplots(figsize=(1.8 + 1.6 * len(metrics) * len(summaries) ** 0.5, 4))
    width = 0.8 / len(summaries)
    handles: list[Any] = []
    for i, s in enumerate(summaries):
        offset = (i - (len(summaries) - 1) / 2) * width
        xs = [j + offset for j, m in enumerate(metrics) if m in s.test]
        got = [s.test[m] for m in metrics if m in s.test]
        if not got:  # its slot stays empty; the legend says why
            handles.append(
                Patch(facecolor=f"C{i}", alpha=0.3, label=f"{s.name} (no reproductions)")
            )
            continue
        bars = ax.bar(
            xs,
            [r.mean for r in got],
            width,
            color=f"C{i}",
            yerr=[[r.mean - r.ci95_low for r in got], [r.ci95_high - r.mean for r in got]],
            capsize=3,
            label=f"{s.name} ({s.objective}, n={got[0].n})",
        )
        handles.append(bars)
    ax.set_xticks(range(len(metrics)), metrics)
    ax.set_ylabel("test metric")
    ax.legend(handles=handles, fontsize="small")
    return figure


def _plot_best_vs_trial(summaries: Sequence[SweepSummary]) -> Figure | None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    groups = _by_metric(summaries)
    if not any(s.trials for s in summaries):
        return None
    figure, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4), squeeze=False)
    for ax, ((metric, mode), members) in zip(axes[0], groups.items(), strict=True):
        for k, s in members:
            trial_numbers = range(1, len(s.trials) + 1)
            curve = [math.nan if b is None else b for b in best_so_far(s)]
            ax.step(trial_numbers, curve, where="post", color=f"C{k}", label=s.name)
            # Every trial's last value, stopped ones included, shows what the search tried.
            done = [
                (i, t.value)
                for i, t in zip(trial_numbers, s.trials, strict=True)
                if t.value is not None
            ]
            ax.scatter([i for i, _ in done], [v for _, v in done], s=10, alpha=0.35, color=f"C{k}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("trial (by start time)")
        ax.set_ylabel(f"best {metric} so far ({mode})")
        ax.legend(fontsize="small")
    return figure


def _plot_learning_curves(summaries: Sequence[SweepSummary]) -> Figure | None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    shown = [s for s in summaries if any(t.history for t in s.trials)]
    if not shown:
        return None
    figure, axes = plt.subplots(
        1,
        len(shown),
        figsize=(5 * len(shown), 3.8),
        squeeze=False,
        sharey=len({(s.metric, s.mode) for s in shown}) == 1,  # one scale only for one metric
    )
    for ax, s in zip(axes[0], shown, strict=True):
        for trial in s.trials:
            if trial.history:
                complete = trial.state == "COMPLETE"
                ax.plot(
                    [e for e, _ in trial.history],
                    [v for _, v in trial.history],
                    color="C0" if complete else "C3",
                    alpha=0.8 if complete else 0.35,
                    lw=1,
                    marker="o",
                    markersize=2,  # a trial stopped after one epoch is a point
                )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{s.name} (blue: complete, red: stopped)", fontsize="small")
        ax.set_xlabel("epoch")
        ax.set_ylabel(s.metric)
    return figure


def _plot_hyperparameters(summaries: Sequence[SweepSummary]) -> Figure | None:
    import matplotlib.pyplot as plt

    parameters = sorted({p for s in summaries for p in s.best_config})
    if not parameters or not any(t.value is not None for s in summaries for t in s.trials):
        return None
    columns = min(3, len(parameters))
    rows = math.ceil(len(parameters) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.5 * rows), squeeze=False)
    metrics = sorted({s.metric for s in summaries})
    for ax, parameter in zip(axes.flat, parameters, strict=False):
        values = [t.params[parameter] for s in summaries for t in s.trials if parameter in t.params]
        numeric = all(_number(v) is not None for v in values)
        categories = sorted(set(values))
        for k, s in enumerate(summaries):
            points = [
                (t.params[parameter], t.value)
                for t in s.trials
                if t.state == "COMPLETE" and t.value is not None and parameter in t.params
            ]
            xs = [_number(x) if numeric else categories.index(x) for x, _ in points]
            ax.scatter(xs, [v for _, v in points], s=14, alpha=0.7, color=f"C{k}", label=s.name)
        if numeric and values:
            low, high = min(map(float, values)), max(map(float, values))
            if low > 0 and high / low > 20:  # learning rates and the like
                ax.set_xscale("log")
        elif categories:
            ax.set_xticks(range(len(categories)), categories, rotation=30, fontsize="small")
        ax.set_xlabel(parameter)
        ax.set_ylabel(metrics[0] if len(metrics) == 1 else "final sweep metric")
    for ax in list(axes.flat)[len(parameters) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize="small")
    return figure


def _by_metric(
    summaries: Sequence[SweepSummary],
) -> dict[tuple[str, str], list[tuple[int, SweepSummary]]]:
    """(metric, mode) -> (index, sweep): sweeps on one metric share a plot; the index keeps
    each sweep's colour the same in every plot."""
    groups: dict[tuple[str, str], list[tuple[int, SweepSummary]]] = {}
    for k, s in enumerate(summaries):
        groups.setdefault((s.metric, s.mode), []).append((k, s))
    return groups


# -- MLflow and the command line -------------------------------------------------------------
def log_comparison(
    client: MlflowClient, summaries: Sequence[SweepSummary], *, out_dir: Path, tracking_uri: str
) -> str:
    """Log ``out_dir`` as the artifacts of a run in :data:`COMPARISON_EXPERIMENT`; return its
    run id."""
    experiment = client.get_experiment_by_name(COMPARISON_EXPERIMENT)
    if experiment is None:
        experiment_id = client.create_experiment(
            COMPARISON_EXPERIMENT, artifact_location=_local_artifact_location(tracking_uri)
        )
    elif experiment.lifecycle_stage != "active":
        raise DmlsweepError(
            f"the MLflow experiment {COMPARISON_EXPERIMENT!r} is deleted: restore it "
            f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) "
            "or pass --no-log-to-mlflow"
        )
    else:
        experiment_id = experiment.experiment_id
    name = ("compare-" + "-vs-".join(s.name for s in summaries))[:_RUN_NAME_LIMIT]
    run = client.create_run(
        experiment_id,
        run_name=name,
        tags={
            schema.ROLE: schema.COMPARISON_ROLE,
            schema.COMPARED: ",".join(s.run_id for s in summaries),
        },
    )
    run_id = run.info.run_id
    try:
        client.log_artifacts(run_id, str(out_dir))
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _local_artifact_location(tracking_uri: str) -> str | None:
    # A local store keeps its artifacts beside it (as the runner does); a server decides.
    if tracking_uri.startswith(_SQLITE):
        return (Path(tracking_uri[len(_SQLITE) :]).resolve().parent / "mlartifacts").as_uri()
    return None


def compare(
    refs: Sequence[str], *, tracking_uri: str, out_dir: Path, log_to_mlflow: bool
) -> tuple[Path, str | None]:
    """Load the sweeps, write the report, optionally log it; return (report, run id or None)."""
    from mlflow.tracking import MlflowClient

    duplicates = sorted({r for r in refs if list(refs).count(r) > 1})
    if duplicates:
        raise DmlsweepError(f"sweep given more than once: {', '.join(duplicates)}")
    if tracking_uri.startswith(_SQLITE) and not Path(tracking_uri[len(_SQLITE) :]).is_file():
        # MLflow would create an empty store there instead.
        raise DmlsweepError(f"no MLflow store at {redact(tracking_uri)}")
    client = MlflowClient(tracking_uri)
    try:
        summaries = [load_sweep(client, ref) for ref in refs]
    except DmlsweepError as exc:
        raise DmlsweepError(f"{exc}; tracking store {redact(tracking_uri)}") from exc
    except Exception as exc:
        raise DmlsweepError(
            f"cannot read the MLflow store {redact(tracking_uri)}: {redact(str(exc))}"
        ) from exc
    ids = [s.run_id for s in summaries]
    if len(set(ids)) < len(ids):
        raise DmlsweepError("the same sweep is named twice (by name and by run id)")
    report = write_report(summaries, out_dir)
    run_id = None
    if log_to_mlflow:
        try:
            run_id = log_comparison(client, summaries, out_dir=out_dir, tracking_uri=tracking_uri)
        except DmlsweepError:
            raise
        except Exception as exc:
            raise DmlsweepError(
                f"cannot log the comparison to {redact(tracking_uri)}: {redact(str(exc))}"
            ) from exc
    return report, run_id


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dmlsweep.compare",
        description="Compare finished sweeps: a Markdown report with plots, logged to MLflow.",
    )
    p.add_argument("sweeps", nargs="+", metavar="SWEEP", help="sweep name or parent run id")
    # Secrets stay out of command lines: the URL may come from the environment.
    p.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI,
        help=f"MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else {DEFAULT_TRACKING_URI})",
    )
    p.add_argument("--out", type=Path, required=True, help="directory for report.md and plots")
    p.add_argument(
        "--log-to-mlflow",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"log the report as a run in experiment {COMPARISON_EXPERIMENT} (default: yes)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from dmlsweep.secrets import redact_console

    redact_console()
    args = build_parser().parse_args(argv)
    try:
        report, run_id = compare(
            args.sweeps,
            tracking_uri=args.tracking_uri,
            out_dir=args.out,
            log_to_mlflow=args.log_to_mlflow,
        )
    except DmlsweepError as exc:
        print(f"dmlsweep: error: {redact(str(exc))}", file=sys.stderr)
        return 2
    print(f"report: {report}")
    if run_id is not None:
        print(f"MLflow: experiment {COMPARISON_EXPERIMENT!r}, run {run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
