"""What the shape of an export means for the steps: the one place that knows time-stamped data
from data without timestamps.

- timed (shapes events and unit): the CRM as of a time, point-in-time snapshots, open leads are
  those created before it and not yet closed;
- flat: one row per lead with an outcome and no timestamps: no as-of view, a stratified random
  split, attributes only, and the leads to score are those without an outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from leadscore.features.build import FeatureSpec
from leadscore.features.lifecycle import LifecycleRule
from leadscore.features.snapshots import open_leads
from leadscore.features.tables import CrmTables, clean, crm_as_of
from leadscore.features.training_set import (
    FeatureBuilder,
    SnapshotRules,
    SplitRules,
    TrainingSet,
    flat_features,
    flat_training_set,
    timed_training_set,
)

NO_TIMESTAMPS = (
    "NO TIMESTAMPS: shape 'flat' cannot build point-in-time snapshots. The split is a stratified "
    "random split of leads (or, with split.order_by, the newest rows are the holdout), not "
    "snapshots in time: holdout metrics say how well the model ranks leads like these, and "
    "attributes filled in after the outcome cannot be told apart by time (the leakage audit is "
    "the only guard)."
)


@dataclass(frozen=True)
class Timed:
    """Shapes events and unit: everything has a time."""

    name: str
    point_in_time = True
    split_method = "time-forward"
    caveat = None

    def as_of_view(self, raw: CrmTables, as_of: pd.Timestamp) -> CrmTables:
        return clean(crm_as_of(raw, as_of))

    def open_spine(self, tables: CrmTables, as_of: pd.Timestamp) -> pd.DataFrame:
        return open_leads(tables, pd.DatetimeIndex([as_of], name="cutoff"), None)

    def training_set(
        self,
        tables: CrmTables,
        snapshots: SnapshotRules,
        split: SplitRules,
        spec: FeatureSpec,
        as_of: pd.Timestamp,
        features: FeatureBuilder,
        lifecycle: LifecycleRule | None = None,
    ) -> TrainingSet:
        return timed_training_set(tables, snapshots, split, spec, as_of, features, lifecycle)

    def features(
        self, tables: CrmTables, spine: pd.DataFrame, spec: FeatureSpec, build: FeatureBuilder
    ) -> pd.DataFrame:
        return build(tables, spine, spec).reset_index(drop=True)

    def nothing_open(self, as_of: pd.Timestamp) -> str:
        return f"no open leads at {as_of:%Y-%m-%d %H:%M}"

    def like_training(
        self, tables: CrmTables, spine: pd.DataFrame, as_of: pd.Timestamp, max_age: int | None
    ) -> tuple[pd.DataFrame, float]:
        """The open leads no older than training ever saw, and the share that were older."""
        if max_age is None or spine.empty:
            return spine, 0.0
        created = tables.leads.set_index("lead_id")["created_at"].reindex(spine["lead_id"])
        young = (created >= as_of - pd.Timedelta(days=max_age)).to_numpy()
        return spine[young], float(1 - young.mean())


@dataclass(frozen=True)
class Flat:
    """Shape flat: one row per lead, an outcome, no time."""

    name: str = "flat"
    point_in_time = False
    split_method = "stratified random"
    caveat = NO_TIMESTAMPS

    def as_of_view(self, raw: CrmTables, as_of: pd.Timestamp) -> CrmTables:
        return clean(raw)

    def open_spine(self, tables: CrmTables, as_of: pd.Timestamp) -> pd.DataFrame:
        open_ids = tables.leads.loc[tables.leads["outcome"].isna(), "lead_id"]
        return pd.DataFrame({"lead_id": open_ids.to_numpy(), "cutoff": as_of})

    def training_set(
        self,
        tables: CrmTables,
        snapshots: SnapshotRules,
        split: SplitRules,
        spec: FeatureSpec,
        as_of: pd.Timestamp,
        features: FeatureBuilder,
        lifecycle: LifecycleRule | None = None,
    ) -> TrainingSet:
        return flat_training_set(tables, split, spec, as_of)

    def features(
        self, tables: CrmTables, spine: pd.DataFrame, spec: FeatureSpec, build: FeatureBuilder
    ) -> pd.DataFrame:
        return flat_features(tables, spine, spec)

    def nothing_open(self, as_of: pd.Timestamp) -> str:
        return "no lead without an outcome (shape flat scores the leads whose outcome is empty)"

    def like_training(
        self, tables: CrmTables, spine: pd.DataFrame, as_of: pd.Timestamp, max_age: int | None
    ) -> tuple[pd.DataFrame, float]:
        return spine, 0.0


Shape = Timed | Flat


def shape_for(name: str) -> Shape:
    """The shape named in the config (events, unit or flat)."""
    return Flat() if name == "flat" else Timed(name)
