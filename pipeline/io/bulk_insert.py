"""Appending a DataFrame's rows to a SQL table as fast as the database driver allows.

`DataFrame.to_sql` goes through SQLAlchemy's per-value type processing, about 37k rows/s into
SQLite for our score rows. Here the columns are converted once, as whole columns, and handed to
the driver's own bulk path: `executemany` for SQLite, `COPY ... FROM STDIN` for PostgreSQL
(psycopg), from CSV that Arrow writes. Other databases keep `to_sql`. The stored values
are the ones `to_sql` would store.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa

SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # what SQLAlchemy's SQLite DateTime type stores
ROWS_PER_CALL = 100_000  # rows converted and sent at a time: memory stays flat as rows grow


def insert_rows(frame: pd.DataFrame, conn: sa.Connection, table: sa.Table) -> None:
    """Append `frame` to `table` (which must exist, with these columns) inside `conn`'s
    transaction, `ROWS_PER_CALL` rows at a time (each row becomes Python objects on the way
    to the driver: millions at once cost gigabytes)."""
    for start in range(0, len(frame), ROWS_PER_CALL):
        _insert(frame.iloc[start : start + ROWS_PER_CALL], conn, table)


def _insert(frame: pd.DataFrame, conn: sa.Connection, table: sa.Table) -> None:
    dialect = conn.dialect.name
    if dialect == "sqlite":
        _insert_sqlite(frame, conn, table)
    elif dialect == "postgresql" and conn.dialect.driver == "psycopg":
        _copy_postgres(frame, conn, table)
    else:
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        conn.execute(table.insert(), records)


def _insert_sqlite(frame: pd.DataFrame, conn: sa.Connection, table: sa.Table) -> None:
    """One executemany of the statement SQLAlchemy compiles for `table` (names quoted by the
    dialect, values bound as `?` parameters)."""
    names = [str(c) for c in frame.columns]
    statement = str(table.insert().compile(dialect=conn.dialect, column_keys=names))
    order = [c.name for c in table.columns if c.name in names]  # the compiled column order
    columns = [_sqlite_values(frame[c]) for c in order]
    conn.connection.driver_connection.executemany(statement, zip(*columns, strict=True))


def driver_value(column: pd.Series, dialect: str) -> object:
    """The first value of `column` as the bulk path hands it to `dialect`'s driver (a
    constant column bound once as a parameter stores what inserting every row would)."""
    first = column.iloc[:1]
    if dialect == "sqlite":
        return _sqlite_values(first)[0]
    if _is_time(first):  # aware in UTC, or naive as COPY's text stores it (its clock time)
        moment = first.iloc[0]
        if pd.isna(moment):
            return None
        aware = isinstance(first.dtype, pd.DatetimeTZDtype)
        return (moment.tz_convert("UTC") if aware else moment).to_pydatetime()
    return _objects(first)[0]


def _sqlite_values(column: pd.Series) -> list[object]:
    """One column as Python values sqlite3 stores as `to_sql` would: UTC times as naive text,
    booleans as 0/1, missing as NULL."""
    if _is_time(column):
        return _formatted_times(column, SQLITE_TIME).tolist()
    if pd.api.types.is_bool_dtype(column):
        return column.astype("int64").tolist() if not column.hasnans else _objects(column)
    if pd.api.types.is_float_dtype(column) and column.hasnans:
        return _objects(column)
    if pd.api.types.is_numeric_dtype(column) and not isinstance(column.dtype, pd.ArrowDtype):
        return column.tolist()
    return _objects(column)


def _is_time(column: pd.Series) -> bool:
    return isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(column)


def _formatted_times(column: pd.Series, fmt: str) -> np.ndarray:
    """UTC times as text (None for NaT), formatting each distinct time once: a batch of scores
    has one `as_of` and one `scored_at`, and strftime row by row dominated the write."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_convert("UTC").dt.tz_localize(None)
    codes, moments = pd.factorize(column)
    text = np.array([*moments.strftime(fmt), None], dtype=object)
    return text[codes]  # code -1 (NaT) picks the trailing None


def _objects(column: pd.Series) -> list[object]:
    values = column.astype(object)
    return values.where(column.notna(), None).tolist()


def _copy_postgres(frame: pd.DataFrame, conn: sa.Connection, table: sa.Table) -> None:
    """COPY in CSV, written by Arrow's C++ CSV writer and parsed by PostgreSQL in C.

    Arrow writes a missing value as an empty unquoted field and an empty text as "", which is
    exactly how PostgreSQL's CSV format tells NULL from ''."""
    out = frame.copy()
    for c in out.columns:
        if _is_time(out[c]):
            out[c] = _formatted_times(out[c], "%Y-%m-%d %H:%M:%S.%f+00:00")
    buffer = io.BytesIO()
    arrow = pa.Table.from_pandas(out, preserve_index=False)
    pa_csv.write_csv(arrow, buffer, pa_csv.WriteOptions(include_header=False))
    from psycopg import sql

    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
        sql.Identifier(*([table.schema] if table.schema else []), table.name),
        sql.SQL(", ").join(sql.Identifier(str(c)) for c in frame.columns),
    )
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(statement) as copy:
        copy.write(buffer.getbuffer())
