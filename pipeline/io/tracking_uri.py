"""What jobs need to know of the MLflow store without importing MLflow (which costs a second):
where it is, what kind it is, and the name of the champion alias."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
CHAMPION = "champion"  # the registry alias scoring follows
# the stores MLflow opens through SQLAlchemy (mlflow.store.db.db_types.DATABASE_ENGINES)
DATABASE_SCHEMES = ("postgresql", "mysql", "sqlite", "mssql")


def tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI if set, else a SQLite store `mlflow.db` in the working folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def database_store(uri: str) -> bool:
    """Whether MLflow keeps this store in a database it opens through SQLAlchemy."""
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
    return ":" in uri and scheme in DATABASE_SCHEMES


def lock_folder(uri: str) -> Path:
    """Where locks about the store live: beside a SQLite store, else the working folder."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).resolve().parent
    return Path.cwd()
