"""Writing scores where marketing reads them: a SQL table, a Parquet or a CSV file, atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from pipeline.atomic_files import replaced_atomically
from pipeline.errors import InputError

FILE_SUFFIXES = (".parquet", ".csv")


def resolve_target(target: str) -> str:
    """A SQLAlchemy URL or a file path; a bare path that is not .parquet/.csv is a SQLite file."""
    if "://" in target or target.endswith(FILE_SUFFIXES):
        return target
    return f"sqlite:///{Path(target).resolve()}"


def redact(target: str) -> str:
    """The target with any password hidden, for printing and logging."""
    if "://" not in target:
        return target
    try:
        return sa.engine.make_url(target).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return target.split("://", 1)[0] + "://…"


def _write_file(frame: pd.DataFrame, path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
    with replaced_atomically(path) as tmp:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)


def _write_sql(frame: pd.DataFrame, url: str, table: str, chunksize: int) -> None:
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise InputError(f"cannot use {redact(url)} as a target: {exc}") from None
    try:
        with engine.begin() as conn:  # one transaction: on any failure the old rows stay
            inspector = sa.inspect(conn)
            if inspector.has_table(table):
                existing = [c["name"] for c in inspector.get_columns(table)]
                if existing == list(frame.columns):
                    conn.execute(sa.text(f'DELETE FROM "{table}"'))
                else:
                    conn.execute(sa.text(f'DROP TABLE "{table}"'))
            frame.to_sql(table, conn, if_exists="append", index=False, chunksize=chunksize)
    except sa.exc.OperationalError as exc:
        if not _connects(engine):
            raise InputError(f"cannot connect to {redact(url)}: {exc.orig}") from None
        raise
    finally:
        engine.dispose()


def _connects(engine: sa.engine.Engine) -> bool:
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False


def write_table(frame: pd.DataFrame, target: str, table: str, chunksize: int = 50_000) -> str:
    """Replace `table` at `target` with `frame` in one atomic step; return where it went."""
    resolved = resolve_target(target)
    if resolved.endswith(FILE_SUFFIXES) and "://" not in resolved:
        _write_file(frame, Path(resolved))
        return resolved
    _write_sql(frame, resolved, table, chunksize)
    return f"{redact(resolved)} (table {table})"
