"""Today's `score_changes` gives the same rows, in the same order and with the same types, as the
one before it was rewritten to hold less memory (frozen in `tests/frozen_changes`), on random
pairs of batches: integer or text ids (text as a database hands it back, or in pandas' own
string type), no previous batch or an empty one, leads entering, staying and leaving, grades
and MQL flags missing, and older tables without a score or a stage column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from frozen_changes.score_changes import score_changes as frozen_score_changes

from leadscore.models.score_changes import find_changes, score_changes

T = pd.Timestamp("2026-11-01", tz="UTC")
GRADES = np.array(["A", "B", "C", "D", None], dtype=object)


def _batch(rng: np.random.Generator, ids: np.ndarray, text: bool, old: bool) -> pd.DataFrame:
    n = len(ids)
    frame = pd.DataFrame(
        {
            "lead_id": np.array([f"L-{i:06d}" for i in ids], dtype=object) if text else ids,
            "grade": GRADES[rng.integers(0, 5 if old else 4, n)],
            "mql": rng.random(n) < 0.3,
            "score": rng.integers(1, 100, n),
            "stage": np.array(["marketing", "sales"], dtype=object)[rng.integers(0, 2, n)],
        }
    )
    if old and rng.random() < 0.5:  # as a database hands a table back: flags with gaps
        frame["mql"] = frame["mql"].astype(object).where(rng.random(n) < 0.9, None)
    if old and rng.random() < 0.3:  # an older table: no score, no stage
        frame = frame.drop(columns=["score", "stage"])
    if text and rng.random() < 0.5:
        frame["lead_id"] = frame["lead_id"].astype("string")
    return frame.iloc[rng.permutation(n)].reset_index(drop=True) if rng.random() < 0.5 else frame


@pytest.mark.parametrize("seed", range(40))
def test_the_same_change_rows_as_before_the_rewrite(seed: int) -> None:
    rng = np.random.default_rng(seed)
    text = bool(seed % 2)
    pool = rng.choice(5_000, size=600, replace=False)
    old_ids = pool[: rng.integers(0, 400)]
    new_ids = np.concatenate([old_ids[rng.random(len(old_ids)) < 0.7], pool[400:]])
    previous = None if seed % 5 == 0 else _batch(rng, old_ids, text, old=True)
    batch = _batch(rng, rng.permutation(new_ids), text, old=False)
    got = score_changes(previous, batch, "b1", T, T + pd.Timedelta(hours=1))
    want = frozen_score_changes(previous, batch, "b1", T, T + pd.Timedelta(hours=1))
    assert len(want) > 0
    pd.testing.assert_frame_equal(got, want, check_exact=True)


@pytest.mark.parametrize("seed", range(0, 40, 3))
def test_the_rows_written_a_slice_at_a_time_are_the_same_rows(seed: int) -> None:
    """The write takes the change rows a slice at a time: the same rows, values and counts
    (a slice's column may be typed apart, a column of missing grades say: stored the same)."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(5_000, size=500, replace=False)
    previous = None if seed % 2 else _batch(rng, ids[:300], bool(seed % 3), old=True)
    batch = _batch(rng, ids[150:], bool(seed % 3), old=False)
    found = find_changes(previous, batch, "b1", T, T)
    whole = found.frame()
    parts = list(found.parts(37))
    assert [len(p) for p in parts[:-1]] == [37] * (len(parts) - 1)
    assert sum(map(len, parts)) == len(whole) > 0
    start = 0
    for part in parts:
        want = whole.iloc[start : start + len(part)].reset_index(drop=True)
        pd.testing.assert_frame_equal(part, want, check_dtype=False)
        start += len(part)
    assert found.counts() == whole["change"].value_counts().to_dict()


def _frame(ids: list[object], grades: list[object], mql: list[bool]) -> pd.DataFrame:
    return pd.DataFrame({"lead_id": pd.Series(ids, dtype=object), "grade": grades, "mql": mql})


@pytest.mark.parametrize(
    ("previous", "batch"),
    [
        # nothing changed: no rows, typed as before
        (
            _frame(["a", "b"], ["A", "B"], [False, True]),
            _frame(["a", "b"], ["A", "B"], [False, True]),
        ),
        # a lead without an id is a lead of its own, not another's
        (_frame(["a", None], ["A", "B"], [False, False]), _frame(["a"], ["A"], [False])),
        (_frame(["a"], ["A"], [False]), _frame(["a", None], ["A", "C"], [False, True])),
        (_frame([None], ["A"], [False]), _frame([None], ["B"], [False])),
        # integer ids in the batch, text ids that left: typed as text, as before
        (
            _frame(["x-1", "x-2"], ["A", "B"], [False, False]),
            _frame([1, 2], ["A", "B"], [False, True]),
        ),
    ],
)
def test_edge_batches_give_the_same_rows_as_before(
    previous: pd.DataFrame, batch: pd.DataFrame
) -> None:
    if batch["lead_id"].map(type).eq(int).all():
        batch = batch.assign(lead_id=batch["lead_id"].astype("int64"))
    got = score_changes(previous, batch, "b1", T, T)
    want = frozen_score_changes(previous, batch, "b1", T, T)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    found = find_changes(previous, batch, "b1", T, T)
    whole = pd.concat(list(found.parts(1)), ignore_index=True)
    assert whole["lead_id"].dtype == got["lead_id"].dtype  # the slices typed as the whole
