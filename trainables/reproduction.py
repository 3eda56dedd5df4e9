"""One reproduction: train a configuration to the end, then evaluate it on the test classes.

The objective's ``train`` runs as a plain function (its epochs captured, not reported, so
nothing is checkpointed mid-way and no scheduler can stop it); its last state is loaded into a
fresh network and ``evaluate_test`` reads the test classes, once. One Tune result per trial:
the last epoch's metrics and the ``test/*`` metrics.
"""

from __future__ import annotations

from typing import Any


def reproduce(config: dict[str, Any]) -> None:
    from ray import tune

    from trainables.registry import load_objective
    from trainables.reporting import capture_reports

    run = dict(config["reproduction"])
    rank = run.pop("reproduction_rank")
    objective = load_objective(run["objective"])
    with capture_reports() as epochs:
        objective.train(run)
    if not epochs or epochs.last_state is None or "model" not in epochs.last_state:
        raise RuntimeError(f"objective {run['objective']!r} reported no model state to evaluate")
    model = objective.build_model(run)
    model.load_state_dict(epochs.last_state["model"])
    test = objective.evaluate_test(model, run)
    tune.report(
        {
            **epochs[-1],
            **test,
            "reproduction/rank": float(rank),
            "reproduction/seed": float(run["seed"]),
        }
    )
