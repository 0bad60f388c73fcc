"""The canonical CRM tables, the view of them as of a time, and their cleaning."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

TABLE_NAMES = ("accounts", "leads", "activities", "deals")
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": ("account_id",),
    "leads": ("lead_id", "account_id", "created_at"),
    "activities": ("lead_id", "occurred_at", "activity_type"),
    "deals": ("deal_id", "lead_id", "created_at", "closed_at", "outcome"),
}
TIMESTAMP_COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": (),
    "leads": ("created_at",),
    "activities": ("occurred_at",),
    "deals": ("created_at", "closed_at"),
}
OUTCOMES = ("won", "lost")
HISTORY_COLUMNS = ("lead_id", "account_id", "field", "value", "changed_at")


def empty_history() -> pd.DataFrame:
    """An attribute history with no rows: every attribute is untimed."""
    return pd.DataFrame(
        {
            "lead_id": pd.Series([], dtype=object),
            "account_id": pd.Series([], dtype=object),
            "field": pd.Series([], dtype=object),
            "value": pd.Series([], dtype=object),
            "changed_at": pd.Series([], dtype="datetime64[ns, UTC]"),
        }
    )


@dataclass(frozen=True)
class CrmTables:
    """The four canonical tables, and the optional history of lead and account attributes
    (`HISTORY_COLUMNS`: each row sets a lead's or an account's `field` to `value` at
    `changed_at`); timestamps are tz-aware UTC."""

    accounts: pd.DataFrame
    leads: pd.DataFrame
    activities: pd.DataFrame
    deals: pd.DataFrame
    history: pd.DataFrame = field(default_factory=empty_history)


def crm_as_of(tables: CrmTables, as_of: pd.Timestamp) -> CrmTables:
    """What the CRM looked like just before `as_of`: later rows, closes and outcomes are hidden."""
    leads = tables.leads[tables.leads["created_at"] < as_of]
    activities = activities_as_of(tables.activities, as_of)
    deals = tables.deals[tables.deals["created_at"] < as_of].copy()
    not_yet = ~(deals["closed_at"] < as_of)
    deals.loc[not_yet, "closed_at"] = pd.NaT
    deals.loc[not_yet, "outcome"] = None
    history = tables.history[tables.history["changed_at"] < as_of]
    return replace(tables, leads=leads, activities=activities, deals=deals, history=history)


def activities_as_of(activities: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The activities that happened strictly before `as_of`."""
    return activities[activities["occurred_at"] < as_of]


def normalise_label(values: pd.Series) -> pd.Series:
    """Fold case and spacing so 'Paid Search', 'paid search ' and 'PAID-SEARCH' are one category.

    The text work is done once per distinct label (an activity log has millions of rows and a
    dozen types)."""
    codes, labels = pd.factorize(values, use_na_sentinel=True)
    text = pd.Series(labels, dtype="object").astype("string").str.strip().str.lower()
    text = text.str.replace(r"[\s\-/]+", "_", regex=True).replace("", pd.NA)
    out = text.array.take(codes, allow_fill=True)  # code -1 (missing) stays missing
    return pd.Series(out, index=values.index, name=values.name)


def clean(tables: CrmTables) -> CrmTables:
    """Normalise activity types and outcomes; drop repeated activities (same lead, time, type)."""
    deals = tables.deals.assign(outcome=normalise_label(tables.deals["outcome"]))
    return replace(tables, activities=clean_activities(tables.activities), deals=deals)


def clean_activities(activities: pd.DataFrame) -> pd.DataFrame:
    """Activity types normalised, and repeated activities (same lead, time, type) dropped."""
    activities = activities.assign(activity_type=normalise_label(activities["activity_type"]))
    # repeated rows: compared on the type's code, far cheaper than hashing its text
    key = pd.DataFrame(
        {
            "lead_id": pd.factorize(activities["lead_id"])[0],
            "occurred_at": utc_datetime64(activities["occurred_at"]).view(np.int64),
            "type": pd.factorize(activities["activity_type"])[0],
        }
    )
    return activities[~_repeated(key)]


def grouped_in_time_order(lead_code: np.ndarray, moment: np.ndarray) -> bool:
    """Whether rows are grouped by lead, each lead's rows in time order (a loaded log's
    canonical order). `lead_code` from `pd.factorize`: codes rise along grouped rows."""
    same_lead = lead_code[1:] == lead_code[:-1]
    return bool((lead_code[1:] >= lead_code[:-1]).all()) and bool(
        (moment[1:][same_lead] >= moment[:-1][same_lead]).all()
    )


def _repeated(key: pd.DataFrame) -> np.ndarray:
    """`key.duplicated()` (integer columns: lead code, time, type code), without hashing every
    row when the rows are grouped by lead in time order (a loaded log's canonical order): a
    repeat then has the same lead and time as its neighbour, so only those runs are compared."""
    lead, moment = key["lead_id"].to_numpy(), key["occurred_at"].to_numpy()
    if len(key) < 2:
        return np.zeros(len(key), dtype=bool)
    if not grouped_in_time_order(lead, moment):
        return key.duplicated().to_numpy()
    tie = (lead[1:] == lead[:-1]) & (moment[1:] == moment[:-1])
    candidate = np.zeros(len(key), dtype=bool)
    candidate[1:] |= tie
    candidate[:-1] |= tie
    out = np.zeros(len(key), dtype=bool)
    rows = np.flatnonzero(candidate)
    if len(rows):
        out[rows] = key.iloc[rows].duplicated().to_numpy()
    return out


def snake_case(name: str) -> str:
    """A column-name-safe form of a label."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def lookup(values: pd.Series, keys: pd.Series) -> pd.Series:
    """`values` (indexed by a unique key) looked up for each of `keys`; missing keys give NaN/NaT.

    Unlike `keys.map(values)` this keeps the dtype when `values` is empty (pandas 3 cannot map an
    empty datetime Series).
    """
    found = values.reindex(keys.to_numpy())
    found.index = keys.index
    return found.rename(keys.name)


def utc_datetime64(values: pd.Series | pd.Index) -> np.ndarray:
    """Timestamps as a numpy datetime64[ns] array in UTC (NaT stays NaT, and compares False)."""
    values = pd.Series(values) if isinstance(values, pd.Index) else values
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.to_numpy(dtype="datetime64[ns]")
