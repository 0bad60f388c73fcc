"""Reading a source's raw rows: a CSV or Parquet file under --data, or a table or query in a SQL
database, whole or a batch at a time. Read errors become input errors naming the source."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from leadscore.features.tables import (
    TABLE_NAMES,
)
from leadscore.pipeline.config import (
    SourceConfig,
)
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.redaction import MissingVariable, expand_env, redact

SUFFIXES = (".parquet", ".csv")


def table_file(data_dir: Path, name: str) -> Path:
    """The file that holds a canonical table: `<name>.parquet`, else `<name>.csv`."""
    for suffix in SUFFIXES:
        path = data_dir / f"{name}{suffix}"
        if path.is_file():
            return path
    raise InputError(
        f"{data_dir}: no {name}.parquet or {name}.csv (a folder of canonical tables is expected: "
        f"{', '.join(TABLE_NAMES)}; `leadscore demo-data --out {data_dir}` writes one; other "
        "layouts are mapped in the config's data section)"
    )


def describe_source(spec: SourceConfig, data_dir: Path) -> str:
    """How a source is named in messages: its file, or its table or query at a redacted URL."""
    if spec.path is not None:
        return str(data_dir / spec.path)
    where = f"table {spec.table}" if spec.table else "query"
    return f"{where} at {redact(spec.url or '')}"  # the unexpanded URL: no secret from the env


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")


def _file_kind(path: Path, spec: SourceConfig) -> str:
    return spec.format or ("parquet" if path.suffix == ".parquet" else "csv")


def _csv_options(spec: SourceConfig) -> dict[str, object]:
    options = spec.csv
    return {
        "sep": options.delimiter,
        "encoding": options.encoding,
        "quotechar": options.quotechar,
        "na_values": list(options.null_values),
        "keep_default_na": False,
        "low_memory": False,
    }


READ_ERRORS = (ValueError, OSError, pa.ArrowException, pd.errors.ParserError, UnicodeDecodeError)


def _read_file(path: Path, spec: SourceConfig) -> pd.DataFrame:
    _check_file(path)
    kind = _file_kind(path, spec)
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, **_csv_options(spec))
    except READ_ERRORS as exc:
        raise InputError(f"{path}: cannot be read as {kind}: {exc}") from None


def _iter_file(path: Path, spec: SourceConfig, rows: int) -> Iterator[pd.DataFrame]:
    _check_file(path)
    kind = _file_kind(path, spec)
    try:
        if kind == "parquet":
            # pre_buffer off: on, the reader keeps every range it has read until it is closed,
            # so streaming a 0.8 GB file held about as much again by its end
            for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=rows):
                yield batch.to_pandas()
            return
        with pd.read_csv(path, chunksize=rows, **_csv_options(spec)) as reader:
            yield from reader
    except READ_ERRORS as exc:
        raise InputError(f"{path}: cannot be read as {kind}: {exc}") from None


@contextmanager
def _sql_connection(spec: SourceConfig) -> Iterator[sa.Connection]:
    """A connection to a SQL source; the driver's errors become input errors naming it."""
    where = describe_source(spec, Path())
    try:
        engine = sa.create_engine(expand_env(spec.url or ""))
    except MissingVariable as exc:
        raise InputError(f"{where}: the URL needs ${{{exc.args[0]}}}, which is not set") from None
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise InputError(f"{where}: cannot use this URL: {exc}") from None
    try:
        with engine.connect() as conn:
            if spec.table is not None and not sa.inspect(conn).has_table(spec.table):
                raise InputError(f"{where}: no such table")
            yield conn
    except sa.exc.OperationalError as exc:
        raise InputError(f"{where}: cannot read: {exc.orig}") from None
    except sa.exc.ProgrammingError as exc:
        raise InputError(f"{where}: the query failed: {exc.orig}") from None
    except pd.errors.DatabaseError as exc:  # pandas wraps the driver's error for queries
        raise InputError(f"{where}: the query failed: {exc}") from None
    finally:
        engine.dispose()


def _read_sql(spec: SourceConfig) -> pd.DataFrame:
    with _sql_connection(spec) as conn:
        if spec.table is not None:
            return pd.read_sql_table(spec.table, conn)
        return pd.read_sql_query(sa.text(spec.query or ""), conn)


def _iter_sql(spec: SourceConfig, rows: int) -> Iterator[pd.DataFrame]:
    with _sql_connection(spec) as plain:
        conn = plain.execution_options(stream_results=True)  # a server-side cursor
        if spec.table is not None:
            yield from pd.read_sql_table(spec.table, conn, chunksize=rows)
        else:
            yield from pd.read_sql_query(sa.text(spec.query or ""), conn, chunksize=rows)


def read_source(spec: SourceConfig, data_dir: Path) -> pd.DataFrame:
    """The raw rows of a source, before any mapping."""
    if spec.path is not None:
        return _read_file(data_dir / spec.path, spec)
    return _read_sql(spec)


def iter_source(spec: SourceConfig, data_dir: Path, rows: int) -> Iterator[pd.DataFrame]:
    """The raw rows of a source, before any mapping, about `rows` at a time: a Parquet file by
    record batches, a CSV file by chunks, a SQL source through a server-side cursor. Nothing
    holds the whole source at once."""
    if spec.path is not None:
        return _iter_file(data_dir / spec.path, spec, rows)
    return _iter_sql(spec, rows)
