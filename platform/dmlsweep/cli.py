"""``dmlsweep`` / ``python sweeps/launch.py``: run a hyperparameter sweep.

Only the standard library and the space parser are imported at start, so ``--help``,
``--list-spaces`` and ``--dry-run`` answer at once; Ray, Optuna, MLflow and torch load when a
sweep really starts.
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dmlsweep.errors import DmlsweepError
from dmlsweep.strategies import SCHEDULERS, SEARCHERS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dmlsweep",
        description="Hyperparameter sweeps for deep metric learning: Ray Tune schedules, "
        "Optuna searches, ASHA stops early, MLflow tracks.",
        epilog="Example: python sweeps/launch.py --space baseline --num-samples 8",
    )
    p.add_argument("--space", help="space name in sweeps/spaces (e.g. ahsml) or a YAML path")
    p.add_argument("--list-spaces", action="store_true", help="list the spaces and exit")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check everything a real run checks before it starts, print the plan; start nothing",
    )
    p.add_argument(
        "--num-samples",
        type=int,
        help="number of trials (default 20); with --resume, more than the sweep's extends it",
    )
    p.add_argument(
        "--max-epochs", type=int, help="epochs per trial (default: the space's max_epochs)"
    )
    p.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default 1)")
    p.add_argument(
        "--gpus-per-trial",
        type=float,
        help="GPUs per trial; fractions below 1 pack trials on a GPU (default 0)",
    )
    p.add_argument("--max-concurrent", type=int, help="at most this many trials at once")
    p.add_argument(
        "--address",
        help="join an existing Ray cluster (e.g. auto, ray://head:10001); "
        "default: start a local Ray",
    )
    # Secrets stay out of command lines: both URLs may come from the environment.
    p.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite under --runs-dir)",
    )
    p.add_argument(
        "--storage",
        default=os.environ.get("DMLSWEEP_OPTUNA_STORAGE"),
        help="Optuna storage database URL (default: $DMLSWEEP_OPTUNA_STORAGE, else "
        "sqlite under --runs-dir)",
    )
    p.add_argument("--name", help="sweep name: Ray experiment, Optuna study and MLflow parent run")
    p.add_argument("--seed", type=int, help="seed of the sampler and the trials (default 0)")
    p.add_argument(
        "--searcher",
        choices=SEARCHERS,
        help="Optuna sampler: tpe, gp, cmaes or random (default: the space file's, else tpe)",
    )
    p.add_argument(
        "--scheduler",
        choices=SCHEDULERS,
        help="trial scheduler: asha, hyperband, median, fifo (no early stopping) or pbt "
        "(population-based training, no searcher) (default: the space file's, else asha)",
    )
    p.add_argument("--grace-period", type=int, help="asha, median: epochs before any stop (1)")
    p.add_argument("--reduction-factor", type=int, help="asha, hyperband: keep 1/this (2)")
    p.add_argument(
        "--max-retries",
        type=int,
        help="restart a trial whose worker or node died, from its last checkpoint, up to this "
        "many times (default 2); a bad value, a missing dataset or a diverged loss is never "
        "retried",
    )
    p.add_argument(
        "--resume",
        metavar="NAME",
        nargs="?",
        const="",
        help="continue the sweep NAME (or --name) as planned, after Ctrl-C or a dead driver: "
        "finished trials stay, unfinished ones continue from their checkpoints; a flag that "
        "contradicts the plan is refused",
    )
    p.add_argument(
        "--log-models",
        type=int,
        metavar="K",
        help="log the model of the K best trials to MLflow (default 3)",
    )
    p.add_argument(
        "--reproductions",
        type=int,
        metavar="N",
        help="after the search, re-train the best configuration(s) N times with fresh seeds "
        "and evaluate them on the test classes: mean, std and 95%% CI (default 0: off)",
    )
    p.add_argument(
        "--reproduce-top",
        type=int,
        metavar="K",
        help="how many of the best configurations --reproductions re-trains (default 1)",
    )
    p.add_argument(
        "--time-budget",
        type=float,
        metavar="SECONDS",
        help="stop the sweep after this long, as Ctrl-C does (resumable with --resume); exit 0",
    )
    p.add_argument(
        "--trial-timeout",
        type=float,
        metavar="SECONDS",
        help="stop a trial that runs longer than this (from its start or restore) and record "
        "it as failed, timed out; not retried. Stored with the sweep",
    )
    p.add_argument(
        "--runs-dir",
        type=Path,
        default=Path("dmlsweep-runs"),
        help="where local runs live: MLflow/Optuna SQLite, Ray results (default ./dmlsweep-runs)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a fixed setting of the space (YAML value), repeatable",
    )
    return p


def _parse_overrides(items: Sequence[str]) -> dict[str, object]:
    import yaml

    overrides: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DmlsweepError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "not a YAML value"
            raise DmlsweepError(f"--set {item!r}: the value is not valid YAML ({problem})") from exc
    return overrides


def run() -> None:
    """The ``dmlsweep`` command and ``sweeps/launch.py``: :func:`main`, then a quick exit.

    When ``main`` returns, everything is written and closed. The exit hooks run (Ray's shutdown
    among them) but the interpreter's teardown of torch, Ray and MLflow, which takes seconds
    and writes nothing, is skipped."""
    code = main()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    from dmlsweep.secrets import redact_console

    redact_console()  # every line printed from here on, whoever prints it
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except DmlsweepError as exc:
        print(f"dmlsweep: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dmlsweep: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    from dmlsweep.spaces import list_spaces

    if args.list_spaces:
        from dmlsweep.spaces import load_space

        for name in list_spaces():
            try:
                space = load_space(name)
                summary = space.description.strip().splitlines()[0] if space.description else ""
                print(f"{name:20s} {space.objective:10s} {summary}")
            except DmlsweepError as exc:
                print(f"{name:20s} INVALID: {exc}")
        return 0
    from dmlsweep.sweep import SweepRequest, plan_sweep

    resume = args.resume is not None
    if resume:
        args.name = args.resume or args.name
    request = SweepRequest(
        space=args.space,
        num_samples=args.num_samples,
        max_epochs=args.max_epochs,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent,
        address=args.address,
        tracking_uri=args.tracking_uri,
        storage=args.storage,
        name=args.name,
        seed=args.seed,
        searcher=args.searcher,
        scheduler=args.scheduler,
        grace_period=args.grace_period,
        reduction_factor=args.reduction_factor,
        max_retries=args.max_retries,
        models_top_k=args.log_models,
        runs_dir=args.runs_dir,
        extra_settings=_parse_overrides(args.set),
        resume=resume,
        reproductions=args.reproductions,
        reproduce_top=args.reproduce_top,
        time_budget=args.time_budget,
        trial_timeout=args.trial_timeout,
    )
    plan = plan_sweep(request)  # every check that needs no Ray: exit 2 before anything starts
    if args.dry_run:
        if plan.address:
            from dmlsweep.sweep.cluster import check_cluster

            check_cluster(plan)
        print(plan.describe())
        return 0

    from dmlsweep.report import print_outcome
    from dmlsweep.sweep import run_sweep

    outcome = run_sweep(plan)
    if outcome.interrupted:
        return 0 if outcome.budget_spent else 130
    print_outcome(outcome)
    return 0 if any(r["state"] == "COMPLETE" for r in outcome.trials) else 1


if __name__ == "__main__":
    run()
