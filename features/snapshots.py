"""Point-in-time training snapshots: who was open at each cutoff, and what happened next."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscore.features.tables import CrmTables, lookup, utc_datetime64

DAY = pd.Timedelta(days=1)


def lead_outcomes(deals: pd.DataFrame) -> pd.DataFrame:
    """Per lead: when it first closed (won or lost) and when it was first won; NaT if never."""
    closed = deals.dropna(subset=["closed_at"])
    first_close = closed.groupby("lead_id")["closed_at"].min()
    first_win = closed[closed["outcome"] == "won"].groupby("lead_id")["closed_at"].min()
    return pd.DataFrame({"closed_at": first_close, "won_at": first_win})


def cutoff_schedule(
    tables: CrmTables, frequency: str, start_days: int, until: pd.Timestamp
) -> pd.DatetimeIndex:
    """Regular cutoffs from `start_days` after the first lead up to and including `until`."""
    if tables.leads.empty:
        return pd.DatetimeIndex([], tz="UTC")
    first = tables.leads["created_at"].min() + pd.Timedelta(days=start_days)
    return pd.date_range(first, until, freq=frequency, tz="UTC", normalize=True).rename("cutoff")


def open_leads(
    tables: CrmTables, cutoffs: pd.DatetimeIndex, max_age_days: int | None
) -> pd.DataFrame:
    """Every (lead_id, cutoff) where the lead was created before the cutoff and not yet closed.

    A lead is closed once any of its deals has closed (won or lost) strictly before the cutoff.
    Leads older than `max_age_days` at the cutoff are stale and left out.
    """
    leads = tables.leads[["lead_id", "created_at"]]
    closed_at = lead_outcomes(tables.deals)["closed_at"]
    closed = lookup(closed_at, leads["lead_id"])
    created = utc_datetime64(leads["created_at"])
    closed_values = utc_datetime64(closed)
    blocks = []
    for cutoff in cutoffs:
        c = cutoff.tz_convert("UTC").tz_localize(None).to_datetime64()
        is_open = (created < c) & ~(closed_values < c)
        if max_age_days is not None:
            is_open &= created >= c - np.timedelta64(max_age_days, "D")
        blocks.append(
            pd.DataFrame({"lead_id": leads["lead_id"].to_numpy()[is_open], "cutoff": cutoff})
        )
    if not blocks:
        return pd.DataFrame(
            {"lead_id": leads["lead_id"].iloc[:0], "cutoff": pd.DatetimeIndex([], tz="UTC")}
        )
    return pd.concat(blocks, ignore_index=True)


def label_snapshots(
    spine: pd.DataFrame, deals: pd.DataFrame, window_days: int, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Label each open lead 1 if won within the window after its cutoff, else 0.

    Rows whose window has not fully passed by `as_of` are dropped: their label is not known yet.
    `deals` must already be the as-of view (no close or outcome at or after `as_of`).
    """
    window = pd.Timedelta(days=window_days)
    known = spine[spine["cutoff"] + window <= as_of]
    won_at = lookup(lead_outcomes(deals)["won_at"], known["lead_id"])
    label = (won_at >= known["cutoff"]) & (won_at < known["cutoff"] + window)
    return known.assign(label=label.astype(np.int8).to_numpy())


def _lead_fraction(lead_ids: pd.Series, seed: int) -> np.ndarray:
    """A stable pseudo-random number in [0, 1) per lead id, independent of row order."""
    hashed = pd.util.hash_pandas_object(lead_ids.astype(str), index=False, hash_key=f"{seed:016d}")
    return (hashed.to_numpy() >> np.uint64(11)) / float(2**53)


SPLITS = ("train", "valid", "calibration", "holdout")


def assign_splits(
    spine: pd.DataFrame,
    valid_cutoffs: int,
    holdout_cutoffs: int,
    valid_lead_fraction: float,
    calibration_lead_fraction: float,
    holdout_lead_fraction: float,
    seed: int = 0,
    created_at: pd.Series | None = None,
    max_age_days: int | None = None,
) -> pd.Series:
    """Split snapshot rows into train / valid / calibration / holdout, no lead in two splits.

    The newest `holdout_cutoffs` cutoffs hold the holdout; the `valid_cutoffs` before them hold
    the validation slice (early stopping) and the calibration slice; older cutoffs train. Each
    lead is drawn once, by a hash of its id, into the holdout, valid, calibration or train group,
    so every slice is a random sample of the leads open at its cutoffs and membership never
    depends on outcomes. Train rows come from the train group, plus any lead too old to be open
    at the first validation cutoff (known from `created_at` and `max_age_days`, never from the
    outcome). Rows that fit nowhere get no split (NaN).
    """
    cutoff = utc_datetime64(spine["cutoff"])
    cutoffs = np.unique(cutoff)
    if len(cutoffs) < valid_cutoffs + holdout_cutoffs + 1:
        raise ValueError(
            f"only {len(cutoffs)} labelled cutoffs; need at least "
            f"{valid_cutoffs + holdout_cutoffs + 1} (train + {valid_cutoffs} valid + "
            f"{holdout_cutoffs} holdout)"
        )
    holdout_start = cutoffs[-holdout_cutoffs]
    valid_start = cutoffs[-(holdout_cutoffs + valid_cutoffs)]
    draw = _lead_fraction(spine["lead_id"], seed)
    bounds = np.cumsum([holdout_lead_fraction, valid_lead_fraction, calibration_lead_fraction])
    group = np.searchsorted(
        bounds, draw, side="right"
    )  # 0 holdout, 1 valid, 2 calibration, 3 train
    in_later_period = cutoff >= valid_start
    in_holdout_period = cutoff >= holdout_start
    train_lead = group == 3
    if created_at is not None and max_age_days is not None:
        too_old = utc_datetime64(created_at) < valid_start - np.timedelta64(max_age_days, "D")
        train_lead |= too_old
    conditions = [
        ~in_later_period & train_lead,
        in_later_period & ~in_holdout_period & (group == 1),
        in_later_period & ~in_holdout_period & (group == 2),
        in_holdout_period & (group == 0),
    ]
    split = np.select(conditions, list(SPLITS), default="")
    return pd.Series(split, index=spine.index, name="split").replace("", np.nan)
