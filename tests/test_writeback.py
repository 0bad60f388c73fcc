"""Scores are replaced atomically: readers see the old set or the new one, never a mix."""

import sqlite3
import uuid

import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa

from leadscore.pipeline.io.writeback import redact, resolve_target, write_table


def _scores(n: int, version: str = "1") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": range(n),
            "probability": [0.1] * n,
            "score": [10] * n,
            "grade": ["C"] * n,
            "reasons": ["Viewed the pricing page 2 times in the last 7 days"] * n,
            "model_version": version,
            "as_of": pd.Timestamp("2026-11-01", tz="UTC"),
            "scored_at": pd.Timestamp("2026-11-02", tz="UTC"),
        }
    )


def _read(path) -> pd.DataFrame:
    with sqlite3.connect(path) as conn:
        return pd.read_sql("SELECT * FROM lead_scores ORDER BY lead_id", conn)


def test_sqlite_replace_and_idempotent_rerun(tmp_path):
    db = tmp_path / "scores.db"
    write_table(_scores(10), str(db), "lead_scores")
    first = _read(db)
    write_table(_scores(10), str(db), "lead_scores")
    assert _read(db).equals(first)
    write_table(_scores(4, version="2"), str(db), "lead_scores")
    assert len(_read(db)) == 4 and set(_read(db)["model_version"]) == {"2"}


def test_failure_mid_write_leaves_previous_scores_intact(tmp_path):
    db = tmp_path / "scores.db"
    write_table(_scores(10), str(db), "lead_scores")
    before = _read(db)
    bad = _scores(5000)
    bad["reasons"] = bad["reasons"].astype(object)
    bad.loc[4500, "reasons"] = object()  # the driver cannot bind this: the insert fails late
    with pytest.raises((sa.exc.SQLAlchemyError, sqlite3.Error)):
        write_table(bad, str(db), "lead_scores")
    pd.testing.assert_frame_equal(_read(db), before)


def test_schema_change_replaces_the_table(tmp_path):
    db = tmp_path / "scores.db"
    write_table(_scores(3), str(db), "lead_scores")
    write_table(_scores(3).assign(extra=1), str(db), "lead_scores")
    assert "extra" in _read(db).columns


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_file_targets_are_replaced_atomically(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    write_table(_scores(3), str(path), "ignored")
    bad = _scores(3)
    bad["probability"] = [object(), object(), object()]
    if suffix == ".parquet":
        with pytest.raises(Exception):  # noqa: B017 - pyarrow raises its own error types
            write_table(bad, str(path), "ignored")
    read = pd.read_parquet if suffix == ".parquet" else pd.read_csv
    assert len(read(path)) == 3
    # no temp file or journal left behind; the lock file beside the target stays (it is reused)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{path.name}.lock", path.name]


def test_targets_resolve_and_passwords_are_hidden(tmp_path):
    assert resolve_target("scores.db").startswith("sqlite:///")
    assert resolve_target("out.parquet") == "out.parquet"
    assert "secret" not in redact("postgresql://u:secret@localhost/db")


@pytest.mark.postgres
def test_postgres_replace_and_failure_keep_readers_consistent(postgres_url):
    table = f"lead_scores_test_{uuid.uuid4().hex[:8]}"
    history_table = f"{table}_history"
    engine = sa.create_engine(postgres_url)
    try:
        first = _scores(10)
        write_table(first, postgres_url, table, history=(_history(first, "b1")[0], history_table))
        again = _scores(10).assign(scored_at=pd.Timestamp("2026-11-05", tz="UTC"))
        write_table(again, postgres_url, table, history=(_history(again, "b2")[0], history_table))
        with engine.connect() as conn:
            before = pd.read_sql(f'SELECT * FROM "{table}" ORDER BY lead_id', conn)
        assert len(before) == 10
        assert str(before["as_of"].dt.tz) == "UTC"

        bad = _scores(5000).astype({"score": str})
        bad.loc[4500, "score"] = "not a number"  # COPY rejects it late, in the bigint column
        with pytest.raises(psycopg.Error):
            write_table(bad, postgres_url, table, history=(_history(bad, "b3")[0], history_table))
        with engine.connect() as conn:
            after = pd.read_sql(f'SELECT * FROM "{table}" ORDER BY lead_id', conn)
            batches = pd.read_sql(f'SELECT DISTINCT batch_id FROM "{history_table}"', conn)
        pd.testing.assert_frame_equal(after, before)  # unchanged by the rerun and by the failure
        assert sorted(batches["batch_id"]) == ["b1", "b2"]
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{history_table}"'))
        engine.dispose()


def _history(scores: pd.DataFrame, batch: str) -> tuple[pd.DataFrame, str]:
    return scores[["lead_id", "probability", "model_version", "as_of", "scored_at"]].assign(
        batch_id=batch
    ), "lead_score_history"


def test_rerun_leaves_current_unchanged_and_adds_one_history_batch(tmp_path):
    db = tmp_path / "scores.db"
    first = _scores(10)
    write_table(first, str(db), "lead_scores", history=_history(first, "b1"))
    before = _read(db)
    again = _scores(10).assign(scored_at=pd.Timestamp("2026-11-03", tz="UTC"))  # a later run
    write_table(again, str(db), "lead_scores", history=_history(again, "b2"))
    pd.testing.assert_frame_equal(_read(db), before)
    with sqlite3.connect(db) as conn:
        batches = pd.read_sql(
            "SELECT batch_id, COUNT(*) n FROM lead_score_history GROUP BY 1", conn
        )
    assert batches.set_index("batch_id")["n"].to_dict() == {"b1": 10, "b2": 10}

    changed = _scores(10, version="2").assign(scored_at=pd.Timestamp("2026-11-04", tz="UTC"))
    write_table(changed, str(db), "lead_scores", history=_history(changed, "b3"))
    assert set(_read(db)["scored_at"]) == {"2026-11-04 00:00:00.000000"}


def test_failure_mid_write_keeps_current_and_history(tmp_path):
    db = tmp_path / "scores.db"
    first = _scores(10)
    write_table(first, str(db), "lead_scores", history=_history(first, "b1"))
    bad = _scores(5000)
    bad_history = _history(bad, "b2")[0].astype({"lead_id": object})
    bad_history.loc[4500, "lead_id"] = object()  # the history insert fails after current
    with pytest.raises((sa.exc.SQLAlchemyError, sqlite3.Error)):
        write_table(bad, str(db), "lead_scores", history=(bad_history, "lead_score_history"))
    assert len(_read(db)) == 10
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM lead_score_history").fetchone() == (10,)


def test_file_targets_keep_history_beside_them(tmp_path):
    path = tmp_path / "scores.parquet"
    for batch in ("b1", "b2"):
        scores = _scores(4)
        write_table(scores, str(path), "ignored", history=_history(scores, batch))
    history = pd.read_parquet(tmp_path / "scores.lead_score_history.parquet")
    assert history.groupby("batch_id").size().to_dict() == {"b1": 4, "b2": 4}
    assert len(pd.read_parquet(path)) == 4


@pytest.mark.parametrize("target", ["scores.db", "scores.csv"])
def test_crm_column_names_and_reruns_keep_the_current_rows(tmp_path, target):
    columns = {"lead_id": "Id", "score": "Lead_Score__c", "scored_at": "Score_Date__c"}
    path = tmp_path / target
    for run, batch in enumerate(("b1", "b2")):
        scores = _scores(5).assign(
            scored_at=pd.Timestamp("2026-11-02", tz="UTC") + pd.Timedelta(days=run)
        )
        write_table(
            scores, str(path), "lead_scores", history=_history(scores, batch), columns=columns
        )
    if target.endswith(".db"):
        with sqlite3.connect(path) as conn:
            current = pd.read_sql("SELECT * FROM lead_scores", conn)
    else:
        current = pd.read_csv(path)
    assert {"Id", "Lead_Score__c", "Score_Date__c"} <= set(current.columns)
    assert "lead_id" not in current.columns
    assert current["Score_Date__c"].astype(str).str.startswith("2026-11-02").all()  # kept


def _many_scores(n: int, fresh: int) -> pd.DataFrame:
    """`n` scores, all but the last `fresh` scored long ago: what a CRM sync's query sees."""
    scores = _scores(n).assign(reasons_json='[{"feature": "source", "value": "web"}]')
    stamps = pd.Series(pd.Timestamp("2026-01-01", tz="UTC"), index=scores.index)
    stamps.iloc[-fresh:] = pd.Timestamp("2026-11-02", tz="UTC")
    return scores.assign(scored_at=stamps)


@pytest.mark.postgres
def test_postgres_score_tables_have_keys_jsonb_and_a_sync_query_uses_the_index(postgres_url):
    table = f"lead_scores_test_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(postgres_url)
    try:
        scores = _many_scores(300_000, 50)
        write_table(scores, postgres_url, table, history=(_history(scores, "b1")[0], f"{table}_h"))
        with engine.begin() as conn:
            inspector = sa.inspect(conn)
            assert inspector.get_pk_constraint(table)["constrained_columns"] == ["lead_id"]
            kinds = {c["name"]: str(c["type"]) for c in inspector.get_columns(table)}
            assert kinds["reasons_json"] == "JSONB"
            history_indexes = {i["name"] for i in inspector.get_indexes(f"{table}_h")}
            assert len(history_indexes) == 3
            conn.execute(sa.text(f'ANALYZE "{table}"'))
            plan = conn.execute(
                sa.text(
                    f'EXPLAIN (FORMAT JSON) SELECT * FROM "{table}" '
                    "WHERE scored_at > '2026-11-01T00:00:00Z'"
                )
            ).scalar()
        assert "Index" in str(plan), plan  # not a scan of 300,000 rows for 50 changed ones
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:  # the key holds
            conn.execute(sa.text(f'INSERT INTO "{table}" (lead_id) VALUES (0)'))
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}_h"'))
        engine.dispose()


def test_sqlite_tables_made_by_an_older_release_get_the_key_and_indexes(tmp_path):
    db = tmp_path / "scores.db"
    old = _scores(5)
    with sqlite3.connect(db) as conn:  # as to_sql made them: no key, no index
        old.to_sql("lead_scores", conn, index=False)
        _history(old, "b0")[0].to_sql("lead_score_history", conn, index=False)
    write_table(_scores(5), str(db), "lead_scores", history=_history(_scores(5), "b1"))
    with sqlite3.connect(db) as conn:
        key = [r[1] for r in conn.execute("PRAGMA table_info(lead_scores)") if r[5]]
        indexes = {r[1] for r in conn.execute("PRAGMA index_list(lead_score_history)")}
        batches = conn.execute("SELECT COUNT(DISTINCT batch_id) FROM lead_score_history")
        assert key == ["lead_id"] and len(indexes) == 3 and batches.fetchone() == (2,)


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_new_tables_are_indexed_after_their_rows_and_existing_ones_are_not_reindexed(
    tmp_path, request, monkeypatch, database
):
    from leadscore.pipeline.io import writeback
    from leadscore.pipeline.io.writeback import ChangeLog

    if database == "sqlite":
        url, suffix = f"sqlite:///{tmp_path / 'scores.db'}", ""
    else:
        url, suffix = request.getfixturevalue("postgres_url"), f"_{uuid.uuid4().hex[:8]}"
    names = [f"lead_scores{suffix}", f"lead_score_history{suffix}", f"lead_score_changes{suffix}"]
    engine = sa.create_engine(url)
    done: list[tuple[str, str]] = []  # (what, table) in the order the database got them

    @sa.event.listens_for(sa.engine.Engine, "before_cursor_execute")
    def seen(conn, cursor, statement, parameters, context, executemany):
        words = statement.split()
        for kind, before_name in (("INSERT INTO", 2), ("CREATE TABLE", 2), ("CREATE INDEX", 4)):
            if " ".join(words[:2]) == kind:
                done.append((kind, words[before_name].strip('"')))

    real_insert = writeback.insert_rows

    def insert_rows(frame, conn, table):  # COPY on PostgreSQL is no cursor execute: noted here
        done.append(("INSERT INTO", table.name))
        return real_insert(frame, conn, table)

    monkeypatch.setattr(writeback, "insert_rows", insert_rows)

    def write(batch: str) -> None:
        scores = _scores(50).assign(mql=[True] * 5 + [False] * 45, stage="marketing")
        stamp = scores["as_of"].iloc[0]
        changes = ChangeLog(names[2], batch, stamp, stamp)
        write_table(scores, url, names[0], (_history(scores, batch)[0], names[1]), changes=changes)

    try:
        write("b1")
        for table in names:
            mine = [what for what, name in done if name == table]
            assert mine[0] == "CREATE TABLE", (table, mine)
            last_insert = max(i for i, what in enumerate(mine) if what == "INSERT INTO")
            assert mine.index("CREATE INDEX") > last_insert, (table, mine)
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            made = {t: {i["name"] for i in inspector.get_indexes(t)} for t in names}
        assert [len(made[t]) for t in names] == [1, 3, 3], made
        done.clear()
        write("b2")  # the tables exist: the rows go into them, their indexes kept as they are
        assert {what for what, _ in done} == {"INSERT INTO"}, done
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            assert made == {t: {i["name"] for i in inspector.get_indexes(t)} for t in names}
            count = sa.text(f'SELECT COUNT(DISTINCT batch_id) FROM "{names[1]}"')
            assert conn.execute(count).scalar() == 2
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
        with engine.begin() as conn:
            for table in names:
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
        engine.dispose()
