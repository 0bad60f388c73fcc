"""Turning calibrated probabilities into the score and grade marketing reads."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

SCORE_COLUMNS = (
    "lead_id",
    "probability",
    "score",
    "grade",
    "stage",
    "mql",
    "fit_score",
    "engagement_score",
    "reasons",
    "reason_against",
    "reasons_json",
    "model_version",
    "as_of",
    "scored_at",
)  # the columns a scoring run writes, in order


def to_score(y_proba: np.ndarray) -> np.ndarray:
    """Score 1-99: the calibrated probability in percent, so a 30 is won about 30% of the time."""
    return np.clip(np.rint(np.asarray(y_proba, dtype=float) * 100), 1, 99).astype(np.int64)


def to_grade(y_proba: np.ndarray, bands: Mapping[str, float], fallback: str = "D") -> pd.Series:
    """The first grade whose minimum probability the lead reaches; `bands` is ordered best first."""
    y_proba = np.asarray(y_proba, dtype=float)
    grade = np.full(len(y_proba), fallback, dtype=object)
    for name, threshold in reversed(list(bands.items())):
        grade[y_proba >= threshold] = name
    return pd.Series(grade, dtype=object)


def to_grade_by_percentile(
    y_proba: np.ndarray, top_shares: Mapping[str, float], fallback: str = "D"
) -> pd.Series:
    """Grades by rank: `top_shares` gives each grade's cumulative share of the best leads,
    e.g. {A: 0.05, B: 0.20} makes the top 5% A and the next 15% B. Leads with the same
    probability get the same grade, and a grade never holds more than its share: a block of
    ties that straddles a boundary falls below it (isotonic calibration makes such blocks)."""
    y_proba = np.asarray(y_proba, dtype=float)
    if len(y_proba) == 0:
        return pd.Series([], dtype=object)
    share_above = pd.Series(-y_proba).rank(method="max").to_numpy() / len(y_proba)
    grade = np.full(len(y_proba), fallback, dtype=object)
    for name, share in reversed(list(top_shares.items())):
        grade[share_above <= share] = name
    return pd.Series(grade, dtype=object)


def mql_flags(
    y_proba: np.ndarray,
    grades: pd.Series,
    mql_grades: tuple[str, ...],
    min_score: int | None = None,
    capacity: int | None = None,
    standing: np.ndarray | None = None,
) -> np.ndarray:
    """Marketing-qualified: a qualifying grade or a score of at least `min_score`. With a
    `capacity`, leads already handed over (`standing`) stay MQL while they qualify, and at most
    `capacity` new ones join, highest probability first."""
    flag = np.isin(np.asarray(grades), list(mql_grades))
    if min_score is not None:
        flag |= to_score(y_proba) >= min_score
    if capacity is None:
        return flag
    kept = flag & (np.zeros_like(flag) if standing is None else np.asarray(standing, dtype=bool))
    candidates = np.flatnonzero(flag & ~kept)
    order = np.argsort(-np.asarray(y_proba)[candidates], kind="stable")
    kept[candidates[order[: max(capacity, 0)]]] = True
    return kept


def assign_grades(
    y_proba: np.ndarray, bands: Mapping[str, float], grade_by: str = "probability"
) -> pd.Series:
    """Grades by calibrated probability or by percentile, as the targeting policy says."""
    if grade_by == "percentile":
        return to_grade_by_percentile(y_proba, bands)
    return to_grade(y_proba, bands)


def grade_table(y: np.ndarray, y_proba: np.ndarray, grades: pd.Series) -> pd.DataFrame:
    """Per grade: holdout leads, their actual and predicted win rate, and their share of wins."""
    frame = pd.DataFrame({"grade": np.asarray(grades), "won": np.asarray(y), "p": y_proba})
    table = frame.groupby("grade").agg(
        leads=("won", "size"),
        win_rate=("won", "mean"),
        predicted=("p", "mean"),
        wins=("won", "sum"),
    )
    total = max(frame["won"].sum(), 1)
    table["share_of_wins"] = table["wins"] / total
    return table.drop(columns="wins").sort_index()


def grade_thresholds(
    holdout_proba: np.ndarray, bands: Mapping[str, float], grade_by: str = "probability"
) -> dict[str, float]:
    """Minimum probability per grade for grading one lead at a time: the bands themselves, or,
    for percentile bands, the lowest holdout probability that got each grade (so a block of
    ties below a boundary stays below it, as in a batch); a grade nobody got is out of reach."""
    if grade_by != "percentile":
        return dict(bands)
    p = np.asarray(holdout_proba, dtype=float)
    if len(p) == 0:
        return {name: 1.0 for name in bands}
    grades = to_grade_by_percentile(p, bands).to_numpy()
    out_of_reach = float(np.nextafter(p.max(), np.inf))
    return {
        name: float(p[grades == name].min()) if (grades == name).any() else out_of_reach
        for name in bands
    }
