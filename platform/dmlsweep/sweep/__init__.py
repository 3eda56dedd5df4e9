"""A sweep, one stage per module: :mod:`~dmlsweep.sweep.plan` (what will run, checked before
anything starts), :mod:`~dmlsweep.sweep.cluster` (Ray and its resources),
:mod:`~dmlsweep.sweep.run` (the Tuner), :mod:`~dmlsweep.sweep.outcome` (ranking, analysis,
reproductions) and :mod:`~dmlsweep.sweep.interrupt` (Ctrl-C). Only the plan loads at import:
Ray, Optuna and MLflow load when a sweep runs."""

from __future__ import annotations

from dmlsweep.sweep.outcome import SweepOutcome
from dmlsweep.sweep.plan import SweepPlan, SweepRequest, build_plan, plan_sweep


def run_sweep(plan: SweepPlan) -> SweepOutcome:
    """:func:`dmlsweep.sweep.run.run_sweep`, imported when called."""
    from dmlsweep.sweep.run import run_sweep as run

    return run(plan)


__all__ = ["SweepOutcome", "SweepPlan", "SweepRequest", "build_plan", "plan_sweep", "run_sweep"]
