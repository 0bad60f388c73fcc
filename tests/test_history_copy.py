"""The history copied inside the database from the current table stores exactly what inserting
its rows did, on SQLite and PostgreSQL; where a copy could not, the rows are inserted."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from leadscore.pipeline.io import score_tables
from leadscore.pipeline.io.bulk_insert import insert_rows
from leadscore.pipeline.io.history_copy import copy_statement
from leadscore.pipeline.io.writeback import write_table

HISTORY = ["lead_id", "score", "probability", "grade", "stage", "mql", "model_version", "as_of"]


def _scores(
    n: int, text_ids: bool, scored_at: str = "2026-11-02 03:04:05.123456", zone: str | None = "UTC"
) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    probability = rng.random(n)
    probability[::7] = np.nan  # a lead the model could not score
    ids = [f"00Q{i:06d}" for i in range(n)] if text_ids else np.arange(n) * 3 + 1
    return pd.DataFrame(
        {
            "lead_id": ids,
            "probability": probability,
            "score": rng.integers(1, 100, n),
            "grade": rng.choice(["A", "B", "C", "D"], n).astype(object),
            "stage": pd.Series(rng.choice(["marketing", "sales", None], n), dtype=object),
            "mql": rng.random(n) < 0.1,
            "reasons": ["Viewed the pricing page"] * n,
            "model_version": "7",
            "as_of": pd.Timestamp("2026-11-01", tz=zone),
            "scored_at": pd.Timestamp(scored_at, tz=zone),
        }
    )


def _history(scores: pd.DataFrame, batch: str) -> pd.DataFrame:
    return scores[[*HISTORY, "scored_at"]].assign(batch_id=batch)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh SQLite file, or the real PostgreSQL server (its tables dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'scores.db'}"
        return
    # a session time zone other than UTC: a time bound with the wrong type would shift by it
    url = request.getfixturevalue("postgres_url") + "?options=-c%20TimeZone%3DAmerica/New_York"
    yield url
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for name in request.node.leadscore_tables:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
    engine.dispose()


def _names(request: pytest.FixtureRequest) -> tuple[str, str, str]:
    suffix = uuid.uuid4().hex[:8]
    names = (f"scores_{suffix}", f"history_{suffix}", f"inserted_{suffix}")
    request.node.leadscore_tables = names
    return names


def _stored(url: str, table: str) -> list[tuple]:
    """Every row as stored (SQLite: each value with its storage class), in a fixed order."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            columns = [c["name"] for c in sa.inspect(conn).get_columns(table)]
            picked = ", ".join(f'"{c}", typeof("{c}")' for c in columns)
            query = f'SELECT {picked} FROM "{table}" ORDER BY batch_id, lead_id'
        else:
            query = f'SELECT * FROM "{table}" ORDER BY batch_id, lead_id'
        rows = [tuple(r) for r in conn.execute(sa.text(query))]
    engine.dispose()
    return rows


def _inserted(url: str, table: str, batches: list[pd.DataFrame]) -> None:
    """The history as inserting its rows through the driver stores it (the path before)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        log = score_tables.history_table(batches[0], table, conn.dialect.name)
        log.create(conn)
        for rows in batches:
            insert_rows(rows, conn, log)
    engine.dispose()


@contextmanager
def _statements() -> Iterator[list[str]]:
    """Every SQL statement any engine sends meanwhile (SQLAlchemy's own event)."""
    sent: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        sent.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)


@pytest.mark.parametrize("text_ids", [False, True])
@pytest.mark.parametrize("crm_names", [False, True])
@pytest.mark.parametrize("zone", ["UTC", None])
def test_copied_history_stores_what_inserting_its_rows_stores(
    database: str, request: pytest.FixtureRequest, text_ids: bool, crm_names: bool, zone
) -> None:
    table, history, inserted = _names(request)
    columns = {"lead_id": "Id", "score": "Lead_Score__c", "scored_at": "Score_Date__c"}
    first = _scores(3_000, text_ids, zone=zone)
    # a rerun: unchanged leads keep their scoring time in the current table, not in the history
    again = _scores(3_000, text_ids, scored_at="2026-11-03 00:00:00", zone=zone)
    again.loc[::5, "probability"] += 0.01  # some leads rescored, so current times differ
    runs, batches = (first, again), [_history(first, "b1"), _history(again, "b2")]
    if zone is None:  # naive times (a rerun keeps times only when they are aware, as the job's)
        later = pd.Timestamp("2026-11-05 06:07:08.5")  # one value, not the current table's
        runs, batches = (first,), [batches[0].assign(scored_at=later)]
    with _statements() as sent:
        for scores, rows in zip(runs, batches, strict=True):
            write_table(
                scores, database, table, history=(rows, history),
                columns=columns if crm_names else None,
            )  # fmt: skip
    copies = [s for s in sent if s.lstrip().startswith("INSERT") and "SELECT" in s]
    assert len(copies) == len(runs) and all(history in s for s in copies)  # each batch copied
    _inserted(database, inserted, batches)
    assert len(_stored(database, history)) == 3_000 * len(runs)
    assert _stored(database, history) == _stored(database, inserted)
    if database.startswith("sqlite"):  # and in the batch's order
        engine = sa.create_engine(database)
        with engine.connect() as conn:
            order = [
                conn.execute(sa.text(f'SELECT lead_id FROM "{t}" ORDER BY rowid')).scalars().all()
                for t in (history, inserted)
            ]
        engine.dispose()
        assert order[0] == order[1]


def test_the_copy_is_used_for_a_full_batch_and_refused_otherwise(
    database: str, request: pytest.FixtureRequest
) -> None:
    table, history, _ = _names(request)
    scores = _scores(500, text_ids=False)
    rows = _history(scores, "b1")
    write_table(scores, database, table, history=(rows, history))
    engine = sa.create_engine(database)
    with engine.begin() as conn:
        current = score_tables.reflect(conn, table)
        log = score_tables.reflect(conn, history)

        def statement(rows: pd.DataFrame, written: pd.DataFrame = scores) -> object:
            return copy_statement(conn, rows, log, written, current, {})

        assert statement(rows) is not None  # the job's case: every lead of the batch
        assert statement(rows.iloc[:400]) is None  # an incremental run's rescored leads
        moved = rows.assign(score=rows["score"].to_numpy()[::-1].copy())
        assert statement(moved) is None  # values the current table does not hold
        varied = rows.assign(batch_id=[f"b{i}" for i in range(len(rows))])
        assert statement(varied) is None  # neither copied nor one value
        as_float = rows.assign(score=rows["score"].astype(float))
        assert statement(as_float) is None  # the same numbers, another dtype
        gap = pd.array(["7"] * (len(rows) - 1) + [None], dtype="string")
        assert statement(rows.assign(model_version=gap)) is None  # one value, and a missing one
        mixed = pd.Series([10] * 250 + [10.0] * 250, dtype=object)
        assert statement(rows.assign(score=mixed)) is None  # equal, but stored differently
        backwards = scores.iloc[::-1]
        assert statement(_history(backwards, "b1"), backwards) is None  # read back in lead order
    engine.dispose()


def test_a_stored_history_column_of_another_kind_gets_inserted_rows(tmp_path) -> None:
    """An older table (made by hand, say) with a text column where ours is a number: no copy
    (the value would be converted by a rule of its own), the rows inserted as before."""
    db = tmp_path / "scores.db"
    scores = _scores(200, text_ids=False)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE lead_score_history (lead_id BIGINT, score BIGINT, probability TEXT, "
            "grade TEXT, stage TEXT, mql BOOLEAN, model_version TEXT, as_of DATETIME, "
            "scored_at DATETIME, batch_id TEXT)"
        )
    rows = _history(scores, "b1")
    write_table(scores, str(db), "lead_scores", history=(rows, "lead_score_history"))
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        log = score_tables.reflect(conn, "lead_score_history")
        current = score_tables.reflect(conn, "lead_scores")
        assert copy_statement(conn, rows, log, scores, current, {}) is None
    engine.dispose()
    reference = tmp_path / "reference.db"
    with sqlite3.connect(reference) as conn:
        conn.execute(
            "CREATE TABLE lead_score_history (lead_id BIGINT, score BIGINT, probability TEXT, "
            "grade TEXT, stage TEXT, mql BOOLEAN, model_version TEXT, as_of DATETIME, "
            "scored_at DATETIME, batch_id TEXT)"
        )
    engine = sa.create_engine(f"sqlite:///{reference}")
    with engine.begin() as conn:
        insert_rows(rows, conn, score_tables.reflect(conn, "lead_score_history"))
    engine.dispose()
    assert _stored(f"sqlite:///{db}", "lead_score_history") == _stored(
        f"sqlite:///{reference}", "lead_score_history"
    )
