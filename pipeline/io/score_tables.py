"""The score tables in a SQL database: their schema, keys and indexes, declared once.

`lead_scores` (the current scores) has a primary key on the lead and an index on `scored_at`,
so a CRM sync can read the rows changed since its last pass without scanning the table.
`lead_score_history` (every batch, append-only) has indexes on (lead, as_of), as_of and
batch_id, for backtests, `--changed-since last` and reading one batch. On PostgreSQL,
`reasons_json` is `jsonb`. Names reach SQL only as SQLAlchemy identifiers, quoted by the
dialect, never pasted into statement text.
"""

from __future__ import annotations

import hashlib

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

MAX_NAME = 63  # PostgreSQL's identifier length


def _column_type(values: pd.Series, name: str, dialect: str) -> sa.types.TypeEngine:
    """The SQL type `DataFrame.to_sql` would choose, except `jsonb` for the reasons' JSON."""
    if name == "reasons_json":
        return JSONB() if dialect == "postgresql" else sa.Text()
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return sa.DateTime(timezone=True)
    if pd.api.types.is_datetime64_dtype(values):
        return sa.DateTime()
    if pd.api.types.is_bool_dtype(values):
        return sa.Boolean()
    if pd.api.types.is_integer_dtype(values):
        return sa.BigInteger()
    if pd.api.types.is_float_dtype(values):
        return sa.Float(precision=53)
    return sa.Text()


def index_name(table: str, suffix: str) -> str:
    """`ix_<table>_<suffix>`, shortened with a hash of the table name when it would be too long."""
    name = f"ix_{table}_{suffix}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(table.encode()).hexdigest()[:8]
    return f"ix_{table[: MAX_NAME - len(suffix) - 13]}_{digest}_{suffix}"


def _columns(frame: pd.DataFrame, dialect: str, key: str | None) -> list[sa.Column]:
    columns = []
    for name in frame.columns:
        kind = _column_type(frame[name], str(name), dialect)
        if name == key and dialect == "sqlite" and isinstance(kind, sa.BigInteger):
            # SQLite's "INTEGER PRIMARY KEY" is the rowid itself (64-bit): no second index to
            # maintain, a third faster to write than BIGINT with a separate key index
            kind = sa.Integer()
        columns.append(
            sa.Column(
                str(name), kind, primary_key=name == key, nullable=name != key, autoincrement=False
            )
        )
    return columns


def current_table(
    frame: pd.DataFrame,
    name: str,
    dialect: str,
    lead: str = "lead_id",
    scored_at: str = "scored_at",
) -> sa.Table:
    """The current-scores table for `frame` (its columns as written, a CRM's names included):
    primary key on `lead`, index on `scored_at` (their written names)."""
    key = lead if lead in frame.columns else None
    table = sa.Table(name, sa.MetaData(), *_columns(frame, dialect, key))
    if scored_at in table.columns:
        sa.Index(index_name(name, "scored_at"), table.columns[scored_at])
    return table


def history_table(frame: pd.DataFrame, name: str, dialect: str) -> sa.Table:
    """The append-only history: indexes on (lead_id, as_of), as_of and batch_id."""
    table = sa.Table(name, sa.MetaData(), *_columns(frame, dialect, None))
    c = table.columns
    if {"lead_id", "as_of"} <= set(c.keys()):
        sa.Index(index_name(name, "lead_as_of"), c["lead_id"], c["as_of"])
        sa.Index(index_name(name, "as_of"), c["as_of"])
    if "batch_id" in c:
        sa.Index(index_name(name, "batch"), c["batch_id"])
    return table


def changes_table(frame: pd.DataFrame, name: str, dialect: str) -> sa.Table:
    """The append-only score changes: indexes on batch_id, (lead_id, as_of) and as_of."""
    return history_table(frame, name, dialect)


def add_missing_columns(conn: sa.Connection, table: sa.Table) -> None:
    """Add the columns of `table` that the stored table (made by an older leadscore) lacks;
    names quoted by the dialect."""
    stored = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    preparer = conn.dialect.identifier_preparer
    for column in table.columns:
        if column.name not in stored:
            # SQLAlchemy has no ADD COLUMN construct (Alembic does): the statement is assembled
            # from pieces the dialect rendered, the table name by its identifier preparer and
            # the column (quoted name and type) by CreateColumn; no name goes in unquoted
            ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {ddl}")


def matches(conn: sa.Connection, table: sa.Table) -> bool:
    """Whether the stored table has `table`'s columns (in order), primary key and JSON type."""
    inspector = sa.inspect(conn)
    stored = inspector.get_columns(table.name)
    if [c["name"] for c in stored] != [c.name for c in table.columns]:
        return False
    key = [c.name for c in table.primary_key.columns]
    if (inspector.get_pk_constraint(table.name).get("constrained_columns") or []) != key:
        return False
    kinds = {c["name"]: c["type"] for c in stored}
    return all(isinstance(kinds[c.name], JSONB) for c in table.columns if isinstance(c.type, JSONB))


def create_unindexed(conn: sa.Connection, table: sa.Table, checkfirst: bool = True) -> bool:
    """Create `table` (with `checkfirst`, only if it is missing) without its indexes
    (`ensure_indexes` adds them after the rows: an index built over a million rows at once is
    cheaper than one kept up to date row by row). Whether it was created."""
    if checkfirst and sa.inspect(conn).has_table(table.name):
        return False
    conn.execute(sa.schema.CreateTable(table))
    return True


def ensure_indexes(conn: sa.Connection, table: sa.Table) -> None:
    """Create `table`'s indexes that it lacks: all of them after `create_unindexed`, or those a
    table made by an older leadscore lacks."""
    for index in table.indexes:
        index.create(conn, checkfirst=True)


def reflect(conn: sa.Connection, name: str) -> sa.Table:
    """A stored table as SQLAlchemy sees it (for reading with quoted names)."""
    return sa.Table(name, sa.MetaData(), autoload_with=conn)
