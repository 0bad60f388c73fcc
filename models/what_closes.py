"""What marketing learns from what closes: which kinds of leads and which activities precede
won deals.

Per value of every attribute the model uses (source, campaign, industry, title...) and per
activity type (done at least once in the window before the moment, or not), from the leads
marketing held: how many there were, how many were won within the window, the win rate with its
Wilson 95% interval, and the lift over all of marketing's leads. Each lead counts once (its first
snapshot), so a lead open at many cutoffs weighs no more than another. Beside it, the model's
average contribution to the lead's log-odds for that value, from TreeSHAP on the holdout: what
the value adds once everything else about the lead is known.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from leadscore.features.families import feature_family
from leadscore.models.handoff_outcomes import wilson

ACTIVITY = re.compile(r"^act_(?P<type>.+)_(?P<days>\d+)d$")
MISSING = "(not filled in)"


def _activity_columns(columns: list[str]) -> list[str]:
    """One window per activity type (30 days when built, else the longest), per type."""
    found: dict[str, dict[int, str]] = {}
    for column in columns:
        match = ACTIVITY.match(column)
        if match and match["type"] not in ("total", "high_value"):
            found.setdefault(match["type"], {})[int(match["days"])] = column
    return [days.get(30, days[max(days)]) for days in found.values()]


def _buckets(X: pd.DataFrame, columns: list[str], activities: list[str]) -> dict[str, pd.Series]:
    """Per feature, each row's bucket in words-ready form: the category, or any/none."""
    out = {}
    for column in columns:
        values = X[column]
        if column in activities:
            out[column] = pd.Series(
                np.where(values.fillna(0).to_numpy() > 0, "at least once", "not once"),
                index=X.index,
            )
        elif values.dtype == object:
            out[column] = values.astype(object).where(values.notna(), MISSING)
    return out


def what_closes(
    X: pd.DataFrame,
    rows: pd.DataFrame,
    holdout_X: pd.DataFrame,
    contributions: pd.DataFrame,
    describe: Callable[[str, object], str],
    min_leads: int = 30,
) -> pd.DataFrame:
    """The table (see the module): `X`/`rows` (lead_id, label) are the labelled examples of
    marketing's leads, `holdout_X`/`contributions` the holdout's features and TreeSHAP values."""
    first = ~rows["lead_id"].duplicated().to_numpy()
    X1, y = X[first].reset_index(drop=True), rows.loc[first, "label"].to_numpy()
    base = float(y.mean()) if len(y) else np.nan
    columns = [c for c in X.columns if feature_family(c) == "fit" or ACTIVITY.match(c)]
    activities = _activity_columns(list(X.columns))
    columns = [c for c in columns if not ACTIVITY.match(c) or c in activities]
    buckets = _buckets(X1, columns, activities)
    held = _buckets(holdout_X.reset_index(drop=True), columns, activities)
    parts = []
    for column, bucket in buckets.items():
        frame = pd.DataFrame({"value": bucket.to_numpy(), "won": y})
        grouped = frame.groupby("value")["won"].agg(["size", "sum"])
        grouped = grouped[grouped["size"] >= min_leads]
        if grouped.empty:
            continue
        rate, low, high = wilson(grouped["sum"].to_numpy(), grouped["size"].to_numpy())
        shap = (
            pd.DataFrame(
                {
                    "value": held[column].to_numpy(),
                    "c": contributions[column].to_numpy() if column in contributions else 0.0,
                }
            )
            .groupby("value")["c"]
            .mean()
        )
        parts.append(
            pd.DataFrame(
                {
                    "feature": column,
                    "kind": "activity" if column in activities else "attribute",
                    "value": grouped.index.astype(str),
                    "in_words": [
                        _words(describe, column, v, column in activities) for v in grouped.index
                    ],
                    "leads": grouped["size"].to_numpy(),
                    "won": grouped["sum"].to_numpy(),
                    "win_rate": rate,
                    "win_rate_low": low,
                    "win_rate_high": high,
                    "lift": rate / base if base else np.nan,
                    "model_contribution": shap.reindex(grouped.index).to_numpy(),
                }
            )
        )  # fmt: skip
    if not parts:
        return pd.DataFrame()
    table = pd.concat(parts, ignore_index=True)
    return table.sort_values(["lift", "leads"], ascending=[False, False]).reset_index(drop=True)


def _words(
    describe: Callable[[str, object], str], column: str, value: object, activity: bool
) -> str:
    if activity:  # "Requested a demo 1 time in the last 30 days" -> "... at least once ..."
        said = describe(column, 1).replace(" 1 time", " at least once", 1)
        return said if value == "at least once" else f"Not: {said[0].lower()}{said[1:]}"
    if value == MISSING:
        return f"{describe(column, 'x').split(':')[0]}: {MISSING}"
    return describe(column, value)
