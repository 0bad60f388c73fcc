"""A batch's history rows copied inside the database from the current table just written.

The history of a full batch repeats the current table's narrow columns, row for row, with the
batch's id (and the batch's scoring time where the current table kept an unchanged lead's older
one). Sending those rows through the driver again costs a second conversion of every value to
Python and back; `INSERT INTO history (...) SELECT ... FROM current` copies them inside the
database engine, about twice as fast into SQLite with the history's three indexes.

The copy is used only when it stores exactly what inserting the rows would: the same rows as
the current table, each history column either a current column with the same values, dtype and
kind of SQL type, or one value for every row (bound as a parameter). Anything else (an
incremental run's subset of rows, a column of another type) returns None, and the caller
inserts the rows as before. Names reach SQL only through SQLAlchemy's constructs.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from leadscore.pipeline.io.bulk_insert import driver_value


def copy_statement(
    conn: sa.Connection,
    rows: pd.DataFrame,
    log: sa.Table,
    written: pd.DataFrame,
    current: sa.Table,
    names: dict[str, str],
) -> sa.Insert | None:
    """The INSERT ... SELECT that appends `rows` to `log` by copying them from `current`, which
    holds exactly `written` (our column names; `names` maps them to the table's), or None when
    a copy would not store the same values. Both tables exist; their stored column types are
    compared (an older leadscore's, or a table made by hand, may differ from ours)."""
    if len(rows) != len(written) or not len(rows):
        return None
    rows = rows.reset_index(drop=True)
    written = written.reset_index(drop=True)
    if "lead_id" not in rows or "lead_id" not in written or not _same(rows, written, "lead_id"):
        return None
    inspector = sa.inspect(conn)
    stored = {c["name"]: c["type"] for c in inspector.get_columns(current.name)}
    logged = {c["name"]: c["type"] for c in inspector.get_columns(log.name)}
    picked: list[sa.ColumnElement] = []
    for name in rows.columns:
        source = names.get(str(name), str(name))
        if str(name) not in logged:
            return None
        if name in written.columns and source in stored and _same(rows, written, name):
            if _kind(stored[source]) != _kind(logged[str(name)]):
                return None
            picked.append(current.columns[source])
        elif _constant(rows[name]):
            value = driver_value(rows[name], conn.dialect.name)
            picked.append(sa.literal(value).label(str(name)))
        else:
            return None
    return log.insert().from_select([str(c) for c in rows.columns], sa.select(*picked))


def _same(rows: pd.DataFrame, written: pd.DataFrame, name: object) -> bool:
    a, b = rows[name], written[name]
    return a.dtype == b.dtype and a.equals(b)


def _constant(values: pd.Series) -> bool:
    first = values.iloc[:1]
    return bool((values == first.iloc[0]).all()) if first.notna().all() else values.isna().all()


def _kind(kind: sa.types.TypeEngine) -> tuple[type, object]:
    """What decides how a stored value is kept: the type's family (and a time's zone)."""
    return kind._type_affinity, getattr(kind, "timezone", None)  # type: ignore[return-value]
