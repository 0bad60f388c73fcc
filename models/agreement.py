"""The table sales and marketing sign: for a range of MQL definitions and weekly capacities,
what handing over leads would have meant on the time-forward holdout.

Each holdout cutoff is a snapshot of the leads marketing held then (a `holdout_fraction` sample
of them). At each cutoff a policy hands over the leads that qualify, highest probability first,
up to the capacity for the weeks until the next cutoff. Per week, the table gives the MQLs, the
win rate and wins the calibrated probabilities expect (with a 95% interval: a sum of
independent Bernoulli outcomes), the wins that really followed within the window (the
realized backtest), the share of all wins the hand-offs captured and the wins left with
marketing. Counts are scaled from the sample to all of marketing's leads.

A simplification, said plainly: a lead open at several holdout cutoffs can be handed over at
each of them, where in practice it would be with sales after the first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadscore.models.scores import assign_grades, to_score

Qualifies = Callable[[np.ndarray], np.ndarray]  # probabilities at one cutoff -> MQL or not
Z95 = 1.959964


@dataclass(frozen=True)
class Policy:
    """One row of the table: who qualifies, and how many a week sales can take."""

    label: str
    qualifies: Qualifies
    capacity_per_week: int | None
    agreed: bool = False


def weeks_between(cutoffs: pd.Series) -> float:
    """The typical spacing of the holdout's cutoffs, in weeks (a month: about 4.35)."""
    moments = pd.DatetimeIndex(pd.to_datetime(cutoffs, utc=True).unique()).sort_values()
    if len(moments) < 2:
        return 30.4 / 7
    return float(np.median(moments[1:] - moments[:-1]) / pd.Timedelta(days=7))


def policy_rows(
    holdout: pd.DataFrame, policies: list[Policy], holdout_fraction: float
) -> pd.DataFrame:
    """One row per policy: per week MQLs, expected and realized win rate and wins with their
    intervals, the share of wins captured, and the wins left with marketing."""
    weeks = weeks_between(holdout["cutoff"])
    cutoffs = holdout["cutoff"].nunique()
    scale = 1.0 / (holdout_fraction * cutoffs * weeks)  # sample rows -> leads per week
    p_all = holdout["probability"].to_numpy(dtype=float)
    y_all = holdout["label"].to_numpy(dtype=float)
    rows = []
    for policy in policies:
        handed = _handed(holdout, policy, weeks, holdout_fraction)
        p, y = p_all[handed], y_all[handed]
        n = int(handed.sum())
        spread = float(np.sqrt(np.sum(p * (1 - p))))
        expected = float(p.sum())
        rows.append(
            {
                "policy": policy.label,
                "agreed": policy.agreed,
                "capacity_per_week": policy.capacity_per_week,
                "mqls_per_week": n * scale,
                "expected_win_rate": expected / n if n else np.nan,
                "expected_win_rate_low": max(expected - Z95 * spread, 0) / n if n else np.nan,
                "expected_win_rate_high": (expected + Z95 * spread) / n if n else np.nan,
                "realized_win_rate": float(y.mean()) if n else np.nan,
                "expected_wins_per_week": expected * scale,
                "expected_wins_low": max(expected - Z95 * spread, 0) * scale,
                "expected_wins_high": (expected + Z95 * spread) * scale,
                "realized_wins_per_week": float(y.sum()) * scale,
                "expected_share_of_wins": expected / p_all.sum() if p_all.sum() else np.nan,
                "realized_share_of_wins": float(y.sum()) / y_all.sum() if y_all.sum() else np.nan,
                "wins_left_with_marketing_per_week": float(y_all.sum() - y.sum()) * scale,
                "holdout_mqls": n,
                "holdout_wins": int(y.sum()),
            }
        )
    return pd.DataFrame(rows)


def _handed(
    holdout: pd.DataFrame, policy: Policy, weeks: float, holdout_fraction: float
) -> np.ndarray:
    """Which holdout rows the policy hands over: qualifying, best first, up to the capacity
    of the weeks until the next cutoff (in sample units)."""
    handed = np.zeros(len(holdout), dtype=bool)
    proba = holdout["probability"].to_numpy(dtype=float)
    for _, index in holdout.groupby("cutoff", sort=True).indices.items():
        qualifies = index[policy.qualifies(proba[index])]
        if policy.capacity_per_week is not None:
            room = round(policy.capacity_per_week * weeks * holdout_fraction)
            qualifies = qualifies[np.argsort(-proba[qualifies], kind="stable")[:room]]
        handed[qualifies] = True
    return handed


def within_interval(rows: pd.DataFrame) -> pd.Series:
    """Whether each row's realized wins fall inside the interval its expected wins give."""
    return (rows["realized_wins_per_week"] >= rows["expected_wins_low"] - 1e-9) & (
        rows["realized_wins_per_week"] <= rows["expected_wins_high"] + 1e-9
    )


def policies(
    grade_by: str,
    grades: dict[str, float],
    mql_grades: tuple[str, ...],
    mql_min_score: int | None,
    capacity_per_week: int | None,
    thresholds: tuple[int, ...],
    capacities: tuple[int, ...],
) -> list[Policy]:
    """The agreed policy first, then the same MQL definition at other capacities, then MQL
    by minimum score alone, uncapped: the alternatives the two teams weigh it against."""

    def by_definition(proba: np.ndarray) -> np.ndarray:
        flag = np.isin(assign_grades(proba, grades, grade_by).to_numpy(), list(mql_grades))
        if mql_min_score is not None:
            flag |= to_score(proba) >= mql_min_score
        return flag

    definition = "grade " + "/".join(mql_grades)
    if mql_min_score is not None:
        definition += f" or score >= {mql_min_score}"
    cap = "no cap" if capacity_per_week is None else f"at most {capacity_per_week:,} a week"
    out = [Policy(f"AGREED: {definition}, {cap}", by_definition, capacity_per_week, agreed=True)]
    for capacity in capacities:
        if capacity != capacity_per_week:
            label = f"{definition}, at most {capacity:,} a week"
            out.append(Policy(label, by_definition, capacity))
    if capacity_per_week is not None:
        out.append(Policy(f"{definition}, no cap", by_definition, None))
    for threshold in thresholds:
        out.append(
            Policy(
                f"score >= {threshold}, no cap",
                lambda p, t=threshold: to_score(p) >= t,
                None,
            )
        )
    return out
