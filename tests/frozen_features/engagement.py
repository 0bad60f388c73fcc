"""`engagement_features` before issue 16 (frozen reference)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from leadscore.features.engagement import (
    ACTIVITY_TYPES,
    HIGH_VALUE_TYPES,
    NS_PER_DAY,
    TREND_PRIOR_DAYS,
    TREND_RECENT_DAYS,
)
from leadscore.features.tables import CrmTables, utc_datetime64


def engagement_features(
    tables: CrmTables,
    spine: pd.DataFrame,
    windows_days: Sequence[int],
    half_life_days: float,
    recency_cap_days: int,
    activity_types: Sequence[str] = ACTIVITY_TYPES,
    high_value_types: Sequence[str] = HIGH_VALUE_TYPES,
) -> pd.DataFrame:
    """Engagement per (lead_id, cutoff) from activities strictly before each cutoff.

    Columns: `act_<type>_<w>d` counts per known type (unknown types count as `other`),
    `act_total_<w>d`, `act_high_value_<w>d`, `days_since_last_activity` (NaN when nothing in the
    last `recency_cap_days`), `engagement_decay` (each activity weighs 0.5 ** (age / half life))
    and `engagement_trend` (log ratio of the last 30 days' rate to the 60 days before).
    Activity types are expected already normalised (see `features.tables.clean`).
    """
    types = [*activity_types, "other"]
    n_types = len(types)
    high = np.isin(np.array(types), list(high_value_types))
    lookback_days = max(recency_cap_days, max(windows_days), TREND_RECENT_DAYS + TREND_PRIOR_DAYS)

    acts = tables.activities
    times = utc_datetime64(acts["occurred_at"]).view(np.int64)
    order = np.argsort(times, kind="stable")
    times = times[order]
    act_leads = acts["lead_id"].to_numpy()[order]
    type_code = pd.Index(types).get_indexer(acts["activity_type"].to_numpy()[order])
    type_code = np.where(type_code < 0, n_types - 1, type_code)  # unknown types count as other

    columns = [f"act_{t}_{w}d" for w in windows_days for t in types]
    columns += [f"act_total_{w}d" for w in windows_days]
    columns += [f"act_high_value_{w}d" for w in windows_days]
    columns += ["days_since_last_activity", "engagement_decay", "engagement_trend"]
    blocks = []
    for cutoff, group in spine.groupby("cutoff", sort=True):
        c = pd.Timestamp(cutoff).as_unit("ns").value
        lo = np.searchsorted(times, c - lookback_days * NS_PER_DAY, side="left")
        hi = np.searchsorted(times, c, side="left")  # strictly before the cutoff
        lead_index = pd.Index(group["lead_id"].to_numpy())
        n = len(lead_index)
        code = lead_index.get_indexer(act_leads[lo:hi])
        keep = code >= 0
        code = code[keep]
        age_days = (c - times[lo:hi][keep]) / NS_PER_DAY
        kind = type_code[lo:hi][keep]

        values: dict[str, np.ndarray] = {}
        for w in windows_days:
            inside = age_days < w
            counts = np.bincount(code[inside] * n_types + kind[inside], minlength=n * n_types)
            counts = counts.reshape(n, n_types).astype("float64")
            for j, t in enumerate(types):
                values[f"act_{t}_{w}d"] = counts[:, j]
            values[f"act_total_{w}d"] = counts.sum(axis=1)
            values[f"act_high_value_{w}d"] = counts[:, high].sum(axis=1)

        youngest = np.full(n, np.inf)
        np.minimum.at(youngest, code, age_days)
        values["days_since_last_activity"] = np.where(youngest < recency_cap_days, youngest, np.nan)
        decay = np.power(0.5, age_days / half_life_days)
        # float even when nothing falls in the lookback (bincount of nothing is int64)
        values["engagement_decay"] = np.bincount(code, weights=decay, minlength=n).astype(float)
        recent = np.bincount(code[age_days < TREND_RECENT_DAYS], minlength=n)
        prior_mask = (age_days >= TREND_RECENT_DAYS) & (
            age_days < TREND_RECENT_DAYS + TREND_PRIOR_DAYS
        )
        prior = np.bincount(code[prior_mask], minlength=n)
        per_month_prior = prior * TREND_RECENT_DAYS / TREND_PRIOR_DAYS
        values["engagement_trend"] = np.log((recent + 1) / (per_month_prior + 1))
        index = pd.MultiIndex.from_frame(group[["lead_id", "cutoff"]])
        blocks.append(pd.DataFrame(values, index=index)[columns])
    if not blocks:
        empty = pd.MultiIndex.from_arrays(
            [[], pd.DatetimeIndex([], tz="UTC")], names=["lead_id", "cutoff"]
        )
        return pd.DataFrame(columns=columns, index=empty, dtype="float64")
    return pd.concat(blocks)
