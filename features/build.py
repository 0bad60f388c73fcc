"""One call that builds every feature family for a spine of (lead_id, cutoff) rows."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import pandas as pd

from leadscore.features.account_history import ACCOUNT_HISTORY_INFO, account_history_features
from leadscore.features.attributes import attribute_features, attribute_info
from leadscore.features.descriptions import FeatureInfo
from leadscore.features.engagement import (
    ACTIVITY_TYPES,
    HIGH_VALUE_TYPES,
    engagement_features,
    engagement_info,
)
from leadscore.features.opportunity import OPPORTUNITY_INFO, opportunity_features
from leadscore.features.tables import CrmTables


@dataclass(frozen=True)
class FeatureSpec:
    """How features are built; the same spec must be used to train and to score."""

    windows_days: Sequence[int] = (7, 30, 90)
    half_life_days: float = 14.0
    recency_cap_days: int = 365
    skip_columns: Collection[str] = ()
    # strict mode: only these lead and account columns become attribute features (None: all)
    known_at_creation: Collection[str] | None = None
    activity_types: Sequence[str] = ACTIVITY_TYPES
    high_value_types: Sequence[str] = HIGH_VALUE_TYPES


def build_features(tables: CrmTables, spine: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Features for each spine row, indexed by (lead_id, cutoff) in spine order.

    Every builder only reads rows stamped strictly before the row's cutoff, and returns one
    row per spine row, in spine order.
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
    # each builder returns the spine's rows in spine order: one index, no realignment
    index = pd.MultiIndex.from_frame(spine[["lead_id", "cutoff"]])
    return pd.concat([p.set_axis(index) for p in parts], axis=1)


def feature_info(
    tables: CrmTables, spec: FeatureSpec, names: Collection[str] | None = None
) -> dict[str, FeatureInfo]:
    """What each feature `build_features` makes from these tables is, for people (how to word
    its values), limited to `names` when given."""
    infos = {
        **attribute_info(tables, spec.skip_columns, names, spec.known_at_creation),
        **engagement_info(
            spec.windows_days, spec.half_life_days, spec.recency_cap_days, spec.activity_types
        ),
        **OPPORTUNITY_INFO,
        **ACCOUNT_HISTORY_INFO,
    }
    return infos if names is None else {n: infos[n] for n in names if n in infos}
