"""What the lead has done: activity counts, recency, decay-weighted engagement and trend."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from leadscore.features.descriptions import FeatureInfo
from leadscore.features.tables import CrmTables, grouped_in_time_order, utc_datetime64

ACTIVITY_TYPES = (
    "web_visit",
    "pricing_page_view",
    "email_open",
    "email_click",
    "form_submit",
    "content_download",
    "webinar",
    "demo_request",
    "meeting",
)
HIGH_VALUE_TYPES = ("pricing_page_view", "form_submit", "webinar", "demo_request", "meeting")
NS_PER_DAY = 86_400 * 10**9
TREND_RECENT_DAYS = 30
TREND_PRIOR_DAYS = 60


def unknown_activity_types(activities: pd.DataFrame) -> pd.Series:
    """How many activities have each type outside ACTIVITY_TYPES (they count as `other`)."""
    types = activities["activity_type"]
    return types[~types.isin(ACTIVITY_TYPES)].value_counts()


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

    NumPy segment reductions over integer codes: leads and types are factorised once (no text
    is compared per row), each cutoff selects its lookback by a mask, and every count is one
    `bincount`. The decay is summed per lead in time order, so its value does not depend on
    the order of the export's rows.
    """
    types = [*activity_types, "other"]
    n_types = len(types)
    high = np.isin(np.array(types), list(high_value_types))
    lookback_days = max(recency_cap_days, max(windows_days), TREND_RECENT_DAYS + TREND_PRIOR_DAYS)

    acts = tables.activities
    times = utc_datetime64(acts["occurred_at"]).view(np.int64)
    lead_code, lead_keys = pd.factorize(acts["lead_id"], use_na_sentinel=True)
    type_code = _type_codes(acts["activity_type"], types)
    order = _time_order_within_lead(times, lead_code)
    if order is not None:
        times, lead_code, type_code = times[order], lead_code[order], type_code[order]
    spine_code = pd.Index(lead_keys).get_indexer(spine["lead_id"].to_numpy())

    columns = [f"act_{t}_{w}d" for w in windows_days for t in types]
    columns += [f"act_total_{w}d" for w in windows_days]
    columns += [f"act_high_value_{w}d" for w in windows_days]
    columns += ["days_since_last_activity", "engagement_decay", "engagement_trend"]
    n_windows = len(windows_days)
    totals = n_windows * n_types  # the first column of the totals, then the high-value counts
    out = np.empty((len(spine), len(columns)), dtype="float64")  # rows in spine order
    row_of_lead = np.full(len(lead_keys) + 1, -1, dtype=np.int64)  # code -1 (no lead) -> -1
    for cutoff, rows in spine.groupby("cutoff", sort=True).indices.items():
        c = pd.Timestamp(cutoff).as_unit("ns").value
        n = len(rows)
        codes_here = spine_code[rows]
        has = codes_here >= 0
        row_of_lead[codes_here[has]] = np.flatnonzero(has)
        # strictly before the cutoff, within the lookback
        sel = np.flatnonzero((times >= c - lookback_days * NS_PER_DAY) & (times < c))
        code = row_of_lead[lead_code[sel]]
        row_of_lead[codes_here[has]] = -1
        keep = code >= 0
        sel, code = sel[keep], code[keep]
        age_days = (c - times[sel]) / NS_PER_DAY

        block = np.empty((n, len(columns)), dtype="float64")
        cell = code * n_types + type_code[sel]
        for k, w in enumerate(windows_days):
            counts = np.bincount(cell[age_days < w], minlength=n * n_types).reshape(n, n_types)
            block[:, k * n_types : (k + 1) * n_types] = counts
            block[:, totals + k] = counts.sum(axis=1)
            block[:, totals + n_windows + k] = counts[:, high].sum(axis=1)

        youngest = np.full(n, np.inf)
        np.minimum.at(youngest, code, age_days)
        block[:, -3] = np.where(youngest < recency_cap_days, youngest, np.nan)
        decay = np.power(0.5, age_days / half_life_days)
        block[:, -2] = np.bincount(code, weights=decay, minlength=n)
        recent = np.bincount(code[age_days < TREND_RECENT_DAYS], minlength=n)
        prior_mask = (age_days >= TREND_RECENT_DAYS) & (
            age_days < TREND_RECENT_DAYS + TREND_PRIOR_DAYS
        )
        prior = np.bincount(code[prior_mask], minlength=n)
        per_month_prior = prior * TREND_RECENT_DAYS / TREND_PRIOR_DAYS
        block[:, -1] = np.log((recent + 1) / (per_month_prior + 1))
        if n == len(spine):
            out = block
        else:
            out[rows] = block
    index = pd.MultiIndex.from_frame(spine[["lead_id", "cutoff"]])
    if spine.empty:
        index = pd.MultiIndex.from_arrays(
            [[], pd.DatetimeIndex([], tz="UTC")], names=["lead_id", "cutoff"]
        )
    return pd.DataFrame(out, index=index, columns=columns)


def _type_codes(activity_type: pd.Series, types: list[str]) -> np.ndarray:
    """Each activity's position in `types`; unknown (and missing) types are `other`, the last.
    The text is compared once per distinct type, not per row."""
    codes, labels = pd.factorize(activity_type, use_na_sentinel=True)
    position = pd.Index(types).get_indexer(pd.Index(labels).astype(object))
    position = np.where(position < 0, len(types) - 1, position)
    return np.append(position, len(types) - 1)[codes]  # code -1 (missing) takes the last slot


def _time_order_within_lead(times: np.ndarray, lead_code: np.ndarray) -> np.ndarray | None:
    """A stable order by time, or None when each lead's rows are in time order already (an
    export sorted by time, or by lead then time): sorting millions of rows is then skipped.
    Sums depend on the order of each lead's own rows only, so both give the same values."""
    if len(times) < 2 or (np.diff(times) >= 0).all() or grouped_in_time_order(lead_code, times):
        return None
    return np.argsort(times, kind="stable")


def engagement_info(
    windows_days: Sequence[int],
    half_life_days: float,
    recency_cap_days: int,
    activity_types: Sequence[str] = ACTIVITY_TYPES,
) -> dict[str, FeatureInfo]:
    """How each engagement feature reads: its activity type and window, or its unit."""
    infos = {
        f"act_{t}_{w}d": FeatureInfo("activity_count", window_days=w, activity=t)
        for w in windows_days
        for t in [*activity_types, "other", "total", "high_value"]
    }
    infos["days_since_last_activity"] = FeatureInfo("recency", days=recency_cap_days)
    infos["engagement_decay"] = FeatureInfo("decay", days=half_life_days)
    infos["engagement_trend"] = FeatureInfo("trend")
    return infos
