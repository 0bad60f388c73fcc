"""Writing scores where marketing reads them: a SQL table, a Parquet or a CSV file, atomically.

A SQL target is written in one transaction: the current table replaced and the batch appended
to the history, or neither. A file target keeps its history in a second file beside it, and the
two are replaced as one (`pipeline.file_commit`): after a crash at any instant, the next reader
or writer finds both old or both new. Two jobs writing one target take turns: a lock file beside
a file target, SQLite's write lock (waited for with a busy timeout), or a PostgreSQL advisory
lock on the table; past `lock_timeout_s` the job stops with JobBusy and writes nothing.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from leadscore.models.score_changes import COMPARED, Changes, find_changes
from leadscore.pipeline.errors import InputError, JobBusy, JobFailure
from leadscore.pipeline.io import file_commit, score_tables
from leadscore.pipeline.io.allocator import release_freed_memory
from leadscore.pipeline.io.bulk_insert import ROWS_PER_CALL, insert_rows
from leadscore.pipeline.io.history_copy import copy_statement
from leadscore.pipeline.io.staging import StagedColumns
from leadscore.pipeline.redaction import MissingVariable, expand_env, redact

FILE_SUFFIXES = (".parquet", ".csv")
DEFAULT_LOCK_TIMEOUT_S = 600.0
UNCHANGED_IF_SAME = ("lead_id", "probability", "model_version", "as_of")
# SQLSTATEs (PostgreSQL) that say what is wrong in words a person can act on
INSUFFICIENT_PRIVILEGE = "42501"
LOCK_NOT_AVAILABLE = "55P03"
WRITE_CACHE_KIB = -65536  # SQLite's page cache for a write: 64 MiB (negative: KiB, not pages)


@dataclass(frozen=True)
class ChangeLog:
    """Where a batch's score changes go (a table, or a file beside a file target) and the
    batch they are stamped with."""

    table: str
    batch_id: str
    as_of: pd.Timestamp
    scored_at: pd.Timestamp
    # what the write recorded, by kind of change (filled in by `found`)
    counts: dict[str, int] = field(default_factory=dict, compare=False)

    def found(self, previous: pd.DataFrame | None, batch: pd.DataFrame) -> Changes:
        """The changes from `previous` to `batch` (their rows built as they are written)."""
        found = find_changes(previous, batch, self.batch_id, self.as_of, self.scored_at)
        self.counts.clear()
        self.counts.update(found.counts())
        return found

    def rows(self, previous: pd.DataFrame | None, batch: pd.DataFrame) -> pd.DataFrame:
        """The change rows from `previous` to `batch`, all at once."""
        return self.found(previous, batch).frame()


def resolve_target(target: str) -> str:
    """A SQLAlchemy URL or a file path (`${ENV}` expanded); a bare path that is not
    .parquet/.csv is a SQLite file."""
    try:
        target = expand_env(target)
    except MissingVariable as exc:
        raise InputError(
            f"the scores target {target!r} needs ${{{exc.args[0]}}}, which is not set"
        ) from None
    if "://" in target or target.endswith(FILE_SUFFIXES):
        return target
    return f"sqlite:///{Path(target).resolve()}"


def _is_file(resolved: str) -> bool:
    """A resolved target that is a Parquet or CSV file rather than a database."""
    return resolved.endswith(FILE_SUFFIXES) and "://" not in resolved


def history_path(path: Path, history_table: str) -> Path:
    """Where a file target keeps its history: `scores.parquet` -> `scores.<history>.parquet`."""
    return path.with_name(f"{path.stem}.{history_table}{path.suffix}")


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


def _inverse(columns: dict[str, str] | None) -> dict[str, str]:
    return {v: k for k, v in (columns or {}).items()}


# -- file targets ------------------------------------------------------------------------------


def _os_error(exc: OSError, path: Path, doing: str) -> Exception:
    """A file system error in words: permissions are the input's problem, a full disk not."""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return InputError(
            f"cannot {doing} {path}: {exc.strerror} (the file or its folder is read-only); "
            "choose another --output or make it writable. Nothing was changed"
        )
    return JobFailure(f"cannot {doing} {path}: {exc.strerror or exc}. Nothing was changed")


def _read_file(path: Path, what: str) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (ValueError, OSError, pa.ArrowException, pd.errors.ParserError) as exc:
        raise InputError(
            f"{path}: the {what} cannot be read ({type(exc).__name__}: {exc}). Move it away or "
            "restore it from a backup; nothing was changed"
        ) from None


def _write_frame(frame: pd.DataFrame, path: Path, suffix: str) -> None:
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


@contextmanager
def _file_lock(paths: Sequence[Path], timeout_s: float, doing: str) -> Iterator[None]:
    """The target's lock, with recovery of an interrupted write; file system errors in words."""
    try:
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        with file_commit.locked(paths, timeout_s, f"the scores file {paths[0]}"):
            yield
    except OSError as exc:
        raise _os_error(exc, paths[0], doing) from None


def _write_files(
    frame: pd.DataFrame,
    path: Path,
    history: tuple[pd.DataFrame, str] | None,
    columns: dict[str, str] | None,
    timeout_s: float,
    changes: ChangeLog | None = None,
    staged: StagedColumns | None = None,
) -> None:
    if staged is not None:  # a file is written whole: the staged reasons join it in memory
        frame = staged.whole(frame)
    paths = [path] if history is None else [path, history_path(path, history[1])]
    if history is not None and changes is not None:
        paths.append(history_path(path, changes.table))
    with _file_lock(paths, timeout_s, "write"):
        outputs = [frame]
        if history is not None:
            rows = history[0]
            earlier = _read_file(paths[1], "score history")
            previous = _read_file(path, "current scores file")
            if previous is not None:
                previous = previous.rename(columns=_inverse(columns))
            outputs = [
                keep_unchanged_times(frame, previous),
                _appended(earlier, rows),
            ]
            if changes is not None:
                logged = _read_file(paths[2], "score changes")
                outputs.append(_appended(logged, changes.rows(previous, frame)))
        outputs[0] = outputs[0].rename(columns=columns or {})
        with file_commit.replaced_together(paths) as temps:
            for out, tmp in zip(outputs, temps, strict=True):
                _write_frame(out, tmp, path.suffix)


def _appended(earlier: pd.DataFrame | None, rows: pd.DataFrame) -> pd.DataFrame:
    if earlier is None or earlier.empty:
        return rows
    return rows if rows.empty else pd.concat([earlier, rows], ignore_index=True)


def _read_files(
    paths: Sequence[Path],
    names: Sequence[str | None] = ("current scores file", "score history"),
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> list[pd.DataFrame | None]:
    """The files as the last complete write left them (an interrupted one is finished or
    undone first); read as they are when the folder cannot be written to. The first path is
    the target's (its lock and journal, waited for up to `lock_timeout_s`); a name None skips
    reading that file."""

    def read() -> list[pd.DataFrame | None]:
        return [None if n is None else _read_file(p, n) for p, n in zip(paths, names, strict=True)]

    try:
        with file_commit.locked(paths, lock_timeout_s, f"the scores file {paths[0]}"):
            return read()
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        return read()


# -- SQL targets -------------------------------------------------------------------------------


def _engine(url: str, timeout_s: float, write: bool) -> sa.engine.Engine:
    """An engine whose `begin()` is a real transaction, DDL included.

    Python's sqlite3 commits a DROP or CREATE TABLE of its own accord; SQLAlchemy's documented
    remedy is to turn that off and emit BEGIN ourselves, so a replaced table rolls back too.
    A writer's BEGIN IMMEDIATE takes SQLite's write lock at the start, waiting up to the busy
    timeout, so two writers take turns instead of one failing halfway."""
    try:
        backend = sa.engine.make_url(url).get_backend_name()
        args = {"timeout": timeout_s} if backend == "sqlite" else {}
        engine = sa.create_engine(url, connect_args=args)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError, ValueError) as exc:
        raise InputError(f"cannot use {redact(url)} as a target: {exc}") from None
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection: object, record: object) -> None:
            dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
            if write:  # indexes on a million new rows thrash SQLite's default 2 MB page cache
                dbapi_connection.execute(f"PRAGMA cache_size = {WRITE_CACHE_KIB}")  # type: ignore[attr-defined]

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _sqlite_file(url: str) -> str:
    database = sa.engine.make_url(url).database
    return database or url


def _database_error(exc: Exception, url: str, table: str, timeout_s: float) -> Exception | None:
    """A database error in words a person can act on, or None for one we cannot explain."""
    orig = getattr(exc, "orig", None) or exc
    state = getattr(orig, "sqlstate", None)
    text = str(orig)
    where = redact(url)
    if state == INSUFFICIENT_PRIVILEGE:
        privilege, on = getattr(exc, "leadscore_needs", ("SELECT, INSERT and DELETE", table))
        return InputError(
            f"{where}: the database role may not use table {on!r}: {text.strip()}. Grant it "
            f"{privilege} on {on}; nothing was written, the previous scores are intact"
        )
    if state == LOCK_NOT_AVAILABLE or "database is locked" in text or "table is locked" in text:
        return JobBusy(
            f"{where}: table {table!r} is held by another job (waited {timeout_s:.0f} s for it); "
            "another leadscore run or a reader holding a lock. Nothing was written: retry later"
        )
    if "readonly database" in text or "unable to open database file" in text:
        return InputError(
            f"cannot write {_sqlite_file(url)}: {text} (the file or its folder is read-only); "
            "choose another --output or make it writable. Nothing was changed"
        )
    if "file is not a database" in text:
        return InputError(f"{_sqlite_file(url)}: not a SQLite database ({text})")
    return None


@contextmanager
def _database(
    url: str, table: str, timeout_s: float = DEFAULT_LOCK_TIMEOUT_S, write: bool = False
) -> Iterator[sa.engine.Engine]:
    """An engine for `url`; database errors we can explain become InputError or JobBusy."""
    engine = _engine(url, timeout_s, write)
    try:
        yield engine
    except Exception as exc:
        # SQLAlchemy's wrapped errors, or the driver's own from a bulk path (COPY, executemany)
        if not isinstance(exc, sa.exc.DBAPIError) and not _is_driver_error(exc):
            raise
        explained = _database_error(exc, url, table, timeout_s)
        if explained is not None:
            raise explained from None
        if isinstance(exc, sa.exc.OperationalError) and not _connects(engine):
            raise InputError(f"cannot connect to {redact(url)}: {exc.orig}") from None
        raise
    finally:
        engine.dispose()


def _is_driver_error(exc: Exception) -> bool:
    import sqlite3

    if isinstance(exc, sqlite3.Error):
        return True
    try:
        import psycopg
    except ImportError:
        return False
    return isinstance(exc, psycopg.Error)


def _connects(engine: sa.engine.Engine) -> bool:
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False


def _take_turns(conn: sa.Connection, table: str, timeout_s: float) -> None:
    """Serialise writers of `table` on PostgreSQL: an advisory lock held to the end of the
    transaction (SQLite's BEGIN IMMEDIATE already did it), waited for up to `timeout_s`."""
    if conn.dialect.name != "postgresql":
        return
    conn.execute(
        sa.text("SELECT set_config('lock_timeout', :ms, true)"), {"ms": f"{timeout_s * 1000:.0f}"}
    )
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": table})


def _stored_times(
    conn: sa.Connection, table: str, frame: pd.DataFrame, columns: dict[str, str] | None
) -> pd.DataFrame:
    """`keep_unchanged_times` against the stored table, reading only what it compares, and
    nothing at all when no stored row has this batch's as-of and model version (the nightly
    case: a new as-of every run)."""
    name = {c: (columns or {}).get(c, c) for c in (*UNCHANGED_IF_SAME, "scored_at")}
    stored = score_tables.reflect(conn, table)
    if not set(name.values()) <= set(stored.columns.keys()):
        return frame
    c = stored.columns
    pairs_stored = conn.execute(
        sa.select(c[name["as_of"]], c[name["model_version"]]).distinct()
    ).all()
    batch = frame[["as_of", "model_version"]].drop_duplicates()

    def pairs(moments: pd.Series, versions: pd.Series) -> set[tuple[pd.Timestamp, str]]:
        return set(zip(pd.to_datetime(moments, utc=True), versions.astype(str), strict=True))

    stored_pairs = pd.DataFrame(pairs_stored, columns=["as_of", "version"])
    if not pairs(stored_pairs["as_of"], stored_pairs["version"]) & pairs(
        batch["as_of"], batch["model_version"]
    ):
        return frame
    old = pd.read_sql_query(sa.select(*(c[n] for n in name.values())), conn)
    return keep_unchanged_times(frame, old.rename(columns=_inverse(columns)))


@contextmanager
def _needs(privilege: str, on: str) -> Iterator[None]:
    """Mark a database error raised inside with the privilege the step needs, and on what."""
    try:
        yield
    except Exception as exc:
        exc.leadscore_needs = (privilege, on)  # type: ignore[attr-defined]
        raise


def _write_sql(
    frame: pd.DataFrame,
    url: str,
    table: str,
    history: tuple[pd.DataFrame, str] | None,
    columns: dict[str, str] | None,
    timeout_s: float,
    changes: ChangeLog | None = None,
    staged: StagedColumns | None = None,
) -> None:
    with _database(url, table, timeout_s, write=True) as engine, engine.begin() as conn:
        _take_turns(conn, table, timeout_s)
        dialect = conn.dialect.name
        exists = sa.inspect(conn).has_table(table)
        if history is not None and changes is not None:
            with _needs("SELECT", table):
                previous = _stored_compared(conn, table, columns) if exists else None
            found = changes.found(previous, frame)
            if len(found):  # first, in the same transaction, a slice of rows at a time (a
                # first batch of millions of leads has a change row each): then freed
                parts = found.parts(ROWS_PER_CALL)
                first = next(parts)
                log = score_tables.changes_table(first, changes.table, dialect)
                _append_sql(conn, log, first, more=parts)
                del first, parts
            del found
            release_freed_memory()
        if exists and history is not None and "scored_at" in frame.columns:
            with _needs("SELECT", table):
                frame = _stored_times(conn, table, frame, columns)
        rename = columns or {}
        shape = frame if staged is None else staged.shape(frame)
        current = score_tables.current_table(
            shape.rename(columns=rename),
            table,
            dialect,
            lead=rename.get("lead_id", "lead_id"),
            scored_at=rename.get("scored_at", "scored_at"),
        )
        created = not (exists and score_tables.matches(conn, current))
        if not created:
            with _needs("DELETE", table):
                conn.execute(sa.delete(current))
        else:
            with _needs("ownership (to replace it) and CREATE on its schema", table):
                if exists:
                    current.drop(conn)
                score_tables.create_unindexed(conn, current, checkfirst=False)
        with _needs("INSERT", table):
            # staged reasons are joined to their rows a chunk at a time, inside the transaction
            for part in [frame] if staged is None else staged.joined(frame):
                insert_rows(part.rename(columns=rename), conn, current)
        if created:
            with _needs("CREATE on its schema", table):
                score_tables.ensure_indexes(conn, current)
        if history is not None:
            rows, name = history
            log = score_tables.history_table(rows, name, dialect)
            _append_sql(conn, log, rows, (frame, current, rename))


def _append_sql(
    conn: sa.Connection,
    log: sa.Table,
    rows: pd.DataFrame,
    copied_from: tuple[pd.DataFrame, sa.Table, dict[str, str]] | None = None,
    more: Iterable[pd.DataFrame] = (),
) -> None:
    """Append to an append-only table, made (or brought up to date) first and indexed after the
    rows (a first batch's rows are indexed at once, not one by one). With `copied_from`
    (the rows just written to a table, that table and its column names), the rows are copied
    from it inside the database where that stores the same values (`history_copy`). `more`:
    rows to append after `rows` (which gave the table's columns), as they come."""
    with _needs("CREATE on its schema (or an existing table)", log.name):
        created = score_tables.create_unindexed(conn, log)
        score_tables.add_missing_columns(conn, log)
        if not created:  # an older leadscore's table: its missing indexes before the rows
            score_tables.ensure_indexes(conn, log)
    with _needs("INSERT", log.name):
        copy = None if copied_from is None else copy_statement(conn, rows, log, *copied_from)
        if copy is not None:
            conn.execute(copy)
        else:
            insert_rows(rows, conn, log)
        for part in more:
            insert_rows(part, conn, log)
    if created:  # after the rows: each index built at once, not kept up to date row by row
        with _needs("CREATE on its schema", log.name):
            score_tables.ensure_indexes(conn, log)


def _stored_compared(
    conn: sa.Connection, table: str, columns: dict[str, str] | None
) -> pd.DataFrame | None:
    """The stored current table's columns a score change compares (our names), or None when
    it has none of them."""
    name = {c: (columns or {}).get(c, c) for c in COMPARED}
    stored = score_tables.reflect(conn, table)
    present = [n for n in name.values() if n in stored.columns]
    if name["lead_id"] not in present:
        return None
    old = pd.read_sql_query(sa.select(*(stored.columns[n] for n in present)), conn)
    return old.rename(columns=_inverse(columns))


# -- the targets, whatever their kind ------------------------------------------------------------


def write_table(
    frame: pd.DataFrame,
    target: str,
    table: str,
    history: tuple[pd.DataFrame, str] | None = None,
    columns: dict[str, str] | None = None,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    changes: ChangeLog | None = None,
    staged: StagedColumns | None = None,
) -> str:
    """Replace `table` at `target` with `frame` in one atomic step; return where it went.

    With `history` (rows, table name), the rows are appended to that append-only table in the
    same step, and leads whose scores did not change keep their `scored_at`. With `changes` (a
    table and the batch's stamp) too, the leads whose MQL flag or grade differ from the table
    being replaced are appended to that table, in the same step. File targets keep the history
    and the changes in files beside the current one. `columns` renames the current table's
    columns (a CRM's import names); the history and the changes keep ours. With `staged`,
    `frame` lacks the wide columns (the reasons), which are read from the staging file and
    joined to their rows as they are written."""
    resolved = resolve_target(target)
    if _is_file(resolved):
        _write_files(frame, Path(resolved), history, columns, lock_timeout_s, changes, staged)
        return redact(target)
    _write_sql(frame, resolved, table, history, columns, lock_timeout_s, changes, staged)
    return f"{redact(target)} (table {table})"


def read_current(
    target: str,
    table: str,
    history_table: str,
    columns: dict[str, str] | None = None,
    only: Sequence[str] | None = None,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> tuple[pd.DataFrame | None, pd.Timestamp | None]:
    """The current scores at `target` (our column names; of those, only the `only` ones the
    table has, when given: a table of millions of leads is mostly reasons) and the newest
    `as_of` in its history, each None when there is none yet."""
    resolved = resolve_target(target)
    if _is_file(resolved):
        path = Path(resolved)
        current, history = _read_files(
            [path, history_path(path, history_table)], lock_timeout_s=lock_timeout_s
        )
    else:
        with _database(resolved, table) as engine, engine.connect() as conn:
            inspector = sa.inspect(conn)
            current = None
            if inspector.has_table(table):
                stored = score_tables.reflect(conn, table)
                wanted = [(columns or {}).get(c, c) for c in only] if only else None
                picked = [c for c in stored.columns if wanted is None or c.name in wanted]
                current = pd.read_sql_query(sa.select(*picked), conn) if picked else None
            history = None
            if inspector.has_table(history_table):
                stored = score_tables.reflect(conn, history_table)
                newest = sa.select(sa.func.max(stored.c["as_of"]).label("as_of"))
                history = pd.read_sql_query(newest, conn)
    if current is not None:
        current = current.rename(columns=_inverse(columns))
        if only:
            current = current[[c for c in current.columns if c in only]]
    last = None
    if history is not None and len(history) and history["as_of"].notna().any():
        last = pd.to_datetime(history["as_of"], utc=True).max()
    return current, last


def read_history(
    target: str,
    history_table: str,
    columns: dict[str, str] | None = None,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> pd.DataFrame | None:
    """Every batch in the history table at `target` (our column names), or None without one."""
    resolved = resolve_target(target)
    if _is_file(resolved):
        path = Path(resolved)
        history = _read_files(
            [path, history_path(path, history_table)], lock_timeout_s=lock_timeout_s
        )[1]
    else:
        with _database(resolved, history_table) as engine, engine.connect() as conn:
            history = (
                pd.read_sql_table(history_table, conn)
                if sa.inspect(conn).has_table(history_table)
                else None
            )
    return None if history is None else history.rename(columns=_inverse(columns))


def read_changes(
    target: str,
    changes_table: str,
    since: pd.Timestamp | None = None,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> pd.DataFrame | None:
    """The score changes at `target` (as of `since` or later, when given), or None without
    any."""
    resolved = resolve_target(target)
    if _is_file(resolved):
        path = Path(resolved)
        changes = _read_files(
            [path, history_path(path, changes_table)], [None, "score changes"], lock_timeout_s
        )[1]
    else:
        with _database(resolved, changes_table) as engine, engine.connect() as conn:
            if not sa.inspect(conn).has_table(changes_table):
                return None
            stored = score_tables.reflect(conn, changes_table)
            query = sa.select(stored)
            if since is not None:
                query = query.where(stored.c["as_of"] >= since.tz_convert("UTC").to_pydatetime())
            result = conn.execute(query)  # a refused SELECT stays SQLAlchemy's error, explained
            changes = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    if changes is None:
        return None
    if since is not None and len(changes):
        changes = changes[pd.to_datetime(changes["as_of"], utc=True) >= since]
    return changes
