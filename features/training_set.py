"""The labelled examples a model learns from: snapshots, labels, splits, features, screening.

Two ways, one per kind of export. Time-stamped data (shapes events and unit) give point-in-time
snapshots: each lead open at each cutoff, labelled by what happened in the window after it, and
split by time and by a hash of the lead. An export without timestamps (shape flat) gives one
example per lead with a known outcome, split at random within each class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import pandas as pd

from leadscore.features.attributes import attribute_features, history_fields
from leadscore.features.build import FeatureSpec
from leadscore.features.lifecycle import MARKETING, LifecycleRule, lead_stages
from leadscore.features.screening import screen_columns
from leadscore.features.snapshots import (
    SPLITS,
    assign_splits,
    cutoff_schedule,
    label_snapshots,
    open_leads,
)
from leadscore.features.tables import CrmTables, lookup

FeatureBuilder = Callable[[CrmTables, pd.DataFrame, FeatureSpec], pd.DataFrame]


class SnapshotRules(Protocol):
    frequency: str
    conversion_window_days: int
    max_lead_age_days: int | None
    history_start_days: int


class SplitRules(Protocol):
    valid_cutoffs: int
    holdout_cutoffs: int
    valid_lead_fraction: float
    calibration_lead_fraction: float
    holdout_lead_fraction: float
    seed: int
    order_by: str | None


class NotEnoughHistory(ValueError):
    """Too few cutoffs or examples to make every slice."""


@dataclass(frozen=True)
class TrainingSet:
    """Labelled examples and their features, row-aligned."""

    rows: pd.DataFrame  # lead_id, cutoff, label, split, stage (marketing or sales)
    X: pd.DataFrame
    spec: FeatureSpec  # the feature spec, plus columns screened out as PII or identifiers
    screened: dict[str, str]
    attributes: list[str]  # the untimed columns: where leaks can enter
    split_method: str  # "time-forward" or "stratified random"

    @property
    def point_in_time(self) -> bool:
        """Snapshots in time (not one row per lead of an export without timestamps)."""
        return self.split_method == "time-forward"

    @property
    def holdout_kind(self) -> str:
        """How the holdout was drawn, in words."""
        if self.point_in_time:
            return "unseen leads, newest cutoffs"
        if self.split_method.startswith("ordered"):
            return f"the NEWEST ROWS, {self.split_method}; no timestamps"
        return "STRATIFIED RANDOM holdout: no timestamps"

    def only(self, stage: str, X: pd.DataFrame | None = None) -> tuple[TrainingSet, pd.DataFrame]:
        """The examples of one lifecycle stage (a population), with their rows of `X` (the
        audited features; default: this set's own)."""
        X = self.X if X is None else X
        keep = (self.rows["stage"] == stage).to_numpy()
        rows = self.rows[keep].reset_index(drop=True)
        kept_X = X[keep].reset_index(drop=True)
        return replace(self, rows=rows, X=self.X[keep].reset_index(drop=True)), kept_X

    def masks(self) -> dict[str, np.ndarray]:
        """A boolean row mask per slice (train, valid, calibration, holdout)."""
        return {name: (self.rows["split"] == name).to_numpy() for name in SPLITS}


def screen(
    rows: pd.DataFrame, X: pd.DataFrame, spec: FeatureSpec
) -> tuple[pd.DataFrame, FeatureSpec, dict[str, str]]:
    """Drop columns that identify leads or hold contact details, judged on the training rows
    (one per lead), and columns constant there; the spec learns to skip them."""
    train = (rows["split"] == "train").to_numpy()
    first_of_lead = ~rows["lead_id"].duplicated().to_numpy()
    screened = screen_columns(X[first_of_lead & train])
    for column in X.columns:
        if column not in screened and X.loc[train, column].nunique(dropna=False) <= 1:
            screened[column] = "constant in the training rows"
    if screened:
        X = X.drop(columns=list(screened))
        spec = replace(spec, skip_columns=frozenset({*spec.skip_columns, *screened}))
    return X, spec, screened


def attribute_names(tables: CrmTables, spec: FeatureSpec) -> list[str]:
    """The untimed attribute features a spec builds from these tables (names only): not the
    lead's age, and not a column with a field history (it is point-in-time like activities)."""
    empty = pd.DataFrame(
        {
            "lead_id": tables.leads["lead_id"].iloc[:0],
            "cutoff": pd.Series([], dtype="datetime64[ns, UTC]"),
        }
    )
    timed = {
        column if kind == "lead" else f"account_{column}" for kind, column in history_fields(tables)
    }
    built = attribute_features(tables, empty, spec.skip_columns, spec.known_at_creation)
    return [c for c in built.columns if c != "lead_age_days" and c not in timed]


def timed_training_set(
    tables: CrmTables,
    snapshots: SnapshotRules,
    split: SplitRules,
    spec: FeatureSpec,
    as_of: pd.Timestamp,
    features: FeatureBuilder,
    lifecycle: LifecycleRule | None = None,
) -> TrainingSet:
    """Snapshots at each cutoff up to `as_of` minus the window, labelled and split by time and
    lead; `features` builds them (on one machine or on Spark, with the same result). Each row
    carries its lifecycle stage at the cutoff (`lifecycle`; all marketing's without one)."""
    last = as_of - pd.Timedelta(days=snapshots.conversion_window_days)
    cutoffs = cutoff_schedule(tables, snapshots.frequency, snapshots.history_start_days, last)
    spine = open_leads(tables, cutoffs, snapshots.max_lead_age_days)
    labelled = label_snapshots(spine, tables.deals, snapshots.conversion_window_days, as_of)
    created = lookup(tables.leads.set_index("lead_id")["created_at"], labelled["lead_id"])
    try:
        slices = assign_splits(
            labelled,
            split.valid_cutoffs,
            split.holdout_cutoffs,
            split.valid_lead_fraction,
            split.calibration_lead_fraction,
            split.holdout_lead_fraction,
            split.seed,
            created_at=created,
            max_age_days=snapshots.max_lead_age_days,
        )
    except ValueError as exc:
        raise NotEnoughHistory(str(exc)) from exc
    rows = labelled.assign(split=slices.to_numpy())
    rows = rows[rows["split"].notna()].reset_index(drop=True)
    rows["stage"] = lead_stages(tables, rows, lifecycle)
    X = features(tables, rows, spec).reset_index(drop=True)
    X, spec, screened = screen(rows, X, spec)
    attributes = [c for c in attribute_names(tables, spec) if c in X.columns]
    return TrainingSet(rows, X, spec, screened, attributes, "time-forward")


def flat_training_set(
    tables: CrmTables, split: SplitRules, spec: FeatureSpec, as_of: pd.Timestamp
) -> TrainingSet:
    """One example per lead with a known outcome, split at random within each class, or, with
    `split.order_by`, in order: the newest rows are the holdout."""
    leads = tables.leads
    known = leads[leads["outcome"].isin(["won", "lost"])]
    rows = pd.DataFrame(
        {
            "lead_id": known["lead_id"].to_numpy(),
            "cutoff": as_of,
            "label": (known["outcome"] == "won").astype(np.int8).to_numpy(),
            "stage": MARKETING,  # no time, so no lifecycle: every lead is marketing's
        }
    )
    if split.order_by is not None:
        rows["split"] = _ordered_slices(known[split.order_by], split)
        method = f"ordered by {split.order_by}"
    else:
        rows["split"] = _stratified_slices(rows, split)
        method = "stratified random"
    spec = replace(spec, skip_columns=frozenset({*spec.skip_columns, "outcome"}))
    X = flat_features(tables, rows, spec)
    X, spec, screened = screen(rows, X, spec)
    return TrainingSet(rows, X, spec, screened, list(X.columns), method)


def _ordered_slices(order: pd.Series, split: SplitRules) -> np.ndarray:
    """Slices by position in time: train first, then valid, calibration, the holdout last."""
    if not pd.api.types.is_numeric_dtype(order) and not pd.api.types.is_datetime64_any_dtype(order):
        parsed = pd.to_datetime(order, errors="coerce", utc=True, format="mixed")
        if parsed.isna().mean() > 0.01:
            raise NotEnoughHistory(
                f"split.order_by {split.order_by!r} is neither a number nor a date"
            )
        order = parsed
    rank = pd.Series(order.to_numpy()).rank(method="first").to_numpy() / len(order)
    holdout = 1 - split.holdout_lead_fraction
    calibration = holdout - split.calibration_lead_fraction
    valid = calibration - split.valid_lead_fraction
    return np.select(
        [rank > holdout, rank > calibration, rank > valid],
        ["holdout", "calibration", "valid"],
        default="train",
    )


def _stratified_slices(rows: pd.DataFrame, split: SplitRules) -> np.ndarray:
    """Slices drawn at random within each class."""
    from sklearn.model_selection import train_test_split  # scikit-learn loads only here

    fractions = {
        "holdout": split.holdout_lead_fraction,
        "calibration": split.calibration_lead_fraction,
        "valid": split.valid_lead_fraction,
    }
    slices = pd.Series("train", index=rows.index, dtype=object)
    remaining = rows.index.to_numpy()
    share_left = 1.0
    for name, fraction in fractions.items():
        try:
            remaining, picked = train_test_split(
                remaining,
                test_size=fraction / share_left,
                stratify=rows.loc[remaining, "label"],
                random_state=split.seed,
            )
        except ValueError as exc:
            raise NotEnoughHistory(f"cannot make a stratified {name} slice: {exc}") from None
        slices[picked] = name
        share_left -= fraction
    return slices.to_numpy()


def flat_features(tables: CrmTables, spine: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """Shape flat's features: the attributes alone (no time, so no age and no activity)."""
    X = attribute_features(
        tables, spine[["lead_id", "cutoff"]], spec.skip_columns, spec.known_at_creation
    )
    return X.drop(columns="lead_age_days").reset_index(drop=True)


def class_problem(rows: pd.DataFrame, min_wins: int, min_losses: int, slice_min: int) -> str | None:
    """Why these examples cannot train a model (too few wins or non-wins overall or in a
    slice), or None when they can."""
    wins = int(rows["label"].sum())
    losses = len(rows) - wins
    if wins < min_wins or losses < min_losses:
        return (
            f"{len(rows):,} labelled examples with {wins:,} wins and {losses:,} non-wins; training "
            f"needs at least {min_wins} wins and {min_losses} non-wins "
            "(validation.min_wins / min_losses)"
        )
    for name in SPLITS:
        labels = rows.loc[rows["split"] == name, "label"]
        wins = int(labels.sum())
        if wins < slice_min or len(labels) - wins < slice_min:
            return (
                f"the {name} slice has {len(labels):,} examples and {wins} wins; at least "
                f"{slice_min} won and {slice_min} not-won are needed (split.min_wins). Use more "
                "history, a longer conversion window, or larger split fractions"
            )
    return None
