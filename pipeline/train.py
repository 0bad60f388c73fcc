"""The training job: load -> snapshot -> features -> train -> evaluate -> register."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import yaml

from features.build import FeatureSpec, build_features
from features.screening import screen_columns
from features.snapshots import (
    SPLITS,
    assign_splits,
    cutoff_schedule,
    label_snapshots,
    open_leads,
)
from features.tables import CrmTables, as_of, clean, lookup
from models.evaluation import grade_table, holdout_metrics
from models.lead_model import LeadScoringModel
from models.scores import to_grade
from pipeline.config import Config, config_as_dict
from pipeline.errors import InputError
from pipeline.progress import Steps
from pipeline.pyfunc_model import ScoringBundle
from pipeline.registry import configure_tracking, log_and_register
from pipeline.sources import fingerprint, load_tables
from pipeline.writeback import redact


@dataclass(frozen=True)
class TrainingSet:
    """Labelled point-in-time snapshots and their features, row-aligned."""

    rows: pd.DataFrame  # lead_id, cutoff, label, split
    X: pd.DataFrame
    spec: FeatureSpec  # the feature spec, plus columns screened out as PII or identifiers
    screened: dict[str, str]


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    version: str
    made_champion: bool
    metrics: dict[str, float]
    grades: pd.DataFrame
    counts: dict[str, int]
    calibration: str
    importance: pd.Series
    as_of: pd.Timestamp


def feature_spec(config: Config) -> FeatureSpec:
    """The feature settings of a config; identifiers, PII and excludes are never features."""
    f = config.features
    return FeatureSpec(
        windows_days=f.windows_days,
        half_life_days=f.decay_half_life_days,
        recency_cap_days=f.recency_cap_days,
        skip_columns=frozenset({*f.identifiers, *f.pii, *f.exclude}),
    )


def build_training_set(tables: CrmTables, config: Config, moment: pd.Timestamp) -> TrainingSet:
    """Snapshots at each cutoff up to `moment` minus the window, labelled and split."""
    s = config.snapshots
    last = moment - pd.Timedelta(days=s.conversion_window_days)
    cutoffs = cutoff_schedule(tables, s.frequency, s.history_start_days, last)
    spine = open_leads(tables, cutoffs, s.max_lead_age_days)
    labelled = label_snapshots(spine, tables.deals, s.conversion_window_days, moment)
    sp = config.split
    created = lookup(tables.leads.set_index("lead_id")["created_at"], labelled["lead_id"])
    try:
        split = assign_splits(
            labelled,
            sp.valid_cutoffs,
            sp.holdout_cutoffs,
            sp.valid_lead_fraction,
            sp.calibration_lead_fraction,
            sp.holdout_lead_fraction,
            sp.seed,
            created_at=created,
            max_age_days=s.max_lead_age_days,
        )
    except ValueError as exc:
        raise InputError(f"not enough history before {moment:%Y-%m-%d} to train: {exc}") from exc
    rows = labelled.assign(split=split.to_numpy())
    rows = rows[rows["split"].notna()].reset_index(drop=True)
    spec = feature_spec(config)
    X = build_features(tables, rows, spec).reset_index(drop=True)
    first_of_lead = ~rows["lead_id"].duplicated().to_numpy()
    screened = screen_columns(X[first_of_lead & (rows["split"] == "train").to_numpy()])
    if screened:
        X = X.drop(columns=list(screened))
        spec = replace(spec, skip_columns=frozenset({*spec.skip_columns, *screened}))
    return TrainingSet(rows=rows, X=X, spec=spec, screened=screened)


def _check_classes(rows: pd.DataFrame, min_wins: int) -> None:
    for split in SPLITS:
        labels = rows.loc[rows["split"] == split, "label"]
        wins = int(labels.sum())
        if wins < min_wins or len(labels) - wins < min_wins:
            raise InputError(
                f"the {split} slice has {len(labels):,} snapshots and {wins} wins; at least "
                f"{min_wins} won and {min_wins} not-won are needed (split.min_wins). Use more "
                "history, a longer conversion window, or larger split fractions"
            )


def _flat_params(config: Config) -> dict[str, str]:
    params = {}
    for section, values in config_as_dict(config).items():
        for key, value in values.items():
            params[f"{section}.{key}"] = redact(str(value))[:500]
    return params


def train(config: Config, data_dir: Path, moment: pd.Timestamp, steps: Steps) -> TrainResult:
    """Train, evaluate on the time-forward holdout, and register the model in MLflow."""
    with steps.step(f"Loading {data_dir}"):
        tables = clean(as_of(load_tables(data_dir, steps.warn), moment))
        data_hash = fingerprint(data_dir)
    with steps.step("Building point-in-time snapshots and features"):
        ts = build_training_set(tables, config, moment)
        _check_classes(ts.rows, config.split.min_wins)
    parts = {name: (ts.rows["split"] == name).to_numpy() for name in SPLITS}
    counts = {f"n_{k}": int(v.sum()) for k, v in parts.items()}
    counts |= {f"wins_{k}": int(ts.rows.loc[v, "label"].sum()) for k, v in parts.items()}
    steps.note(
        " / ".join(f"{counts[f'n_{k}']:,} {k}" for k in SPLITS)
        + f" snapshots, {ts.rows['cutoff'].nunique()} cutoffs, {ts.X.shape[1]} features"
    )
    for column, why in ts.screened.items():
        steps.note(f"not a feature: {column} ({why})")
    m = config.model
    with steps.step("Training LightGBM with early stopping, then calibrating"):
        model = LeadScoringModel(**m.model_dump()).fit(
            ts.X[parts["train"]],
            ts.rows.loc[parts["train"], "label"],
            X_val=ts.X[parts["valid"]],
            y_val=ts.rows.loc[parts["valid"], "label"],
            X_cal=ts.X[parts["calibration"]],
            y_cal=ts.rows.loc[parts["calibration"], "label"],
            groups_cal=ts.rows.loc[parts["calibration"], "lead_id"].to_numpy(),
        )
    with steps.step("Evaluating on the holdout"):
        y_hold = ts.rows.loc[parts["holdout"], "label"].to_numpy()
        p_hold = model.predict_proba(ts.X[parts["holdout"]])[:, 1]
        metrics = holdout_metrics(y_hold, p_hold)
        grades = grade_table(y_hold, p_hold, to_grade(p_hold, config.scoring.grades))
    configure_tracking()
    mlflow.set_experiment(config.mlflow.experiment)
    with (
        steps.step("Logging the run and registering the model in MLflow"),
        mlflow.start_run(run_name=f"train-{moment:%Y%m%d}") as run,
    ):
        mlflow.set_tags(
            {
                "as_of": moment.isoformat(),
                "data_fingerprint": data_hash,
                "calibration": model.calibration_method_,
                "job": "train",
                "screened_columns": ", ".join(ts.screened) or "none",
            }
        )
        mlflow.log_params(_flat_params(config))
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        mlflow.log_metrics({**counts, "best_iteration": model.best_iteration_})
        mlflow.log_metrics(
            {f"calibration_logloss_{k}": v for k, v in model.calibration_losses_.items()}
        )
        mlflow.log_text(yaml.safe_dump(config_as_dict(config), sort_keys=False), "config.yaml")
        mlflow.log_table(grades.reset_index(), "holdout_grades.json")
        importance = model.feature_importance()
        mlflow.log_table(
            importance.rename("gain").rename_axis("feature").reset_index(),
            "feature_importance.json",
        )
        bundle = ScoringBundle(
            model,
            ts.spec,
            moment,
            pd.DataFrame({"label": y_hold, "probability": p_hold}),
        )
        version, champion = log_and_register(
            bundle, ts.X[parts["holdout"]], config.mlflow.registered_model
        )
    return TrainResult(
        run_id=run.info.run_id,
        version=version,
        made_champion=champion,
        metrics=metrics,
        grades=grades,
        counts=counts,
        calibration=model.calibration_method_,
        importance=importance,
        as_of=moment,
    )
