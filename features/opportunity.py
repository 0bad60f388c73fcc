"""Whether the lead already has an open opportunity at the cutoff, and since when."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscore.features.descriptions import FeatureInfo
from leadscore.features.tables import CrmTables, lookup, utc_datetime64

OPPORTUNITY_INFO = {
    "has_open_deal": FeatureInfo("open_deal"),
    "days_since_deal_created": FeatureInfo("deal_age"),
}


def opportunity_features(tables: CrmTables, spine: pd.DataFrame) -> pd.DataFrame:
    """`has_open_deal` and `days_since_deal_created` from deals created strictly before the cutoff.

    Open leads have no deal closed before the cutoff, so any earlier deal is still open then.
    """
    deals = tables.deals[["lead_id", "created_at"]].dropna()
    first_deal = deals.groupby("lead_id")["created_at"].min()
    created = utc_datetime64(lookup(first_deal, spine["lead_id"]))
    cutoff = utc_datetime64(spine["cutoff"])
    before = created < cutoff  # NaT compares False
    days = np.where(before, (cutoff - created) / np.timedelta64(1, "D"), np.nan)
    index = pd.MultiIndex.from_frame(spine[["lead_id", "cutoff"]])
    return pd.DataFrame(
        {"has_open_deal": before.astype("float64"), "days_since_deal_created": days.astype(float)},
        index=index,
    )
