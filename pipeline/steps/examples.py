"""The step every learning job starts with: labelled examples from the loaded data."""

from __future__ import annotations

import pandas as pd

from leadscore.features.build import FeatureSpec
from leadscore.features.lifecycle import LifecycleRule
from leadscore.features.tables import CrmTables, lookup
from leadscore.features.training_set import NotEnoughHistory, TrainingSet, class_problem
from leadscore.pipeline.catalog import Catalog, LoadedData
from leadscore.pipeline.config import Config
from leadscore.pipeline.errors import InputError


def feature_spec(config: Config) -> FeatureSpec:
    """The feature settings of a config; identifiers, PII and excludes are never features."""
    f = config.features
    return FeatureSpec(
        windows_days=f.windows_days,
        half_life_days=f.decay_half_life_days,
        recency_cap_days=f.recency_cap_days,
        # the lifecycle's own date column says when sales accepted the lead: never a feature
        skip_columns=frozenset({*f.identifiers, *f.pii, *f.exclude, *_lifecycle_columns(config)}),
        known_at_creation=None if f.known_at_creation is None else frozenset(f.known_at_creation),
    )


def _lifecycle_columns(config: Config) -> tuple[str, ...]:
    rules = config.lifecycle
    return (rules.sql_column,) if rules.sql_from == "column" and rules.sql_column else ()


def lifecycle_rule(config: Config) -> LifecycleRule | None:
    """How this export tells when sales accepted a lead, or None without a lifecycle: shape
    flat has no time, and a unit export's rows are opportunities already, unless a column or a
    status history says when each was accepted."""
    rules = config.lifecycle
    if config.data.shape == "flat" or rules.sql_from == "none":
        return None
    if config.data.shape == "unit" and rules.sql_from == "opportunity":
        return None
    return LifecycleRule(rules.sql_from, rules.sql_column, rules.status_field, rules.sql_values)


def labelled_examples(data: LoadedData, catalog: Catalog) -> TrainingSet:
    """Snapshots, labels, splits and features (the shape decides how), checked to have enough
    wins and non-wins overall and in every slice."""
    config, shape, steps = catalog.config, catalog.shape, catalog.steps
    if shape.caveat is not None:
        catalog.warn(shape.caveat)
    title = (
        f"Building point-in-time snapshots and features{catalog.on_engine}"
        if shape.point_in_time
        else "Building features (stratified random split)"
    )
    with steps.step(title):
        try:
            ts = shape.training_set(
                data.tables,
                config.snapshots,
                config.split,
                feature_spec(config),
                data.as_of,
                data.activities.features,
                lifecycle_rule(config),
            )
        except NotEnoughHistory as exc:
            raise InputError(
                f"not enough history before {data.as_of:%Y-%m-%d} to train: {exc}"
                + _instant_closes(data.tables)
            ) from None
    v = config.validation
    problem = class_problem(ts.rows, v.min_wins, v.min_losses, config.split.min_wins)
    if problem is not None:
        raise InputError(problem + _instant_closes(data.tables))
    if ts.point_in_time:
        _warn_hollow_holdout(ts, data.tables, catalog)
    if ts.screened:
        steps.note(_screened_summary(ts.screened))
        for column, why in ts.screened.items():  # the detail goes to the run's report
            catalog.record(f"not a feature: {column} ({why})")
    return ts


def _instant_closes(tables: CrmTables) -> str:
    """Why snapshots may be empty: units decided the day they appear are never open at a
    cutoff. The explanation when most closed units are such, else nothing."""
    deals = tables.deals.dropna(subset=["closed_at"])
    if deals.empty:
        return ""
    created = lookup(tables.leads.set_index("lead_id")["created_at"], deals["lead_id"])
    instant = (deals["closed_at"] - created) <= pd.Timedelta(days=1)
    if instant.mean() < 0.5:
        return ""
    return (
        f". {int(instant.sum()):,} of {len(deals):,} closed units closed within a day of their "
        "creation: they are never open at a cutoff, so no snapshot can learn from them. If "
        "each row is decided at once (a call, a form), use shape flat, with split.order_by on "
        "the date column so that the holdout is the newest rows"
    )


def _warn_hollow_holdout(ts: TrainingSet, tables: CrmTables, catalog: Catalog) -> None:
    """A holdout whose cutoffs all come after the newest lead judges only old leads."""
    cutoffs = ts.rows.loc[ts.masks()["holdout"], "cutoff"]
    newest = tables.leads["created_at"].max()
    if cutoffs.empty or pd.isna(newest) or newest >= cutoffs.min():
        return
    days = (cutoffs.min() - newest).days
    catalog.warn(
        f"the holdout's cutoffs ({cutoffs.min():%Y-%m-%d} to {cutoffs.max():%Y-%m-%d}) all come "
        f"after the newest lead (created {newest:%Y-%m-%d}, {days} days before): the holdout "
        "judges the model only on leads already that old, none newly created. The as-of time "
        "follows the export's newest timestamp (often a close date); set --as-of nearer the "
        "newest lead, or use fewer holdout cutoffs"
    )


def _screened_summary(screened: dict[str, str]) -> str:
    """One line for the terminal: how many columns are not features, and why, by kind."""
    kinds: dict[str, int] = {}
    for why in screened.values():
        kind = why.split(":")[0] if ":" in why else why.split(" (")[0]
        kind = "e-mail addresses" if "e-mail" in why else kind
        kinds[kind] = kinds.get(kind, 0) + 1
    parts = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items(), key=lambda k: -k[1]))
    shown = ", ".join(list(screened)[:4]) + (", ..." if len(screened) > 4 else "")
    return (
        f"not features: {len(screened)} column(s) ({parts}): {shown}; each with its reason in "
        "the run's validation report"
    )
