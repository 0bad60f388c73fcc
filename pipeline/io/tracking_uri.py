"""What jobs need to know of the MLflow store without importing MLflow (which costs a second):
where it is, what kind it is, the name of the champion alias; and a new store's tables made
aside."""

from __future__ import annotations

import os
from pathlib import Path

from leadscore.pipeline.io.work_aside import Aside

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
CHAMPION = "champion"  # the registry alias scoring follows
# the stores MLflow opens through SQLAlchemy (mlflow.store.db.db_types.DATABASE_ENGINES)
DATABASE_SCHEMES = ("postgresql", "mysql", "sqlite", "mssql")
# the store's lock is waited for up to 600 s (`configure_tracking`), then the tables are made
STORE_TIMEOUT_S = 900.0


def tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI if set, else a SQLite store `mlflow.db` in the working folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def database_store(uri: str) -> bool:
    """Whether MLflow keeps this store in a database it opens through SQLAlchemy."""
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
    return ":" in uri and scheme in DATABASE_SCHEMES


def sqlite_file(uri: str) -> Path | None:
    """The file of a SQLite store (its URL's query left out), or None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def lock_folder(uri: str) -> Path:
    """Where locks about the store live: beside a SQLite store, else the working folder."""
    path = sqlite_file(uri)
    return Path.cwd() if path is None else path.resolve().parent


def new_sqlite_store(uri: str) -> bool:
    """Whether the store is a SQLite file that does not exist yet (or is empty)."""
    path = sqlite_file(uri)
    if path is None or ":memory:" in uri:
        return False
    return not path.exists() or (path.is_file() and path.stat().st_size == 0)


def store_made_aside() -> Aside[Exception | None] | None:
    """A new SQLite store's tables made in a child process while the job goes on (MLflow's
    migrations take about 2 s on a first run); None when the store exists. `result()` is the
    problem the child met (another job holding the store, a folder that cannot be written), to
    be raised as it is, or None; the job then calls `configure_tracking` itself, which opens the
    store the child made."""
    if not new_sqlite_store(tracking_uri()):
        return None
    return Aside(_make_store, STORE_TIMEOUT_S)


def _make_store() -> Exception | None:
    from leadscore.pipeline.errors import InputError, JobBusy
    from leadscore.pipeline.io.tracking import configure_tracking

    try:
        configure_tracking()
    except (InputError, JobBusy) as exc:  # said once, by the job, with its own exit code
        return exc
    return None
