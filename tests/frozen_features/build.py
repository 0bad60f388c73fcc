"""`build_features` before issue 16 (frozen reference), composed of the frozen builders."""

from __future__ import annotations

import pandas as pd

from frozen_features.account_history import account_history_features
from frozen_features.attributes import attribute_features
from frozen_features.engagement import engagement_features
from leadscore.features.build import FeatureSpec
from leadscore.features.opportunity import opportunity_features
from leadscore.features.tables import CrmTables


def build_features(tables: CrmTables, spine: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Features for each spine row, indexed by (lead_id, cutoff) in spine order.

    Every builder only reads rows stamped strictly before the row's cutoff.
    """
    parts = [
        attribute_features(tables, spine, spec.skip_columns, spec.known_at_creation),
        engagement_features(
            tables,
            spine,
            spec.windows_days,
            spec.half_life_days,
            spec.recency_cap_days,
            spec.activity_types,
            spec.high_value_types,
        ),
        opportunity_features(tables, spine),
        account_history_features(tables, spine),
    ]
    index = pd.MultiIndex.from_frame(spine[["lead_id", "cutoff"]])
    return pd.concat([p.reindex(index) for p in parts], axis=1)
