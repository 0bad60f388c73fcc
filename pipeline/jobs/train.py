"""The training job: load -> snapshot -> features -> audit -> train -> evaluate -> register."""

from __future__ import annotations

import json
import re
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import yaml
from sklearn.model_selection import train_test_split

from leadscore.features.attributes import attribute_features
from leadscore.features.build import FeatureSpec, build_features
from leadscore.features.engagement import ACTIVITY_TYPES, unknown_activity_types
from leadscore.features.families import FAMILIES, feature_family
from leadscore.features.leakage import Finding, audit_columns, flagged_columns
from leadscore.features.screening import screen_columns
from leadscore.features.snapshots import (
    SPLITS,
    assign_splits,
    cutoff_schedule,
    label_snapshots,
    lead_outcomes,
    open_leads,
)
from leadscore.features.tables import CrmTables, lookup
from leadscore.models.drift import reference_from
from leadscore.models.evaluation import Evaluation, evaluate
from leadscore.models.evaluation_plots import save_all
from leadscore.models.lead_model import LeadScoringModel
from leadscore.models.scores import assign_grades
from leadscore.models.subscores import family_logits, reference_quantiles
from leadscore.pipeline.config import Config, config_as_dict
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io.model_package import ScoringBundle
from leadscore.pipeline.io.registry import configure_tracking, log_and_register
from leadscore.pipeline.io.run_identity import config_fingerprint, git_commit, run_name
from leadscore.pipeline.io.sources import as_of_view, fingerprint, load_tables, resolve_as_of
from leadscore.pipeline.progress import Steps
from leadscore.pipeline.redaction import redact, redact_text
from leadscore.pipeline.reports.model_report import ReportInputs, render

NO_TIMESTAMPS = (
    "NO TIMESTAMPS: shape 'flat' cannot build point-in-time snapshots. The split is a stratified "
    "random split of leads, not time-forward: holdout metrics say how well the model ranks leads "
    "like these, not how it will do on next month's leads, and attributes filled in after the "
    "outcome cannot be told apart by time (the leakage audit is the only guard)."
)


@dataclass(frozen=True)
class TrainingSet:
    """Labelled examples and their features, row-aligned."""

    rows: pd.DataFrame  # lead_id, cutoff, label, split
    X: pd.DataFrame
    spec: FeatureSpec  # the feature spec, plus columns screened out as PII or identifiers
    screened: dict[str, str]
    attributes: list[str]  # the untimed columns: where leaks can enter
    split_method: str  # "time-forward" or "stratified random"


@dataclass(frozen=True)
class AuditResult:
    findings: list[Finding]
    aucs: pd.Series
    dropped: list[str]
    policy: str

    def records(self) -> list[dict[str, str]]:
        action = {"drop": "dropped", "warn": "kept (policy warn)", "fail": "fail"}[self.policy]
        return [
            {**f.as_dict(), "verdict": action if f.verdict == "flagged" else f.verdict}
            for f in self.findings
        ]


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    run_name: str
    intervals: dict[str, tuple[float, float]]
    segments: pd.DataFrame
    report_html: str
    version: str
    made_champion: bool
    metrics: dict[str, float]
    grades: pd.DataFrame
    counts: dict[str, int]
    calibration: str
    importance: pd.Series
    as_of: pd.Timestamp
    audit: AuditResult
    report: list[str] = field(default_factory=list)
    tables: CrmTables | None = None  # the as-of view trained on (retrain scores the champion)
    holdout: pd.DataFrame | None = None  # lead_id, cutoff, label
    kept_flagged: list[str] = field(default_factory=list)  # flagged by the audit, still features
    evaluation: Evaluation | None = None


def feature_spec(config: Config) -> FeatureSpec:
    """The feature settings of a config; identifiers, PII and excludes are never features."""
    f = config.features
    return FeatureSpec(
        windows_days=f.windows_days,
        half_life_days=f.decay_half_life_days,
        recency_cap_days=f.recency_cap_days,
        skip_columns=frozenset({*f.identifiers, *f.pii, *f.exclude}),
    )


def _screen(
    rows: pd.DataFrame, X: pd.DataFrame, spec: FeatureSpec
) -> tuple[pd.DataFrame, FeatureSpec, dict[str, str]]:
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


DEFAULT_SEGMENTS = ("source", "industry", "region", "country")


def segment_columns(
    tables: CrmTables, lead_ids: pd.Series, names: tuple[str, ...] | None
) -> pd.DataFrame:
    """The segment columns of `lead_ids`: a leads column by its name, else the account's column
    as `account_<name>`. Configured names the data lack are an input error; by default, those
    of DEFAULT_SEGMENTS the data have."""
    leads = tables.leads.set_index("lead_id")
    accounts = tables.accounts.set_index("account_id")
    account_of = leads["account_id"].reindex(lead_ids.to_numpy())
    columns: dict[str, np.ndarray] = {}
    for name in names if names is not None else DEFAULT_SEGMENTS:
        if name in leads.columns and name != "account_id":
            columns[name] = leads[name].reindex(lead_ids.to_numpy()).to_numpy()
        if name in accounts.columns:
            columns[f"account_{name}"] = accounts[name].reindex(account_of.to_numpy()).to_numpy()
        if names is not None and name not in leads.columns and name not in accounts.columns:
            raise InputError(
                f"evaluation.segments names {name!r}, which is neither a leads nor an accounts "
                f"column (leads: {', '.join(map(str, leads.columns))}; accounts: "
                f"{', '.join(map(str, accounts.columns))})"
            )
    return pd.DataFrame(columns, index=range(len(lead_ids)))


def _attribute_names(tables: CrmTables, spec: FeatureSpec) -> list[str]:
    empty = pd.DataFrame(
        {
            "lead_id": tables.leads["lead_id"].iloc[:0],
            "cutoff": pd.Series([], dtype="datetime64[ns, UTC]"),
        }
    )
    return [
        c
        for c in attribute_features(tables, empty, spec.skip_columns).columns
        if c != "lead_age_days"
    ]


FeatureBuilder = Callable[[CrmTables, pd.DataFrame, FeatureSpec], pd.DataFrame]


def build_training_set(
    tables: CrmTables,
    config: Config,
    moment: pd.Timestamp,
    features: FeatureBuilder = build_features,
) -> TrainingSet:
    """Snapshots at each cutoff up to `moment` minus the window, labelled and split; `features`
    builds them (the default engine's `build_features`, or the same on Spark)."""
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
    X = features(tables, rows, spec).reset_index(drop=True)
    X, spec, screened = _screen(rows, X, spec)
    attributes = [c for c in _attribute_names(tables, spec) if c in X.columns]
    return TrainingSet(rows, X, spec, screened, attributes, "time-forward")


def build_flat_training_set(tables: CrmTables, config: Config, moment: pd.Timestamp) -> TrainingSet:
    """Shape flat: one example per lead with a known outcome, split at random by class."""
    leads = tables.leads
    known = leads[leads["outcome"].isin(["won", "lost"])]
    rows = pd.DataFrame(
        {
            "lead_id": known["lead_id"].to_numpy(),
            "cutoff": moment,
            "label": (known["outcome"] == "won").astype(np.int8).to_numpy(),
        }
    )
    sp = config.split
    fractions = {
        "holdout": sp.holdout_lead_fraction,
        "calibration": sp.calibration_lead_fraction,
        "valid": sp.valid_lead_fraction,
    }
    split = pd.Series("train", index=rows.index, dtype=object)
    remaining = rows.index.to_numpy()
    share_left = 1.0
    for name, fraction in fractions.items():
        take = fraction / share_left
        try:
            remaining, picked = train_test_split(
                remaining,
                test_size=take,
                stratify=rows.loc[remaining, "label"],
                random_state=sp.seed,
            )
        except ValueError as exc:
            raise InputError(f"cannot make a stratified {name} slice: {exc}") from None
        split[picked] = name
        share_left -= fraction
    rows["split"] = split.to_numpy()
    spec = feature_spec(config)
    spec = replace(spec, skip_columns=frozenset({*spec.skip_columns, "outcome"}))
    X = attribute_features(tables, rows[["lead_id", "cutoff"]], spec.skip_columns)
    X = X.drop(columns="lead_age_days").reset_index(drop=True)
    X, spec, screened = _screen(rows, X, spec)
    return TrainingSet(rows, X, spec, screened, list(X.columns), "stratified random")


def _check_classes(rows: pd.DataFrame, config: Config) -> None:
    wins = int(rows["label"].sum())
    losses = len(rows) - wins
    v = config.validation
    if wins < v.min_wins or losses < v.min_losses:
        raise InputError(
            f"{len(rows):,} labelled examples with {wins:,} wins and {losses:,} non-wins; training "
            f"needs at least {v.min_wins} wins and {v.min_losses} non-wins "
            "(validation.min_wins / min_losses)"
        )
    min_wins = config.split.min_wins
    for split in SPLITS:
        labels = rows.loc[rows["split"] == split, "label"]
        wins = int(labels.sum())
        if wins < min_wins or len(labels) - wins < min_wins:
            raise InputError(
                f"the {split} slice has {len(labels):,} examples and {wins} wins; at least "
                f"{min_wins} won and {min_wins} not-won are needed (split.min_wins). Use more "
                "history, a longer conversion window, or larger split fractions"
            )


def audit(ts: TrainingSet, tables: CrmTables, config: Config) -> AuditResult:
    """Run the leakage audit on the examples the model learns from (never the holdout)."""
    seen = (ts.rows["split"] != "holdout").to_numpy()
    X = ts.X[seen].reset_index(drop=True)
    y = ts.rows.loc[seen, "label"].to_numpy()
    lead_ids = ts.rows.loc[seen, "lead_id"]
    stamp_columns = [
        c
        for c in tables.leads.columns
        if c != "created_at" and pd.api.types.is_datetime64_any_dtype(tables.leads[c])
    ]
    stamps = None
    if stamp_columns:
        stamps = tables.leads.set_index("lead_id")[stamp_columns].reindex(lead_ids.to_numpy())
        stamps = stamps.reset_index(drop=True)
    closed = lookup(lead_outcomes(tables.deals)["closed_at"], lead_ids).reset_index(drop=True)
    keys = pd.DataFrame(
        {"account_id": lookup(tables.leads.set_index("lead_id")["account_id"], lead_ids).to_numpy()}
    )
    a = config.audit
    findings, aucs = audit_columns(
        X,
        y,
        ts.attributes,
        max_auc=a.max_auc,
        review_auc=a.review_auc,
        min_expected=a.min_expected,
        allow=a.allow,
        closed_at=closed,
        timestamps=stamps,
        keys=keys,
    )
    dropped = flagged_columns(findings) if a.policy == "drop" else []
    if "account_id" in dropped:  # every account attribute and the account's history go with it
        dropped += [c for c in ts.X.columns if c.startswith("account_")]
    dropped = list(dict.fromkeys(c for c in dropped if c in ts.X.columns))
    return AuditResult(findings, aucs, dropped, a.policy)


def prepare(
    config: Config,
    data_dir: Path,
    moment: pd.Timestamp | None,
    steps: Steps,
    report: list[str],
    engine: str = "pandas",
) -> tuple[CrmTables, TrainingSet, str, pd.Timestamp]:
    """Load, check and build the labelled examples; shared by `train` and `audit`.

    Without an explicit `moment` the run is as of now, or of the day after the data's newest
    timestamp when the export is older than that. `engine` "spark" builds the features on Spark
    (the activity log stays there; the returned tables have none), with the same result.
    """

    def warn(message: str) -> None:
        report.append(message)
        steps.warn(message)

    features: FeatureBuilder = build_features
    newest = None
    with steps.step(f"Loading {data_dir}"):
        raw = load_tables(config, data_dir, warn, activities=engine != "spark")
        data_hash = fingerprint(raw)
    if engine == "spark":  # the activity log stays on Spark: say the print does not cover it
        data_hash = f"{data_hash}-without-activities"
    if engine == "spark":
        from leadscore.pipeline.io.spark import spark_activities, spark_features

        with steps.step("Starting Spark and reading the activity log"):
            on_spark = spark_activities(config, data_dir, raw)
            newest = on_spark.newest(warn)
    moment = resolve_as_of(raw, moment, steps.note, newest)
    if engine == "spark":

        def features(tables: CrmTables, spine: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
            return spark_features(on_spark, tables, spine, spec, moment)

    tables = as_of_view(raw, moment, config.data.shape, warn)
    if config.data.shape == "flat":
        warn(NO_TIMESTAMPS)
        with steps.step("Building features (stratified random split)"):
            ts = build_flat_training_set(tables, config, moment)
    else:
        on = " on Spark" if engine == "spark" else ""
        with steps.step(f"Building point-in-time snapshots and features{on}"):
            ts = build_training_set(tables, config, moment, features)
    _warn_unknown_activity_types(tables, warn)
    _check_classes(ts.rows, config)
    for column, why in ts.screened.items():
        steps.note(f"not a feature: {column} ({why})")
    return tables, ts, data_hash, moment


def _warn_unknown_activity_types(tables: CrmTables, warn: Callable[[str], None]) -> None:
    unknown = unknown_activity_types(tables.activities)
    if unknown.sum():
        shown = ", ".join(f"{t!r} ({n:,})" for t, n in unknown.head(5).items())
        warn(
            f"{int(unknown.sum()):,} of {len(tables.activities):,} activities have a type outside "
            f"{', '.join(ACTIVITY_TYPES)} and count as 'other': {shown}. Map them with values: "
            "in the activities source"
        )


def flat_params(config: Config) -> dict[str, str]:
    """Every config value as one MLflow param per leaf, URLs with their passwords hidden."""
    params: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:  # MLflow allows only some characters in param names ('*' is a config key here)
            params[re.sub(r"[^A-Za-z0-9_\-. :/]", "_", prefix)] = redact(str(value))[:500]

    walk("", config_as_dict(config))
    return params


def audited_features(
    ts: TrainingSet, tables: CrmTables, config: Config, steps: Steps
) -> tuple[pd.DataFrame, FeatureSpec, AuditResult, list[str]]:
    """The leakage audit applied: the features left, their spec, the audit and what it flagged.
    Policy fail raises an input error when anything is flagged."""
    with steps.step("Auditing attributes for leakage"):
        result = audit(ts, tables, config)
    for finding in result.findings:
        steps.warn(f"leakage audit: {finding.column}: {finding.check}: {finding.evidence}")
    flagged = flagged_columns(result.findings)
    if flagged and config.audit.policy == "fail":
        raise InputError(
            f"the leakage audit flagged {', '.join(flagged)} and audit.policy is fail; exclude "
            "them (features.exclude), vouch for them (audit.allow) or set another policy"
        )
    X = ts.X.drop(columns=result.dropped)
    spec = replace(ts.spec, skip_columns=frozenset({*ts.spec.skip_columns, *result.dropped}))
    if result.dropped:
        steps.warn(f"dropped by the leakage audit: {', '.join(result.dropped)}")
    return X, spec, result, flagged


def split_masks(ts: TrainingSet) -> dict[str, np.ndarray]:
    """A boolean row mask per slice (train, valid, calibration, holdout)."""
    return {name: (ts.rows["split"] == name).to_numpy() for name in SPLITS}


def train(
    config: Config,
    data_dir: Path,
    moment: pd.Timestamp | None,
    steps: Steps,
    job: str = "train",
    make_champion: bool | None = None,
    engine: str = "pandas",
) -> TrainResult:
    """Train, evaluate on the holdout, and register the model in MLflow.

    `make_champion` None: the model becomes champion only if there is none yet; False: never
    (a retrain's challenger, which the gate decides on)."""
    report: list[str] = []
    tables, ts, data_hash, moment = prepare(config, data_dir, moment, steps, report, engine)
    X, spec, result, flagged = audited_features(ts, tables, config, steps)
    parts = split_masks(ts)
    counts = {f"n_{k}": int(v.sum()) for k, v in parts.items()}
    counts |= {f"wins_{k}": int(ts.rows.loc[v, "label"].sum()) for k, v in parts.items()}
    steps.note(
        " / ".join(f"{counts[f'n_{k}']:,} {k}" for k in SPLITS)
        + f" examples, {ts.rows['cutoff'].nunique()} cutoffs, {X.shape[1]} features"
    )
    m = config.model
    with steps.step("Training LightGBM with early stopping, then calibrating"):
        model = LeadScoringModel(**m.model_dump()).fit(
            X[parts["train"]],
            ts.rows.loc[parts["train"], "label"],
            X_val=X[parts["valid"]],
            y_val=ts.rows.loc[parts["valid"], "label"],
            X_cal=X[parts["calibration"]],
            y_cal=ts.rows.loc[parts["calibration"], "label"],
            groups_cal=ts.rows.loc[parts["calibration"], "lead_id"].to_numpy(),
        )
    holdout_ids = ts.rows.loc[parts["holdout"], "lead_id"]
    with steps.step("Evaluating on the holdout (bootstrap intervals, grades, segments)"):
        y_hold = ts.rows.loc[parts["holdout"], "label"].to_numpy()
        X_hold = X[parts["holdout"]]
        p_hold = model.predict_proba(X_hold)[:, 1]
        s = config.scoring
        evaluation = evaluate(
            y_hold,
            p_hold,
            holdout_ids.to_numpy(),
            assign_grades(p_hold, s.grades, s.grade_by),
            segment_columns(tables, holdout_ids, config.evaluation.segments),
            config.evaluation.bootstrap,
        )
        contributions = model.contributions(X_hold)
    metrics, grades = evaluation.metrics, evaluation.grades
    config_hash = config_fingerprint(config)
    configure_tracking()
    mlflow.set_experiment(config.mlflow.experiment)
    with (
        steps.step("Logging the run and registering the model in MLflow"),
        mlflow.start_run(run_name=run_name(job, moment, config_hash)) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        mlflow.set_tags(
            {
                "as_of": moment.isoformat(),
                "data_fingerprint": data_hash,
                "data_shape": config.data.shape,
                "split_method": ts.split_method,
                "point_in_time": str(config.data.shape != "flat").lower(),
                "calibration": model.calibration_method_,
                "job": job,
                "engine": engine,
                "screened_columns": ", ".join(ts.screened) or "none",
                "leakage_flagged": ", ".join(flagged) or "none",
                "leakage_dropped": ", ".join(result.dropped) or "none",
                "config_hash": config_hash,
                "git_commit": git_commit(),
                "data_leads": str(len(tables.leads)),
                "data_activities": str(len(tables.activities))
                if engine != "spark"
                else "not counted (on Spark)",
                "data_deals": str(len(tables.deals)),
                "n_features": str(X.shape[1]),
                "n_examples": str(len(X)),
            }
        )
        mlflow.log_params(flat_params(config))
        with warnings.catch_warnings():  # MLflow's hint about int columns: not for a dataset
            warnings.simplefilter("ignore", UserWarning)
            table = mlflow.data.from_pandas(
                pd.concat([ts.rows[["lead_id", "cutoff", "label", "split"]], X], axis=1),
                name=f"training-table-{data_hash}",
                targets="label",
            )
            mlflow.log_input(table, context="training")  # its schema is inferred here
        mlflow.log_metrics(evaluation.logged())
        mlflow.log_metrics({**counts, "best_iteration": model.best_iteration_})
        mlflow.log_metrics(
            {f"calibration_logloss_{k}": v for k, v in model.calibration_losses_.items()}
        )
        mlflow.log_text(yaml.safe_dump(config_as_dict(config), sort_keys=False), "config.yaml")
        mlflow.log_text(json.dumps(result.records(), indent=2), "leakage_audit.json")
        mlflow.log_text(redact_text(json.dumps(report, indent=2)), "validation_report.json")
        mlflow.log_table(grades.reset_index(), "holdout_grades.json")
        importance = model.feature_importance()
        mlflow.log_table(
            importance.rename("gain").rename_axis("feature").reset_index(),
            "feature_importance.json",
        )
        plots = save_all(Path(tmp), y_hold, p_hold, metrics, importance, contributions, X_hold)
        mlflow.log_artifacts(tmp, "plots")
        report_html = redact_text(
            render(
                ReportInputs(
                    title=f"leadscore model report: {run.info.run_name}",
                    run_id=run.info.run_id,
                    metrics=metrics,
                    intervals=evaluation.intervals,
                    grades=grades,
                    segments=evaluation.segments,
                    audit=result.records(),
                    summary={
                        "as of": f"{moment:%Y-%m-%d %H:%M} UTC",
                        "split": ts.split_method,
                        "data fingerprint": data_hash,
                        "config hash": config_hash,
                        "leads / activities / deals": f"{len(tables.leads):,} / "
                        + (f"{len(tables.activities):,}" if engine != "spark" else "on Spark")
                        + f" / {len(tables.deals):,}",
                        **{k.replace("_", " "): f"{v:,}" for k, v in counts.items()},
                        "cutoffs": ts.rows["cutoff"].nunique(),
                        "features": X.shape[1],
                        "calibration": model.calibration_method_,
                        "best iteration": model.best_iteration_,
                    },
                    notes=report,
                    config_yaml=yaml.safe_dump(config_as_dict(config), sort_keys=False),
                    plots=plots,
                )
            )
        )
        mlflow.log_text(report_html, "report.html")
        mlflow.log_table(evaluation.segments, "holdout_segments.json")
        logits = family_logits(contributions, feature_family, FAMILIES)
        # The drift reference: the newest cutoffs (valid, calibration and holdout slices). Counts
        # that grow with calendar time (an account's leads) would drift against older ones.
        newest = ~parts["train"]
        bundle = ScoringBundle(
            model,
            spec,
            moment,
            pd.DataFrame({"label": y_hold, "probability": p_hold}),
            {family: reference_quantiles(logits[family]) for family in FAMILIES},
            reference_from(X[newest], model.predict_proba(X[newest])[:, 1]),
        )
        version, champion = log_and_register(
            bundle, X[parts["holdout"]], config.mlflow.registered_model, make_champion
        )
    return TrainResult(
        run_id=run.info.run_id,
        run_name=run.info.run_name,
        intervals=evaluation.intervals,
        segments=evaluation.segments,
        report_html=report_html,
        version=version,
        made_champion=champion,
        metrics=metrics,
        grades=grades,
        counts=counts,
        calibration=model.calibration_method_,
        importance=importance,
        as_of=moment,
        audit=result,
        report=report,
        tables=tables,
        holdout=ts.rows.loc[parts["holdout"], ["lead_id", "cutoff", "label"]],
        kept_flagged=[c for c in flagged if c in X.columns],
        evaluation=evaluation,
    )
