"""The end-of-sweep summary printed to the console."""

from __future__ import annotations

from dmlsweep.progress import summary_table
from dmlsweep.secrets import redact
from dmlsweep.sweep import SweepOutcome


def print_outcome(outcome: SweepOutcome, *, top: int = 10) -> None:
    space = outcome.space
    states = [r["state"] for r in outcome.trials]
    print()
    print(
        f"sweep {outcome.name} finished: {states.count('COMPLETE')} complete, "
        f"{states.count('PRUNED')} pruned, {states.count('FAIL')} failed"
    )
    columns = ["trial", "state", space.metric, "epochs", *(p.name for p in space.parameters)]
    print(summary_table(outcome.trials[:top], columns=columns))
    failed = [r for r in outcome.trials if r["state"] == "FAIL" and r.get("error")]
    if failed:
        print(f"\nfirst failure (trial {failed[0]['trial']}): {failed[0]['error']}")
    if outcome.best_config is not None:
        print(f"\nbest configuration: {outcome.best_config}")
    print(f"\nMLflow: experiment {outcome.experiment!r}, parent run {outcome.parent_run_id}")
    if outcome.tracking_uri.startswith(("http://", "https://")):
        print(f"  open {redact(outcome.tracking_uri)}")
    else:
        print(f"  open the UI with: mlflow ui --backend-store-uri {redact(outcome.tracking_uri)}")
    if outcome.study_name is not None and outcome.storage is not None:
        print(f"Optuna study {outcome.study_name!r} in {redact(outcome.storage)}")
