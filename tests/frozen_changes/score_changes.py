"""What changed for a CRM workflow since the previous batch: leads that crossed into or out of
MQL, or changed grade, with the old and new values.

A change row is the difference of two consecutive batches: the current table before a write
(the previous batch) against the rows the write puts in its place. A lead missing from a batch
(not yet open, or closed or gone since) has no grade there and is not an MQL, so a first batch
hands over all its MQLs and a lead that leaves is an exit. Crossing MQL outranks a grade change
when both happen: one row per lead and batch.
"""

from __future__ import annotations

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
    """Whether every batch's lead ids are integers without gaps (then they key the join as
    int64, far lighter than text for millions of leads)."""
    return all(
        pd.api.types.is_integer_dtype(f["lead_id"]) and not f["lead_id"].hasnans
        for f in frames
        if _usable(f)
    )


def _side(frame: pd.DataFrame | None, as_integers: bool) -> pd.DataFrame:
    """One batch's compared columns, keyed by the lead id (as int64 when every batch has
    integer ids, else as text: a database may hand back another integer type than the frame
    had, or text)."""
    if not _usable(frame):
        return pd.DataFrame(columns=[*COMPARED, "key"]).set_index("key")
    assert frame is not None
    out = pd.DataFrame({c: frame[c] if c in frame.columns else None for c in COMPARED})
    out["mql"] = out["mql"].fillna(False).astype(bool)
    ids = frame["lead_id"]
    out["key"] = ids.to_numpy(dtype=np.int64) if as_integers else ids.astype(str).to_numpy()
    return out.set_index("key")


def _texts(values: pd.Series) -> pd.Series:
    """Grades as Python strings, None where missing (whatever string dtype pandas chose)."""
    present = values.notna().to_numpy()
    text = values.astype(object).where(present, "").astype(str).to_numpy(dtype=object)
    return pd.Series(np.where(present, text, None), index=values.index, dtype=object)


def score_changes(
    previous: pd.DataFrame | None,
    batch: pd.DataFrame,
    batch_id: str,
    as_of: pd.Timestamp,
    scored_at: pd.Timestamp,
) -> pd.DataFrame:
    """The change rows from `previous` (the current table before this batch, or None) to
    `batch` (the rows replacing it), stamped with this batch's id, as-of and time (given: the
    rows may all be kept from an earlier batch)."""
    as_integers = _integer_ids(previous, batch)
    old, new = _side(previous, as_integers), _side(batch, as_integers)
    both = old.join(new, how="outer", suffixes=("_old", "_new"))
    old_mql = both["mql_old"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    new_mql = both["mql_new"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    old_grade = _texts(both["grade_old"])
    new_grade = _texts(both["grade_new"])
    regraded = (old_grade != new_grade) & ~(old_grade.isna() & new_grade.isna())
    change = np.select(
        [new_mql & ~old_mql, old_mql & ~new_mql, regraded.to_numpy()],
        [INTO_MQL, OUT_OF_MQL, GRADE],
        default="",
    )
    keep = change != ""
    lead = both["lead_id_new"].where(both["lead_id_new"].notna(), both["lead_id_old"])
    stage = both["stage_new"].where(both["stage_new"].notna(), both["stage_old"])
    n = int(keep.sum())
    out = pd.DataFrame(
        {
            "batch_id": np.full(n, batch_id, dtype=object),
            "lead_id": lead.to_numpy()[keep],
            "change": change[keep],
            "old_grade": old_grade.to_numpy()[keep],
            "new_grade": new_grade.to_numpy()[keep],
            "old_mql": old_mql[keep],
            "new_mql": new_mql[keep],
            "old_score": pd.to_numeric(both["score_old"]).to_numpy(dtype=float)[keep],
            "new_score": pd.to_numeric(both["score_new"]).to_numpy(dtype=float)[keep],
            "stage": stage.to_numpy()[keep],
            "as_of": _repeated(as_of, n),
            "scored_at": _repeated(scored_at, n),
        }
    )
    if len(batch):
        out["lead_id"] = out["lead_id"].astype(batch["lead_id"].dtype, errors="ignore")
    return out[CHANGE_COLUMNS].reset_index(drop=True)


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
