"""Score changes in real databases and files: each batch's change rows equal the difference of
that batch and the one before it, and they are written with the scores as one (a failure
writing the changes leaves the scores, the history and the changes as they were)."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from leadscore.models.scoring import HISTORY_COLUMNS
from leadscore.pipeline.io.writeback import ChangeLog, read_changes, read_history, write_table


def _batch(seed: int, as_of: str, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    leads = np.sort(rng.choice(400, n, replace=False))  # leads come and go between batches
    p = rng.random(n) * 0.4
    grade = np.select([p > 0.3, p > 0.2, p > 0.1], ["A", "B", "C"], "D")
    return pd.DataFrame(
        {
            "lead_id": leads.astype(np.int64),
            "probability": p.round(6),
            "score": np.clip(np.rint(p * 100), 1, 99).astype(np.int64),
            "grade": grade,
            "stage": np.where(rng.random(n) < 0.1, "sales", "marketing"),
            "mql": np.isin(grade, ["A", "B"]),
            "fit_score": 50,
            "engagement_score": 50,
            "model_version": "1",
            "as_of": pd.Timestamp(as_of, tz="UTC"),
            "scored_at": pd.Timestamp(as_of, tz="UTC") + pd.Timedelta(hours=1),
        }
    )


def _write(batch: pd.DataFrame, target: str, names: dict[str, str], batch_id: str) -> None:
    history = batch[HISTORY_COLUMNS].assign(batch_id=batch_id)
    write_table(
        batch,
        target,
        names["table"],
        history=(history, names["history"]),
        changes=ChangeLog(
            names["changes"], batch_id, batch["as_of"].max(), batch["scored_at"].max()
        ),
    )


def _difference(old: pd.DataFrame | None, new: pd.DataFrame) -> set[tuple]:
    """The change set computed independently: per lead, (grade, mql) before and after."""

    def state(frame: pd.DataFrame | None) -> dict[int, tuple]:
        if frame is None:
            return {}
        return {int(r.lead_id): (r.grade, bool(r.mql)) for r in frame.itertuples(index=False)}

    before, after = state(old), state(new)
    out = set()
    for lead in before.keys() | after.keys():
        b, a = before.get(lead, (None, False)), after.get(lead, (None, False))
        if b != a:
            out.add((lead, b[0], b[1], a[0], a[1]))
    return out


def _got(changes: pd.DataFrame, batch_id: str) -> set[tuple]:
    rows = changes[changes["batch_id"] == batch_id]

    def text(v: object) -> object:
        return None if pd.isna(v) else v

    return {
        (int(r.lead_id), text(r.old_grade), bool(r.old_mql), text(r.new_grade), bool(r.new_mql))
        for r in rows.itertuples(index=False)
    }


def _check_three_batches(target: str, names: dict[str, str]) -> None:
    batches = [_batch(s, f"2026-10-{d:02d}") for s, d in ((1, 1), (2, 8), (3, 15))]
    for i, batch in enumerate(batches):
        _write(batch, target, names, f"b{i}")
    history = read_history(target, names["history"])
    changes = read_changes(target, names["changes"])
    assert history is not None and changes is not None
    previous = None
    for i in range(3):
        current = history[history["batch_id"] == f"b{i}"]
        assert _got(changes, f"b{i}") == _difference(previous, current)
        assert len(_got(changes, f"b{i}")) > 0
        previous = current
    since = read_changes(target, names["changes"], pd.Timestamp("2026-10-08", tz="UTC"))
    assert set(since["batch_id"]) == {"b1", "b2"}


def _names() -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {"table": f"s_{tag}", "history": f"h_{tag}", "changes": f"c_{tag}"}


def test_sqlite_changes_are_the_difference_of_consecutive_batches(tmp_path):
    _check_three_batches(str(tmp_path / "scores.db"), _names())


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_file_changes_are_the_difference_of_consecutive_batches(tmp_path, suffix):
    _check_three_batches(str(tmp_path / f"scores{suffix}"), _names())


@pytest.mark.postgres
def test_postgres_changes_are_the_difference_of_consecutive_batches(postgres_url):
    names = _names()
    try:
        _check_three_batches(postgres_url, names)
    finally:
        _drop(postgres_url, names)


def _drop(url: str, names: dict[str, str]) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for name in names.values():
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
        conn.execute(sa.text("DROP FUNCTION IF EXISTS leadscore_test_refuse() CASCADE"))
    engine.dispose()


def _engine(target: str) -> sa.engine.Engine:
    return sa.create_engine(target if "://" in target else f"sqlite:///{target}")


def _state(target: str, names: dict[str, str]) -> tuple[int, int, int, list[str]]:
    engine = _engine(target)
    with engine.connect() as conn:
        counts = [
            conn.execute(sa.text(f'SELECT count(*) FROM "{names[k]}"')).scalar_one()
            for k in ("table", "history", "changes")
        ]
        grades = [
            r[0]
            for r in conn.execute(sa.text(f'SELECT grade FROM "{names["table"]}" ORDER BY lead_id'))
        ]
    engine.dispose()
    return (*counts, grades)  # type: ignore[return-value]


def _refuse_changes(target: str, names: dict[str, str]) -> None:
    """Make every insert into the changes table fail, the way a full disk or a broken
    constraint would, after the scores and the history were already written."""
    engine = _engine(target)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                sa.text(
                    f'CREATE TRIGGER refuse BEFORE INSERT ON "{names["changes"]}" '
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )
        else:
            conn.execute(
                sa.text(
                    "CREATE FUNCTION leadscore_test_refuse() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                sa.text(
                    f'CREATE TRIGGER refuse BEFORE INSERT ON "{names["changes"]}" '
                    "FOR EACH ROW EXECUTE FUNCTION leadscore_test_refuse()"
                )
            )
    engine.dispose()


def _check_atomic(target: str, names: dict[str, str]) -> None:
    _write(_batch(1, "2026-10-01"), target, names, "b0")
    before = _state(target, names)
    _refuse_changes(target, names)
    with pytest.raises(Exception, match="refused by the test"):
        _write(_batch(2, "2026-10-08"), target, names, "b1")
    assert _state(target, names) == before  # scores, history and changes as they were


def test_sqlite_a_failed_change_write_changes_nothing(tmp_path):
    _check_atomic(str(tmp_path / "scores.db"), _names())


@pytest.mark.postgres
def test_postgres_a_failed_change_write_changes_nothing(postgres_url):
    names = _names()
    try:
        _check_atomic(postgres_url, names)
    finally:
        _drop(postgres_url, names)
