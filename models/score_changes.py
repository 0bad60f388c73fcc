"""What changed for a CRM workflow since the previous batch: leads that crossed into or out of
MQL, or changed grade, with the old and new values.

A change row is the difference of two consecutive batches: the current table before a write
(the previous batch) against the rows the write puts in its place. A lead missing from a batch
(not yet open, or closed or gone since) has no grade there and is not an MQL, so a first batch
hands over all its MQLs and a lead that leaves is an exit. Crossing MQL outranks a grade change
when both happen: one row per lead and batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

CHANGE_COLUMNS = [
    "batch_id",
    "lead_id",
    "change",  # into_mql, out_of_mql or grade
    "old_grade",
    "new_grade",
    "old_mql",
    "new_mql",
    "old_score",
    "new_score",
    "stage",
    "as_of",
    "scored_at",
]
INTO_MQL, OUT_OF_MQL, GRADE = "into_mql", "out_of_mql", "grade"
COMPARED = ["lead_id", "grade", "mql", "score", "stage"]


def _usable(frame: pd.DataFrame | None) -> bool:
    return frame is not None and not frame.empty and {"lead_id", "grade", "mql"} <= set(frame)


def _integer_ids(*frames: pd.DataFrame | None) -> bool:
    """Whether every batch's lead ids are integers without gaps (then they are matched as
    int64, far lighter than text for millions of leads)."""
    return all(
        pd.api.types.is_integer_dtype(f["lead_id"]) and not f["lead_id"].hasnans
        for f in frames
        if _usable(f)
    )


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name].reset_index(drop=True)
    return pd.Series(None, index=pd.RangeIndex(len(frame)), dtype=object)


@dataclass(frozen=True, eq=False)
class _Side:
    """One batch's compared columns: the lead id as the batch has it, and the grade and stage
    as codes into their few distinct values (-1: missing), so that millions of leads cost
    small integer arrays, not a Python object each."""

    ids: pd.Series
    grade: np.ndarray
    grades: np.ndarray  # the grades as text, by code
    mql: np.ndarray
    score: np.ndarray
    stage: np.ndarray
    stages: np.ndarray

    @classmethod
    def of(cls, frame: pd.DataFrame | None) -> _Side:
        if not _usable(frame):
            frame = pd.DataFrame({"lead_id": pd.Series([], dtype=object), "grade": [], "mql": []})
        grade, grades = pd.factorize(_column(frame, "grade"))
        stage, stages = pd.factorize(_column(frame, "stage"))
        return cls(
            _column(frame, "lead_id"),
            grade.astype(np.int32),
            _texts(pd.Series(np.asarray(grades, dtype=object))).to_numpy(),
            _column(frame, "mql").fillna(False).astype(bool).to_numpy(),
            pd.to_numeric(_column(frame, "score")).to_numpy(dtype=float),
            stage.astype(np.int32),
            np.asarray(stages, dtype=object),
        )


def _texts(values: pd.Series) -> pd.Series:
    """Grades as Python strings, None where missing (whatever string dtype pandas chose)."""
    present = values.notna().to_numpy()
    text = values.astype(object).where(present, "").astype(str).to_numpy(dtype=object)
    return pd.Series(np.where(present, text, None), index=values.index, dtype=object)


def _keys(ids: pd.Series, as_integers: bool) -> pd.Series:
    """Lead ids as keys to match: int64 when every batch has integer ids, else text (a
    database may hand back another integer type than the frame had, or text)."""
    return ids.astype(np.int64) if as_integers else ids.astype(str)


def _rows(codes: np.ndarray, n: int) -> np.ndarray:
    """For each of `n` keys, the last row whose code it is (-1: none)."""
    kind = np.int32 if len(codes) < np.iinfo(np.int32).max else np.int64
    rows = np.full(n, -1, dtype=kind)
    np.maximum.at(rows, codes, np.arange(len(codes), dtype=kind))
    return rows


def _at(values: np.ndarray, rows: np.ndarray, missing: object) -> np.ndarray:
    """`values` at `rows`, `missing` where the row is -1."""
    if not len(values):
        return np.full(len(rows), missing)
    return np.where(rows >= 0, values.take(np.maximum(rows, 0)), missing)


def _shared_grades(old: _Side, new: _Side) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both sides' grade codes as codes into one list of grade texts (two distinct values of
    a side may spell one text: 1 and '1'), and that list with None last (code -1)."""
    shared, texts = pd.factorize(np.concatenate([old.grades, new.grades]))
    shared = np.append(shared, -1).astype(np.int32)  # a missing grade (code -1) stays -1
    offset = np.where(new.grade >= 0, new.grade + len(old.grades), -1)
    return shared[old.grade], shared[offset], np.append(np.asarray(texts, dtype=object), None)


def _lead_ids(
    old: _Side, new: _Side, old_rows: np.ndarray, new_rows: np.ndarray
) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """The lead id of each changed lead: the new batch's, or the old one's for a lead that
    left."""
    from_new = new_rows >= 0
    if from_new.all():
        ids = new.ids.take(new_rows)
    else:
        parts = [new.ids.take(new_rows[from_new]), old.ids.take(old_rows[~from_new])]
        position = np.empty(len(new_rows), dtype=np.int64)
        position[from_new] = np.arange(from_new.sum())
        position[~from_new] = from_new.sum() + np.arange((~from_new).sum())
        ids = pd.concat(parts, ignore_index=True).take(position)
    return ids.to_numpy() if ids.dtype == object else ids.array


def _stages(old: _Side, new: _Side, old_rows: np.ndarray, new_rows: np.ndarray) -> np.ndarray:
    """Each changed lead's stage: the new batch's, or the old one's where the new has none."""
    new_stage, old_stage = _at(new.stage, new_rows, -1), _at(old.stage, old_rows, -1)
    new_names, old_names = np.append(new.stages, None), np.append(old.stages, None)
    return np.where(new_stage >= 0, new_names[new_stage], old_names[old_stage])


KINDS = np.array([INTO_MQL, OUT_OF_MQL, GRADE], dtype=object)  # by change code


@dataclass(frozen=True, eq=False)
class Changes:
    """The leads whose MQL flag or grade differ between two batches, as their rows in each
    (-1: not there) and codes, in the order of the lead ids; their rows are built a slice at
    a time (`parts`), so a first batch of millions of changes is never held whole."""

    old: _Side
    new: _Side
    kind: np.ndarray  # the change's code (into_mql, out_of_mql, grade), by `KINDS`
    old_rows: np.ndarray
    new_rows: np.ndarray
    old_grade: np.ndarray  # codes into `texts`
    new_grade: np.ndarray
    old_mql: np.ndarray
    new_mql: np.ndarray
    texts: np.ndarray  # the grades' texts by code, None last (code -1)
    stamp: tuple[str, pd.Timestamp, pd.Timestamp]  # batch id, as-of, scored at
    lead_type: object | None  # the batch's lead id dtype (None: an empty batch, or ids that
    # left which cannot take it)

    def __len__(self) -> int:
        return len(self.kind)

    def counts(self) -> dict[str, int]:
        """How many changes of each kind."""
        found = np.bincount(self.kind, minlength=len(KINDS))
        return {str(KINDS[k]): int(n) for k, n in enumerate(found) if n}

    def frame(self, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """The change rows `start` to `stop` (all by default), in `CHANGE_COLUMNS`."""
        part = slice(start, stop)
        old_rows, new_rows = self.old_rows[part], self.new_rows[part]
        old, new = self.old, self.new
        batch_id, as_of, scored_at = self.stamp
        n = len(old_rows)
        out = pd.DataFrame(
            {
                "batch_id": np.full(n, batch_id, dtype=object),
                "lead_id": _lead_ids(old, new, old_rows, new_rows),
                "change": KINDS[self.kind[part]].astype(str),  # text even when empty
                "old_grade": self.texts[self.old_grade[part]],
                "new_grade": self.texts[self.new_grade[part]],
                "old_mql": self.old_mql[part],
                "new_mql": self.new_mql[part],
                "old_score": _at(old.score, old_rows, np.nan),
                "new_score": _at(new.score, new_rows, np.nan),
                "stage": _stages(old, new, old_rows, new_rows),
                "as_of": _repeated(as_of, n),
                "scored_at": _repeated(scored_at, n),
            }
        )
        if self.lead_type is not None:
            out["lead_id"] = out["lead_id"].astype(self.lead_type, errors="ignore")
        return out

    def parts(self, size: int) -> Iterator[pd.DataFrame]:
        """The change rows, `size` at a time (one empty frame when there are none)."""
        for start in range(0, max(len(self), 1), size):
            yield self.frame(start, start + size)


def find_changes(
    previous: pd.DataFrame | None,
    batch: pd.DataFrame,
    batch_id: str,
    as_of: pd.Timestamp,
    scored_at: pd.Timestamp,
) -> Changes:
    """The changes from `previous` (the current table before this batch, or None) to `batch`
    (the rows replacing it), stamped with this batch's id, as-of and time (given: the rows may
    all be kept from an earlier batch).

    Leads are matched through integer codes of their keys and grades compared as codes: a
    batch of millions of leads costs a few integer arrays, not a joined table of Python
    objects."""
    as_integers = _integer_ids(previous, batch)
    old, new = _Side.of(previous), _Side.of(batch)
    keys = pd.concat([_keys(old.ids, as_integers), _keys(new.ids, as_integers)])
    # in the order of the keys; a missing id is a key of its own (last), as it was in a join
    codes = pd.factorize(keys, sort=True, use_na_sentinel=False)[0]
    del keys
    n_keys = int(codes.max()) + 1 if len(codes) else 0
    old_rows = _rows(codes[: len(old.ids)], n_keys)
    new_rows = _rows(codes[len(old.ids) :], n_keys)
    del codes
    old_grades, new_grades, texts = _shared_grades(old, new)
    old_grade, new_grade = _at(old_grades, old_rows, -1), _at(new_grades, new_rows, -1)
    old_mql, new_mql = _at(old.mql, old_rows, False), _at(new.mql, new_rows, False)
    kind = np.select(
        [new_mql & ~old_mql, old_mql & ~new_mql, old_grade != new_grade], [0, 1, 2], default=-1
    ).astype(np.int8)
    keep = np.flatnonzero(kind >= 0)
    lead_type = batch["lead_id"].dtype if len(batch) else None
    gone = old_rows[keep][new_rows[keep] < 0]  # leads that left: their ids typed as the batch's
    if lead_type is not None and len(gone):  # when all of them can be, for every slice alike
        try:
            old.ids.take(gone).astype(lead_type)
        except (TypeError, ValueError):
            lead_type = None
    return Changes(
        old,
        new,
        kind[keep],
        old_rows[keep],
        new_rows[keep],
        old_grade[keep],
        new_grade[keep],
        old_mql[keep],
        new_mql[keep],
        texts,
        (batch_id, as_of, scored_at),
        lead_type,
    )


def score_changes(
    previous: pd.DataFrame | None,
    batch: pd.DataFrame,
    batch_id: str,
    as_of: pd.Timestamp,
    scored_at: pd.Timestamp,
) -> pd.DataFrame:
    """The change rows of `find_changes`, all at once, in the order of the lead ids."""
    return find_changes(previous, batch, batch_id, as_of, scored_at).frame()


def _repeated(moment: pd.Timestamp, n: int) -> pd.Series:
    """`moment` n times, as UTC times (without a Python object per row)."""
    return pd.Series(pd.to_datetime([moment], utc=True).as_unit("ns").repeat(n))


def handoffs_since(changes: pd.DataFrame | None, start: pd.Timestamp, end: pd.Timestamp) -> int:
    """New MQL hand-offs recorded in batches as of (start, end]: what a weekly capacity has
    already spent. A batch exactly a week earlier belongs to the previous week; an earlier
    batch as of `end` itself (a rerun) has spent it already, and its MQLs stand."""
    if changes is None or changes.empty:
        return 0
    as_of = pd.to_datetime(changes["as_of"], utc=True)
    into = changes["change"].astype(str) == INTO_MQL
    return int((into & (as_of > start) & (as_of <= end)).sum())
