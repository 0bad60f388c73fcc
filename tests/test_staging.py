"""The score batch's reasons staged on disk: joined back to the right rows, in order, a chunk at a
time; a SQL target written from staged reasons holds what a whole-frame write holds; a failure
while the staged chunks are inserted leaves the earlier scores as they were."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from leadscore.models.scores import SCORE_COLUMNS
from leadscore.pipeline.errors import JobFailure
from leadscore.pipeline.io.staging import WIDE_COLUMNS, StagedColumns
from leadscore.pipeline.io.writeback import write_table

AS_OF = pd.Timestamp("2026-11-01", tz="UTC")


def batch(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    return pd.DataFrame(
        {
            "lead_id": np.arange(1, n + 1),
            "probability": p.round(6),
            "score": np.clip(np.rint(p * 100), 1, 99).astype("int64"),
            "grade": rng.choice(["A", "B", "C", "D"], n),
            "stage": "marketing",
            "mql": rng.random(n) < 0.1,
            "fit_score": rng.integers(1, 99, n),
            "engagement_score": rng.integers(1, 99, n),
            "reasons": [f"Reason {i}; visited pricing {i % 7} times" for i in range(n)],
            "reason_against": np.where(rng.random(n) < 0.3, "", "Lead created long ago"),
            "reasons_json": [f'[{{"feature": "f{i % 5}", "value": {i}}}]' for i in range(n)],
            "model_version": "1",
            "as_of": AS_OF,
            "scored_at": pd.Timestamp("2026-11-30 06:00", tz="UTC"),
        }
    )[list(SCORE_COLUMNS)]  # fmt: skip


def staged_from(frame: pd.DataFrame, path: Path, chunk: int) -> tuple[pd.DataFrame, StagedColumns]:
    staged = StagedColumns(path, SCORE_COLUMNS)
    for start in range(0, len(frame), chunk):
        staged.append(frame.iloc[start : start + chunk])
    return frame.drop(columns=list(WIDE_COLUMNS)), staged


def test_staged_reasons_join_back_to_their_rows_chunk_by_chunk(tmp_path: Path) -> None:
    full = batch(2_345)
    narrow, staged = staged_from(full, tmp_path / "r.arrow", 500)
    parts = list(staged.joined(narrow))
    assert [len(p) for p in parts] == [500, 500, 500, 500, 345]
    pd.testing.assert_frame_equal(pd.concat(parts), full)
    pd.testing.assert_frame_equal(staged.whole(narrow), full)


def test_rows_out_of_the_staged_order_are_refused(tmp_path: Path) -> None:
    narrow, staged = staged_from(batch(1_000), tmp_path / "r.arrow", 300)
    with pytest.raises(JobFailure, match="not in the batch's order"):
        list(staged.joined(narrow.iloc[::-1].reset_index(drop=True)))
    with pytest.raises(JobFailure, match="1,000 rows, the batch 999"):
        list(staged.joined(narrow.iloc[:-1]))


def _stored(db: Path) -> pd.DataFrame:
    with sa.create_engine(f"sqlite:///{db}").connect() as conn:
        return pd.read_sql_table("lead_scores", conn).sort_values("lead_id").reset_index(drop=True)


def test_a_sql_target_written_from_staged_reasons_holds_what_a_whole_write_holds(
    tmp_path: Path,
) -> None:
    full = batch(3_000)
    history = full[["lead_id", "score", "as_of"]].assign(batch_id="b1")
    write_table(full, str(tmp_path / "whole.db"), "lead_scores", history=(history, "h"))
    narrow, staged = staged_from(full, tmp_path / "r.arrow", 700)
    write_table(
        narrow, str(tmp_path / "staged.db"), "lead_scores", history=(history, "h"), staged=staged
    )
    pd.testing.assert_frame_equal(_stored(tmp_path / "staged.db"), _stored(tmp_path / "whole.db"))


def test_a_failure_while_staged_chunks_are_inserted_keeps_the_earlier_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "scores.db"
    earlier = batch(1_500, seed=1)
    write_table(earlier, str(db), "lead_scores")
    narrow, staged = staged_from(batch(1_500, seed=2), tmp_path / "r.arrow", 400)
    chunks = staged.chunks

    def failing_chunks():
        for k, chunk in enumerate(chunks()):
            if k == 2:  # two chunks are inserted already, inside the transaction
                raise OSError("disk read error")
            yield chunk

    monkeypatch.setattr(staged, "chunks", failing_chunks)
    with pytest.raises(OSError, match="disk read error"):
        write_table(narrow, str(db), "lead_scores", staged=staged)
    pd.testing.assert_frame_equal(_stored(db), _stored_frame(earlier))


def _stored_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` as SQLite gives it back (times as naive UTC, booleans as 0/1 read as bool)."""
    out = frame.copy()
    for column in ("as_of", "scored_at"):
        out[column] = out[column].dt.tz_localize(None)
    return out.sort_values("lead_id").reset_index(drop=True)
