"""The closed loop: what happened to the leads marketing handed over, and to those it kept.

A hand-off is a lead's crossing into MQL in a score batch (the score changes). What happened
next is read from the CRM as it is now: sales accepted it (SQL) or not within the SLA, and it
was won, lost or is still open. Past MQLs are compared with the leads of the same batches that
marketing held but did not hand over: the comparison that settles who was right.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscore.features.tables import lookup

WON, LOST, OPEN_WITH_SALES, MISSED_SLA, WAITING, NOT_ACCEPTED = (
    "won",
    "lost",
    "accepted, still open",
    "not accepted within the SLA",
    "within the SLA, not yet accepted",
    "not accepted, closed",
)
OUTCOMES = (WON, LOST, OPEN_WITH_SALES, MISSED_SLA, WAITING, NOT_ACCEPTED)


def wilson(successes: np.ndarray, n: np.ndarray, z: float = 1.959964) -> tuple[np.ndarray, ...]:
    """The Wilson 95% interval of a rate (NaN where n is 0)."""
    successes, n = np.asarray(successes, float), np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = successes / n
        centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return rate, centre - half, centre + half


def hand_off_outcomes(
    handoffs: pd.DataFrame,
    accepted_at: pd.Series,
    outcomes: pd.DataFrame,
    now: pd.Timestamp,
    sla_days: int,
) -> pd.DataFrame:
    """Per hand-off (lead_id, as_of, grade): when sales accepted it, and what happened next.

    `accepted_at` and `outcomes` (closed_at, won_at) are per lead id, as the CRM says now."""
    out = handoffs.copy()
    at = pd.to_datetime(out["as_of"], utc=True)
    accepted = pd.to_datetime(lookup(accepted_at, out["lead_id"]), utc=True)
    closed = pd.to_datetime(lookup(outcomes["closed_at"], out["lead_id"]), utc=True)
    won = pd.to_datetime(lookup(outcomes["won_at"], out["lead_id"]), utc=True)
    sla = pd.Timedelta(days=sla_days)
    accepted_after = accepted.notna() & (accepted >= at - pd.Timedelta(days=1))
    on_time = accepted_after & (accepted <= at + sla)
    conditions = [
        won.notna() & (won >= at),
        closed.notna() & (closed >= at) & accepted_after,
        accepted_after,
        closed.notna() & (closed >= at),
        now <= at + sla,
    ]
    out["outcome"] = np.select(
        conditions, [WON, LOST, OPEN_WITH_SALES, NOT_ACCEPTED, WAITING], default=MISSED_SLA
    )
    out["accepted_within_sla"] = on_time.to_numpy()
    out["days_to_accept"] = ((accepted - at).dt.total_seconds() / 86_400).where(accepted_after)
    out["week"] = at.dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period("W").dt.start_time
    return out


def outcome_table(rows: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per `by` (grade or week): hand-offs, the share of each outcome, accepted within the
    SLA, and the win rate with its interval."""
    counts = pd.crosstab(rows[by], rows["outcome"]).reindex(columns=list(OUTCOMES), fill_value=0)
    n = counts.sum(axis=1)
    table = counts.div(n, axis=0)
    table.insert(0, "handed_over", n)
    table["accepted_within_sla"] = rows.groupby(by)["accepted_within_sla"].mean()
    rate, low, high = wilson(counts[WON].to_numpy(), n.to_numpy())
    table["win_rate"], table["win_rate_low"], table["win_rate_high"] = rate, low, high
    return table


def compared_with_kept(
    handed: pd.DataFrame, kept: pd.DataFrame, outcomes: pd.DataFrame, window_days: int
) -> pd.DataFrame:
    """Win rates within the window after the batch: the leads handed over against the leads
    marketing held in the same batches and kept; with intervals and the lift."""
    window = pd.Timedelta(days=window_days)
    rows = []
    for name, frame in (("handed over (MQL)", handed), ("kept by marketing", kept)):
        at = pd.to_datetime(frame["as_of"], utc=True)
        won = pd.to_datetime(lookup(outcomes["won_at"], frame["lead_id"]), utc=True)
        wins = int(((won >= at) & (won < at + window)).sum())
        rate, low, high = wilson(np.array([wins]), np.array([len(frame)]))
        rows.append(
            {
                "leads": name,
                "n": len(frame),
                "won": wins,
                "win_rate": rate[0],
                "win_rate_low": low[0],
                "win_rate_high": high[0],
            }
        )
    table = pd.DataFrame(rows).set_index("leads")
    base = table["win_rate"].iloc[1]
    table["lift"] = table["win_rate"] / base if base and base == base else np.nan
    return table
