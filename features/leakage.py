"""The leakage audit: columns that are probably only known after the outcome, with evidence.

Time-stamped tables (activities, deals) are masked at each cutoff, so the features built from
them cannot leak; a property test proves it. Attributes have no timestamp: a CRM export holds their
value at export time, after many outcomes were known. They are where leaks enter, so they are what
this audit examines. Each check gives evidence a person can verify:

- `single_feature_auc`: the column alone ranks wins above non-wins better than `max_auc`;
  honest features rarely do (the report shows the best other feature for comparison);
- `missing_in_one_class` / `value_in_one_class`: whether the column is filled in, or one of
  its values, occurs in one class only, where the base rate says the other class should have
  shown up at least `min_expected` times (0 for every loss, a reason filled for losses only);
- `timestamp_after_outcome`: a timestamp column that mostly falls on or after the close;
- `spells_outcome`: values that say won/lost/closed/converted, or a name such as `close_value`,
  `loss_reason` or `stage`. A name alone is only marked for review; values with skewed classes
  are a finding.
- `later_state`: a name that says the value is the state at export time or a person's judgement
  (`last_activity`, `lead_quality`, `rating`, `notes`) on a column that is also strong
  (single-feature AUC of at least `review_auc`). Either alone is no evidence: honest features
  can be strong, and a name can mislead.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

OUTCOME_NAME = re.compile(
    r"(?:^|_)(?:won|win|wins|lost|loss|losses|closed?|close_(?:date|value|reason|amount)|"
    r"reason|outcome|stage|status|converted|conversion|churn(?:ed)?|disqualif\w*|result|tags?)"
    r"(?:_|$)"
)
OUTCOME_VALUE = re.compile(
    r"(?:^|_)(?:won|lost|closed|converted|disqualified|churned|lost_to|closed_by|not_interested|"
    r"already_a_student|invalid_number|wrong_number)(?:_|$)"
)
LATER_STATE_NAME = re.compile(
    r"(?:^|_)(?:last|latest|updated|modified|quality|rating|rated|assessment|"
    r"assigned|notes?|comments?|feedback|priority|temperature|grade)(?:_|$)"
)
FLAG = "flagged"
REVIEW = "review"


@dataclass(frozen=True)
class Finding:
    column: str
    check: str
    evidence: str
    verdict: str  # flagged (data evidence) or review (a name only)

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _snake(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_")


def single_feature_auc(values: pd.Series, y: np.ndarray, seed: int = 0) -> float:
    """How well one column alone ranks the classes, 0.5 to 1 (direction-free).

    Numbers rank by value with missing as its own lowest level; text columns by an out-of-fold
    win rate per value, so a column of unique ids cannot score by memorising.
    """
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        return float("nan")
    if pd.api.types.is_numeric_dtype(values):
        filled = pd.to_numeric(values, errors="coerce").astype(float)
        score = filled.fillna(filled.min() - 1 if filled.notna().any() else 0).to_numpy()
    else:
        text = values.astype(object).where(values.notna(), "<missing>").astype(str).to_numpy()
        score = np.empty(len(y), dtype=float)
        prior, weight = y.mean(), 10.0
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
        for fit_idx, eval_idx in folds.split(text, y):
            stats = (
                pd.DataFrame({"v": text[fit_idx], "y": y[fit_idx]})
                .groupby("v")["y"]
                .agg(["sum", "count"])
            )
            rate = (stats["sum"] + prior * weight) / (stats["count"] + weight)
            score[eval_idx] = pd.Series(text[eval_idx]).map(rate).fillna(prior).to_numpy()
    auc = roc_auc_score(y, score)
    return float(max(auc, 1 - auc))


def _one_class_groups(
    groups: pd.Series, y: np.ndarray, min_expected: float
) -> list[tuple[str, int, int, float]]:
    """Groups whose rows are all of one class although the other was expected often enough.

    Returns (group, rows, class seen, expected rows of the missing class).
    """
    base = float(np.mean(y))
    frame = pd.DataFrame({"g": groups.astype(str).to_numpy(), "y": y})
    stats = frame.groupby("g")["y"].agg(["sum", "count"])
    out = []
    for group, row in stats.iterrows():
        n, wins = int(row["count"]), int(row["sum"])
        if wins == 0 and n * base >= min_expected:
            out.append((str(group), n, 0, n * base))
        elif wins == n and n * (1 - base) >= min_expected:
            out.append((str(group), n, 1, n * (1 - base)))
    return out


def _missing_in_one_class(
    values: pd.Series, y: np.ndarray, min_expected: float
) -> list[tuple[str, int, int, float]]:
    """`_one_class_groups` of "filled in" against "empty" (nothing when either is absent)."""
    present = values.notna().to_numpy()
    if not 0 < present.sum() < len(present):
        return []
    label = pd.Series(np.where(present, "filled in", "empty"))
    return _one_class_groups(label, y, min_expected)


def _class_word(label: int) -> str:
    return "wins" if label == 1 else "non-wins"


def audit_columns(
    X: pd.DataFrame,
    y: np.ndarray,
    candidates: Collection[str],
    *,
    max_auc: float = 0.9,
    review_auc: float = 0.65,
    min_expected: float = 10.0,
    allow: Collection[str] = (),
    closed_at: pd.Series | None = None,
    timestamps: pd.DataFrame | None = None,
    keys: pd.DataFrame | None = None,
) -> tuple[list[Finding], pd.Series]:
    """Audit the `candidates` columns of X against labels y.

    Args:
        X: one row per labelled example; every feature (candidates and the rest, for comparison).
        y: labels, 1 = won.
        candidates: the columns that could carry post-outcome information (attributes).
        allow: columns vouched for by the user; reported but never flagged.
        closed_at: when each row's unit closed (NaT if open), for the timestamp check.
        timestamps: timestamp columns of each row's unit (never features), for that check.
        keys: join keys of each row's unit (e.g. account_id). A key is no feature, but the
            features built through it are; a key that is only filled in once the outcome is
            known (missing in one class) leaks through all of them.

    Returns the findings and every feature's single-feature AUC (largest first).
    """
    y = np.asarray(y).astype(int)
    allowed = {_snake(a) for a in allow}
    aucs = pd.Series({c: single_feature_auc(X[c], y) for c in X.columns}, dtype=float).sort_values(
        ascending=False
    )
    findings: list[Finding] = []

    def add(column: str, check: str, evidence: str, verdict: str = FLAG) -> None:
        if _snake(column) in allowed:
            verdict = "allowed"
        findings.append(Finding(column, check, evidence, verdict))

    for column in candidates:
        values = X[column]
        auc = aucs[column]
        others = aucs.drop(index=column).dropna()
        best_other = (
            f"{others.iloc[0]:.3f} ({others.index[0]})" if len(others) else "no other feature"
        )
        if auc >= max_auc:
            add(
                column,
                "single_feature_auc",
                f"AUC {auc:.3f} on its own; the best other feature reaches {best_other}",
            )
        for group, n, seen, expected in _missing_in_one_class(values, y, min_expected):
            add(
                column,
                "missing_in_one_class",
                f"{n:,} rows where it is {group} are all {_class_word(seen)} "
                f"(about {expected:.0f} {_class_word(1 - seen)} expected at the base rate)",
            )
        if pd.api.types.is_numeric_dtype(values):
            frequent = values.value_counts().head(20).index
            grouped = values.where(values.isin(frequent)).dropna()
        else:
            grouped = values.dropna()
        pure = (
            _one_class_groups(
                grouped, y[grouped.index.to_numpy()] if len(grouped) else y[:0], min_expected
            )
            if len(grouped)
            else []
        )
        if pure:
            shown = "; ".join(
                f"{g!r}: {n:,} rows, all {_class_word(seen)} (~{e:.0f} {_class_word(1 - seen)} "
                "expected)"
                for g, n, seen, e in pure[:3]
            )
            share = sum(n for _, n, _, _ in pure) / max(len(values), 1)
            add(
                column,
                "value_in_one_class",
                f"{len(pure)} value(s) occur in one class only, {share:.0%} of rows; e.g. {shown}",
            )
        if not pd.api.types.is_numeric_dtype(values):
            text = values.dropna().astype(str)
            spelled = text[
                text.str.lower()
                .str.replace(r"[^0-9a-z]+", "_", regex=True)
                .str.contains(OUTCOME_VALUE)
            ]
            if len(spelled):
                rows = spelled.index.to_numpy()
                win_rate = y[rows].mean()
                skew = abs(win_rate - y.mean()) >= 0.15
                if skew:
                    add(
                        column,
                        "spells_outcome",
                        f"{len(spelled):,} values name an outcome, e.g. "
                        f"{', '.join(map(repr, spelled.drop_duplicates().head(3)))}; their win "
                        f"rate is {win_rate:.0%} against {y.mean():.0%} overall",
                    )
        if LATER_STATE_NAME.search(_snake(column)) and auc >= review_auc:
            add(
                column,
                "later_state",
                f"its name {column!r} says it holds a later state or someone's judgement, and it "
                f"is strong on its own (AUC {auc:.3f}; best other feature {best_other})",
            )
        if OUTCOME_NAME.search(_snake(column)):
            flagged = any(f.column == column and f.verdict == FLAG for f in findings)
            add(
                column,
                "spells_outcome",
                f"its name {column!r} reads like an outcome field"
                + ("" if flagged else f"; no data evidence (AUC {auc:.3f}): please review"),
                FLAG if flagged else REVIEW,
            )

    for column in keys.columns if keys is not None else ():
        for group, n, seen, expected in _missing_in_one_class(keys[column], y, min_expected):
            add(
                column,
                "missing_in_one_class",
                f"{n:,} rows where the key is {group} are all {_class_word(seen)} (about "
                f"{expected:.0f} {_class_word(1 - seen)} expected): every feature built "
                "through it leaks",
            )

    if timestamps is not None and closed_at is not None:
        closed = closed_at.notna().to_numpy()
        for column in timestamps.columns:
            stamps = timestamps[column]
            both = closed & stamps.notna().to_numpy()
            if both.sum() < 20:
                continue
            after = (stamps[both] >= closed_at[both] - pd.Timedelta(days=1)).mean()
            if after >= 0.5:
                add(
                    column,
                    "timestamp_after_outcome",
                    f"{after:.0%} of {int(both.sum()):,} closed units have it on or after the "
                    "close (within a day)",
                )
    return findings, aucs


def flagged_columns(findings: list[Finding]) -> list[str]:
    """Columns with at least one finding backed by data (not review-only, not allowed)."""
    seen: dict[str, None] = {}
    for finding in findings:
        if finding.verdict == FLAG:
            seen.setdefault(finding.column, None)
    return list(seen)
