"""A batch's history rows copied inside the database from the current table just written.

The history of a full batch repeats the current table's narrow columns, row for row, with the
batch's id (and the batch's scoring time where the current table kept an unchanged lead's older
one). Sending those rows through the driver again costs a second conversion of every value to
Python and back; `INSERT INTO history (...) SELECT ... FROM current` copies them inside the
database engine, about twice as fast into SQLite with the history's three indexes.

The copy is used only when it stores exactly what inserting the rows would: the same rows as
the current table, each history column either a current column with the same values, dtype and
kind of SQL type, or one value for every row (bound as a parameter as its column stores it),
and the batch in lead order (the copy is read in that order). Anything else (an incremental
run's subset of rows, a column of another type, some values missing, an unsorted batch) returns
None, and the caller inserts the rows as before. Names reach SQL only through SQLAlchemy's
constructs.
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
    lead = current.columns.get(names.get("lead_id", "lead_id"))
    if lead is None or not written["lead_id"].is_monotonic_increasing:
        return None  # the copy is read in lead order: the batch's own order only when sorted
    dialect = conn.dialect.name
    inspector = sa.inspect(conn)
    stored = {c["name"]: c["type"] for c in inspector.get_columns(current.name)}
    logged = {c["name"]: c["type"] for c in inspector.get_columns(log.name)}
    picked: list[sa.ColumnElement] = []
    for name in rows.columns:
        source = names.get(str(name), str(name))
        if str(name) not in logged:
            return None
        if name in written.columns and source in stored and _same(rows, written, name):
            if _kind(stored[source], dialect) != _kind(logged[str(name)], dialect):
                return None
            picked.append(current.columns[source])
        elif _constant(rows[name]):
            if _kind(log.columns[str(name)].type, dialect) != _kind(logged[str(name)], dialect):
                return None  # a stored column of another kind (a naive time, say)
            value = driver_value(rows[name], dialect)
            picked.append(sa.literal(value).label(str(name)))
        else:
            return None
    # text ids in code point order, as Python sorted them (PostgreSQL's "C" collation)
    order = sa.collate(lead, "C") if _text(lead, dialect) else lead
    query = sa.select(*picked).order_by(order)
    return log.insert().from_select([str(c) for c in rows.columns], query)


def _same(rows: pd.DataFrame, written: pd.DataFrame, name: object) -> bool:
    a, b = rows[name], written[name]
    return a.dtype == b.dtype and a.equals(b)


def _constant(values: pd.Series) -> bool:
    """One value in every row: all missing, or none missing and all equal (objects of one
    type: 1, 1.0 and True compare equal but are stored differently)."""
    missing = values.isna()
    if missing.any():
        return bool(missing.all())
    if values.dtype == object and len(set(map(type, values))) != 1:
        return False
    return bool((values == values.iloc[0]).all())


def _kind(kind: sa.types.TypeEngine, dialect: str) -> tuple[type, object]:
    """What decides how a stored value is kept: the type's family, and on PostgreSQL a time's
    zone (SQLite keeps times as text, whatever the declared type says)."""
    zone = getattr(kind, "timezone", None) if dialect != "sqlite" else None
    return kind._type_affinity, zone  # type: ignore[return-value]


def _text(column: sa.Column, dialect: str) -> bool:
    return dialect == "postgresql" and isinstance(column.type, sa.String)
