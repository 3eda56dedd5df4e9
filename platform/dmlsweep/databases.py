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
from dmlsweep.secrets import redact

if TYPE_CHECKING:
    from dmlsweep.optuna_storage import SoleWriterStorage

_SQLITE = "sqlite:///"

# SQLAlchemy's drivers of each database, and the module each imports
_DRIVERS = {
    "postgresql": {"psycopg2": "psycopg2", "psycopg": "psycopg", "pg8000": "pg8000"},
    "mysql": {"pymysql": "pymysql", "mysqldb": "MySQLdb", "mysqlconnector": "mysql.connector"},
}


def check_database_url(url: str, *, flag: str) -> None:
    """Refuse, before anything starts, a database URL that SQLAlchemy cannot open: not a URL,
    an unknown database, or a driver that is not installed (naming the installed ones)."""
    import importlib.util

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DmlsweepError(
            f"{flag} {redact(url)!r} is not a database URL (for example "
            "postgresql+psycopg2://user@host:5432/db or sqlite:////abs/path.db)"
        ) from None
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise DmlsweepError(
            f"{flag} {redact(url)}: SQLAlchemy knows no database {parsed.drivername!r}"
        ) from None
    try:
        dialect.import_dbapi()
    except ImportError:
        backend = parsed.get_backend_name()
        installed = [
            f"{backend}+{driver}://"
            for driver, module in _DRIVERS.get(backend, {}).items()
            if importlib.util.find_spec(module.split(".")[0]) is not None
        ]
        hint = (
            f"name an installed one in the URL: {', '.join(installed)}"
            if installed
            else "install one, or name another in the URL"
        )
        raise DmlsweepError(
            f"{flag} {redact(url)}: the {backend} driver {parsed.get_driver_name()!r} "
            f"(SQLAlchemy's default for {parsed.drivername}://) is not installed; {hint}"
        ) from None


def open_optuna_storage(url: str) -> SoleWriterStorage:
    """The sweep's Optuna storage for ``url``: the database's (pickled without its password;
    SQLite files get write-ahead logging), read from an in-memory copy."""
    from sqlalchemy import event

    from dmlsweep.optuna_storage import MaskedRDBStorage, SoleWriterStorage

    try:
        storage = MaskedRDBStorage(url)
    except Exception as exc:
        raise DmlsweepError(f"cannot open the Optuna storage {redact(url)}: {exc}") from exc
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
