"""Names from configs never reach SQL unquoted: hostile table and column names are refused at
config load, and even when handed to the writer directly they only ever name a table."""

from __future__ import annotations

import re
import sqlite3
import uuid

import pandas as pd
import pytest
import sqlalchemy as sa

from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io.registry import versions_of
from leadscore.pipeline.io.writeback import read_current, read_history, write_table

# Each would end leadscore's statement and run one of its own: drop the victim, or leave a mark.
HOSTILE_TABLES = [
    'inj"; DROP TABLE IF EXISTS victim; --',
    "inj'); CREATE TABLE marker_{m} (a int); --",
    'inj" (x int); CREATE TABLE marker_{m} (a int); --',
]
HOSTILE_COLUMN = 'Lead"Score; DROP TABLE IF EXISTS victim; --'


def _scores(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": range(n),
            "probability": [0.2] * n,
            "score": [20] * n,
            "reasons_json": ['[{"feature": "source", "value": "web", "impact": 0.1}]'] * n,
            "model_version": "1",
            "as_of": pd.Timestamp("2026-11-01", tz="UTC"),
            "scored_at": pd.Timestamp("2026-11-02", tz="UTC"),
        }
    )


def _history(scores: pd.DataFrame) -> pd.DataFrame:
    return scores[["lead_id", "probability", "model_version", "as_of", "scored_at"]].assign(
        batch_id="b1"
    )


def _write_hostile(target: str, marker: str) -> list[str]:
    written = []
    for template in HOSTILE_TABLES:
        table = template.format(m=marker)
        history = f"{table}_history"
        scores = _scores()
        write_table(
            scores, target, table, (_history(scores), history), columns={"score": HOSTILE_COLUMN}
        )
        current, last = read_current(target, table, history, columns={"score": HOSTILE_COLUMN})
        assert len(current) == 5 and last == pd.Timestamp("2026-11-01", tz="UTC")
        assert len(read_history(target, history)) == 5
        written += [table, history]
    return written


def test_hostile_names_only_name_tables_in_sqlite(tmp_path):
    db = tmp_path / "scores.db"
    marker = uuid.uuid4().hex[:8]
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE victim (a int)")
    statements: list[str] = []
    original = sqlite3.dbapi2.connect  # what SQLAlchemy's pysqlite dialect calls

    def traced(*args, **kwargs):  # every statement the writer sends, however it sends it
        conn = original(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    sqlite3.dbapi2.connect = traced
    try:
        tables = _write_hostile(str(db), marker)
    finally:
        sqlite3.dbapi2.connect = original
    with sqlite3.connect(db) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        columns = [
            r[0] for r in conn.execute("SELECT name FROM pragma_table_info(?)", (tables[0],))
        ]
    assert "victim" in names
    assert not any(n.startswith("marker_") for n in names)
    assert set(tables) <= names  # each hostile string became exactly one table's name
    assert HOSTILE_COLUMN in columns
    # Outside quoted identifiers and string literals, no statement holds a second statement
    # or a DROP: the hostile text only ever appeared inside quotes.
    verbs = ("BEGIN", "COMMIT", "ROLLBACK", "SELECT", "PRAGMA", "CREATE", "INSERT", "DELETE")
    assert any(HOSTILE_TABLES[0].replace('"', '""') in s for s in statements)
    for statement in statements:
        bare = re.sub(r"'(?:[^']|'')*'", "''", re.sub(r'"(?:[^"]|"")*"', '""', statement))
        assert bare.lstrip().upper().startswith(verbs), statement
        assert ";" not in bare.rstrip("; \n") and "DROP" not in bare.upper(), statement


@pytest.mark.postgres
def test_hostile_names_only_name_tables_in_postgres(postgres_url):
    marker = uuid.uuid4().hex[:8]
    victim = f"victim_{marker}"
    # a schema of its own: other tests create tables in the shared database meanwhile
    schema = f"inj_{marker}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = (
        sa.engine.make_url(postgres_url)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE TABLE "{victim}" (a int)'))
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS victim (a int)"))
        before = set(sa.inspect(conn).get_table_names())
    tables: list[str] = []
    try:
        tables = _write_hostile(url, marker)
        with engine.connect() as conn:
            after = set(sa.inspect(conn).get_table_names())
            kind = conn.execute(
                sa.text(
                    "SELECT data_type FROM information_schema.columns WHERE table_schema = :s "
                    "AND table_name = :t AND column_name = 'reasons_json'"
                ),
                {"s": schema, "t": tables[0]},
            ).scalar()
        assert victim in after and "victim" in after
        assert after - before == set(tables)  # nothing else was created, nothing dropped
        assert kind == "jsonb"
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.e2e
@pytest.mark.parametrize(
    "assignment",
    [
        'scoring.table=inj"; DROP TABLE victim; --',
        "scoring.history_table=h'); DROP TABLE victim; --",
        'scoring.columns={score: "x\\"; DROP TABLE victim; --"}',
        "mlflow.registered_model=m' OR name LIKE '%",
        "mlflow.experiment=e'; --",
    ],
)
def test_hostile_names_are_refused_at_config_load_with_exit_2(run_cli, assignment):
    result = run_cli("score", "--set", assignment, check=False)
    assert result.returncode == 2, result.stderr
    key = assignment.split("=")[0]
    assert key in result.stderr and "expected to match" in result.stderr


def test_registry_filters_refuse_quotes():
    with pytest.raises(InputError, match="may not hold"):  # the config refuses it at load too
        versions_of("lead-scoring' OR name LIKE '%")
