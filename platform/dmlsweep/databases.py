"""The sweep's databases: Optuna storage and the local MLflow store.

A sweep makes hundreds of tiny commits (every ask, report and tell; every trial's metrics).
On SQLite, the default rollback journal pays two fsyncs per commit, which made Optuna's storage
alone cost ~3 s per 50 trials; write-ahead logging with ``synchronous=NORMAL`` keeps the
database consistent after a crash at a fraction of that cost.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmlsweep.errors import DmlsweepError
from dmlsweep.secrets import mask

if TYPE_CHECKING:
    from dmlsweep.optuna_storage import SoleWriterStorage

_SQLITE = "sqlite:///"


def open_optuna_storage(url: str) -> SoleWriterStorage:
    """The sweep's Optuna storage for ``url``: the database's (pickled without its password;
    SQLite files get write-ahead logging), read from an in-memory copy."""
    from sqlalchemy import event

    from dmlsweep.optuna_storage import MaskedRDBStorage, SoleWriterStorage

    try:
        storage = MaskedRDBStorage(url)
    except Exception as exc:
        raise DmlsweepError(f"cannot open the Optuna storage {mask(url)}: {exc}") from exc
    if url.startswith(_SQLITE):

        @event.listens_for(storage.engine, "connect")
        def _sqlite_pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        storage.engine.dispose()  # reconnect with the pragmas
    return SoleWriterStorage(storage)


def prepare_sqlite_tracking(uri: str) -> None:
    """Switch a local MLflow SQLite store to write-ahead logging (a setting kept in the file)."""
    if not uri.startswith(_SQLITE):
        return
    path = Path(uri[len(_SQLITE) :])
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
