"""Writing scores where marketing reads them: a SQL table, a Parquet or a CSV file, atomically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from pipeline.atomic_files import replaced_atomically
from pipeline.bulk_insert import create_table, insert_rows
from pipeline.errors import InputError

FILE_SUFFIXES = (".parquet", ".csv")


def resolve_target(target: str) -> str:
    """A SQLAlchemy URL or a file path; a bare path that is not .parquet/.csv is a SQLite file."""
    if "://" in target or target.endswith(FILE_SUFFIXES):
        return target
    return f"sqlite:///{Path(target).resolve()}"


def _is_file(resolved: str) -> bool:
    """A resolved target that is a Parquet or CSV file rather than a database."""
    return resolved.endswith(FILE_SUFFIXES) and "://" not in resolved


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


UNCHANGED_IF_SAME = ("lead_id", "probability", "model_version", "as_of")


def keep_unchanged_times(new: pd.DataFrame, old: pd.DataFrame | None) -> pd.DataFrame:
    """A lead whose score is unchanged keeps its old `scored_at`, so rerunning a job on the
    same inputs leaves the current table exactly as it was."""
    if old is None or old.empty or not set(UNCHANGED_IF_SAME) <= set(old.columns):
        return new
    key = list(UNCHANGED_IF_SAME)

    def normalised(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "lead_id": frame["lead_id"].astype(str).to_numpy(),
                "probability": pd.to_numeric(frame["probability"]).round(6).to_numpy(),
                "model_version": frame["model_version"].astype(str).to_numpy(),
                # as integers: a tz-aware to_numpy() would build a Timestamp object per row
                "as_of": pd.DatetimeIndex(pd.to_datetime(frame["as_of"], utc=True))
                .as_unit("ns")
                .asi8,
            }
        )

    previous = normalised(old).assign(old_scored_at=pd.to_datetime(old["scored_at"], utc=True))
    merged = normalised(new).merge(previous, on=key, how="left")
    kept = merged["old_scored_at"].notna().to_numpy()
    out = new.copy()
    out.loc[kept, "scored_at"] = merged.loc[kept, "old_scored_at"].to_numpy()
    return out


def _write_sql(
    frame: pd.DataFrame,
    url: str,
    table: str,
    history: tuple[pd.DataFrame, str] | None = None,
    columns: dict[str, str] | None = None,
) -> None:
    engine = _engine(url)
    try:
        with engine.begin() as conn:  # one transaction: on any failure the old rows stay
            inspector = sa.inspect(conn)
            exists = inspector.has_table(table)
            if exists and history is not None and "scored_at" in frame.columns:
                frame = _keep_stored_times(conn, inspector, table, frame, columns)
            frame = frame.rename(columns=columns or {})
            if exists:
                existing = [c["name"] for c in inspector.get_columns(table)]
                if existing == list(frame.columns):
                    conn.execute(sa.text(f'DELETE FROM "{table}"'))
                else:
                    conn.execute(sa.text(f'DROP TABLE "{table}"'))
            create_table(frame, conn, table)
            insert_rows(frame, conn, table)
            if history is not None:
                rows, history_table = history
                create_table(rows, conn, history_table)
                insert_rows(rows, conn, history_table)
    except sa.exc.OperationalError as exc:
        if not _connects(engine):
            raise InputError(f"cannot connect to {redact(url)}: {exc.orig}") from None
        raise
    finally:
        engine.dispose()


def _keep_stored_times(
    conn: sa.Connection,
    inspector: sa.Inspector,
    table: str,
    frame: pd.DataFrame,
    columns: dict[str, str] | None,
) -> pd.DataFrame:
    """`keep_unchanged_times` against the stored table, reading only what it compares, and
    nothing at all when no stored row has this batch's as-of and model version (the nightly
    case: a new as-of every run)."""
    name = {c: (columns or {}).get(c, c) for c in (*UNCHANGED_IF_SAME, "scored_at")}
    if not set(name.values()) <= {col["name"] for col in inspector.get_columns(table)}:
        return frame
    q = '"{}"'.format
    stored = pd.read_sql_query(
        f"SELECT DISTINCT {q(name['as_of'])} AS as_of, {q(name['model_version'])} AS version "
        f'FROM "{table}"',
        conn,
    )
    batch = frame[["as_of", "model_version"]].drop_duplicates()

    def pairs(moments: pd.Series, versions: pd.Series) -> set[tuple[pd.Timestamp, str]]:
        return set(zip(pd.to_datetime(moments, utc=True), versions.astype(str), strict=True))

    if not pairs(stored["as_of"], stored["version"]) & pairs(
        batch["as_of"], batch["model_version"]
    ):
        return frame
    old = pd.read_sql_table(table, conn, columns=list(name.values()))
    return keep_unchanged_times(frame, old.rename(columns=_inverse(columns)))


def _engine(url: str) -> sa.engine.Engine:
    """An engine whose `begin()` is a real transaction, DDL included.

    Python's sqlite3 commits a DROP or CREATE TABLE of its own accord; SQLAlchemy's documented
    remedy is to turn that off and emit BEGIN ourselves, so a replaced table rolls back too."""
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise InputError(f"cannot use {redact(url)} as a target: {exc}") from None
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection: object, record: object) -> None:
            dbapi_connection.isolation_level = None  # type: ignore[attr-defined]

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN")

    return engine


def _connects(engine: sa.engine.Engine) -> bool:
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False


def _inverse(columns: dict[str, str] | None) -> dict[str, str]:
    return {v: k for k, v in (columns or {}).items()}


def _read_file(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def read_current(
    target: str, table: str, history_table: str, columns: dict[str, str] | None = None
) -> tuple[pd.DataFrame | None, pd.Timestamp | None]:
    """The current scores at `target` (our column names) and the newest `as_of` in its history,
    each None when there is none yet."""
    resolved = resolve_target(target)
    if _is_file(resolved):
        path = Path(resolved)
        current = _read_file(path)
        history = _read_file(history_path(path, history_table))
    else:
        engine = _engine(resolved)
        try:
            with engine.connect() as conn:
                inspector = sa.inspect(conn)
                current = pd.read_sql_table(table, conn) if inspector.has_table(table) else None
                history = (
                    pd.read_sql_query(f'SELECT MAX(as_of) AS as_of FROM "{history_table}"', conn)
                    if inspector.has_table(history_table)
                    else None
                )
        except sa.exc.OperationalError as exc:
            raise InputError(f"cannot read {redact(resolved)}: {exc.orig}") from None
        finally:
            engine.dispose()
    if current is not None:
        current = current.rename(columns=_inverse(columns))
    last = None
    if history is not None and len(history) and history["as_of"].notna().any():
        last = pd.to_datetime(history["as_of"], utc=True).max()
    return current, last


def read_history(
    target: str, history_table: str, columns: dict[str, str] | None = None
) -> pd.DataFrame | None:
    """Every batch in the history table at `target` (our column names), or None without one."""
    resolved = resolve_target(target)
    if _is_file(resolved):
        history = _read_file(history_path(Path(resolved), history_table))
    else:
        engine = _engine(resolved)
        try:
            with engine.connect() as conn:
                history = (
                    pd.read_sql_table(history_table, conn)
                    if sa.inspect(conn).has_table(history_table)
                    else None
                )
        except sa.exc.OperationalError as exc:
            raise InputError(f"cannot read {redact(resolved)}: {exc.orig}") from None
        finally:
            engine.dispose()
    return None if history is None else history.rename(columns=_inverse(columns))


def history_path(path: Path, history_table: str) -> Path:
    """Where a file target keeps its history: `scores.parquet` -> `scores.<history>.parquet`."""
    return path.with_name(f"{path.stem}.{history_table}{path.suffix}")


def write_table(
    frame: pd.DataFrame,
    target: str,
    table: str,
    history: tuple[pd.DataFrame, str] | None = None,
    columns: dict[str, str] | None = None,
) -> str:
    """Replace `table` at `target` with `frame` in one atomic step; return where it went.

    With `history` (rows, table name), the rows are appended to that append-only table in the
    same transaction, and leads whose scores did not change keep their `scored_at`. File
    targets keep the history in a second file, written before the current one. `columns`
    renames the current table's columns (a CRM's import names); the history keeps ours.
    """
    resolved = resolve_target(target)
    if _is_file(resolved):
        path = Path(resolved)
        if history is not None:
            rows, history_table = history
            log = history_path(path, history_table)
            earlier = _read_file(log)
            _write_file(rows if earlier is None else pd.concat([earlier, rows]), log)
            previous = _read_file(path)
            if previous is not None:
                previous = previous.rename(columns=_inverse(columns))
            frame = keep_unchanged_times(frame, previous)
        _write_file(frame.rename(columns=columns or {}), path)
        return resolved
    _write_sql(frame, resolved, table, history, columns)
    return f"{redact(resolved)} (table {table})"
