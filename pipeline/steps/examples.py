"""The step every learning job starts with: labelled examples from the loaded data."""

from __future__ import annotations

from leadscore.features.build import FeatureSpec
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
        skip_columns=frozenset({*f.identifiers, *f.pii, *f.exclude}),
        known_at_creation=None if f.known_at_creation is None else frozenset(f.known_at_creation),
    )


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
            )
        except NotEnoughHistory as exc:
            raise InputError(
                f"not enough history before {data.as_of:%Y-%m-%d} to train: {exc}"
            ) from None
    v = config.validation
    problem = class_problem(ts.rows, v.min_wins, v.min_losses, config.split.min_wins)
    if problem is not None:
        raise InputError(problem)
    if ts.screened:
        steps.note(_screened_summary(ts.screened))
        for column, why in ts.screened.items():  # the detail goes to the run's report
            catalog.record(f"not a feature: {column} ({why})")
    return ts


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
