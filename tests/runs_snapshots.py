"""What a runs directory holds, by content: compared before and after a call that must change
nothing (a refused one, a resume of a finished sweep). SQLite files are compared by what they
hold, never by hash (write-ahead logging rewrites them)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

SQLITE_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal")


@dataclass(frozen=True)
class Snapshot:
    """What a runs directory holds, by content."""

    runs: dict[str, Any]  # MLflow run id -> (name, status, params, tags, metric histories)
    trials: dict[str, Any]  # Optuna study name -> its trials
    files: dict[str, str]  # path under the directory -> sha256, SQLite files excepted


def snapshot(runs_dir: Path) -> Snapshot:
    client = MlflowClient(f"sqlite:///{runs_dir / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    runs: dict[str, Any] = {}
    for run in client.search_runs(experiments, run_view_type=ViewType.ALL, max_results=10000):
        histories = {
            key: sorted(
                (m.step, m.value, m.timestamp)
                for m in client.get_metric_history(run.info.run_id, key)
            )
            for key in run.data.metrics
        }
        runs[run.info.run_id] = (
            run.info.run_name, run.info.status, run.info.end_time, run.data.params,
            run.data.tags, histories,
        )  # fmt: skip
    storage = f"sqlite:///{runs_dir / 'optuna.db'}"
    trials = {
        name: [
            (t.number, t.state.name, t.params, t.values, t.intermediate_values, t.user_attrs)
            for t in optuna.load_study(study_name=name, storage=storage).trials
        ]
        for name in optuna.get_all_study_names(storage)
    }
    files = {
        str(path.relative_to(runs_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(runs_dir.rglob("*"))
        if path.is_file() and not path.name.endswith(SQLITE_SUFFIXES)
    }
    return Snapshot(runs=runs, trials=trials, files=files)
