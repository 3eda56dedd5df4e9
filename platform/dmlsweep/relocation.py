"""A runs dir that was moved or copied resumes where it now is.

Its own SQLite MLflow store (``<runs dir>/mlflow.db``) holds absolute artifact paths under
``<runs dir>/mlartifacts``, as MLflow stores them: the experiment's artifact location, each
run's artifact URI, each logged model's location. Left as they were, a resumed sweep would log
its models into the old place (recreating it, outside the runs dir) and the UI would look for
the earlier ones there. MLflow has no API to move an experiment's artifacts, so before the
sweep resumes, every value in the store that starts with the old location is rebased onto the
new one, in one transaction. Tune's state and the Optuna study need nothing: Tune resolves a
restored experiment's paths from where it is restored, and the study's URL comes from the
command line (:mod:`dmlsweep.optuna_storage`).
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

ARTIFACTS = "mlartifacts"  # the runs dir's artifact root


def artifact_root(runs_dir: Path) -> str:
    return (runs_dir / ARTIFACTS).as_uri()


def rebase_artifacts(database: Path, *, experiment: str, runs_dir: Path) -> str | None:
    """Rebase the store's artifact paths onto ``runs_dir`` if ``experiment`` was made in another
    place; the old location, or None when nothing needed a change."""
    new = artifact_root(runs_dir)
    with contextlib.closing(sqlite3.connect(database, timeout=60)) as db, db:
        row = db.execute(
            "SELECT artifact_location FROM experiments WHERE name = ?", (experiment,)
        ).fetchone()
        old = row[0] if row else None
        if not old or old == new or not old.rstrip("/").endswith(f"/{ARTIFACTS}"):
            return None  # not this platform's layout (a server's store, a path of the user's)
        old = old.rstrip("/")
        plain = old.removeprefix("file://")  # some values are paths, not URIs
        for table, column in _text_columns(db):
            for prefix, replacement in ((old, new), (plain, new.removeprefix("file://"))):
                db.execute(
                    f'UPDATE "{table}" SET "{column}" = ? || substr("{column}", ?) '
                    f'WHERE "{column}" = ? OR substr("{column}", 1, ?) = ?',
                    (replacement, len(prefix) + 1, prefix, len(prefix) + 1, f"{prefix}/"),
                )
    return old


def _text_columns(db: sqlite3.Connection) -> list[tuple[str, str]]:
    found = []
    tables = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for table in tables:
        for _, column, kind, *_ in db.execute(f'PRAGMA table_info("{table}")'):
            if any(word in kind.upper() for word in ("CHAR", "TEXT", "CLOB")):
                found.append((table, column))
    return found


__all__ = ["ARTIFACTS", "artifact_root", "rebase_artifacts"]
