"""The record of a training run in MLflow, and its registered model."""

from __future__ import annotations

import json
from dataclasses import dataclass

import mlflow
import pandas as pd
import yaml

from leadscore.features.training_set import TrainingSet
from leadscore.models.evaluation_plots import plots
from leadscore.models.lead_model import LeadScoringModel
from leadscore.models.raw_records import example_records
from leadscore.models.scoring import ScoringBundle
from leadscore.pipeline.catalog import Catalog, LoadedData
from leadscore.pipeline.config import config_as_dict
from leadscore.pipeline.io import tracking
from leadscore.pipeline.io.figure_drawing import drawn_aside
from leadscore.pipeline.io.registry import describe_model, log_model, register
from leadscore.pipeline.io.run_identity import config_fingerprint, git_commit, run_name
from leadscore.pipeline.redaction import redact_text
from leadscore.pipeline.reports.model_report import ReportInputs, render
from leadscore.pipeline.steps.handoff import agreement_table
from leadscore.pipeline.steps.leakage import AuditedFeatures
from leadscore.pipeline.steps.modelling import Holdout, OpportunityModel


@dataclass(frozen=True)
class RecordedRun:
    run_id: str
    run_name: str
    experiment_id: str
    report_html: str
    version: str
    made_champion: bool


def slice_counts(ts: TrainingSet) -> dict[str, int]:
    """Examples and wins per slice: n_train, wins_train, ..."""
    parts = ts.masks()
    counts = {f"n_{k}": int(v.sum()) for k, v in parts.items()}
    return counts | {f"wins_{k}": int(ts.rows.loc[v, "label"].sum()) for k, v in parts.items()}


def record_training(
    catalog: Catalog,
    job: str,
    data: LoadedData,
    ts: TrainingSet,
    audited: AuditedFeatures,
    model: LeadScoringModel,
    holdout: Holdout,
    bundle: ScoringBundle,
    make_champion: bool | None,
    opportunity: OpportunityModel | None = None,
) -> RecordedRun:
    """One MLflow run: tags, every config value, the training table, the holdout metrics with
    intervals, the artifacts and the HTML report; then the model logged and registered. The
    caller (`train`) has opened the MLflow store."""
    config = catalog.config
    counts = slice_counts(ts)
    config_hash = config_fingerprint(config)
    # the data's print, computed aside since the load: waited for (or computed here if the child
    # could not deliver) before a run is opened, so that a failure there leaves no failed run
    printed = data.fingerprint
    tracking.use_experiment(config.mlflow.experiment)
    importance = model.feature_importance()
    figures = plots(
        holdout.y,
        holdout.p,
        holdout.evaluation.metrics,
        importance,
        holdout.contributions,
        holdout.X,
    )
    with (
        catalog.steps.step("Logging the run and registering the model in MLflow"),
        drawn_aside(figures) as drawing,  # on the other core, while the run is logged
        mlflow.start_run(run_name=run_name(job, data.as_of, config_hash)) as run,
    ):
        mlflow.set_tags(
            _tags(catalog, job, data, ts, audited, model, config_hash)
            | _population_tags(catalog, bundle, opportunity)
        )
        tracking.log_config(config)
        table = pd.concat([ts.rows[["lead_id", "cutoff", "label", "split"]], ts.X], axis=1)
        tracking.log_training_table(table, f"training-table-{printed}")
        mlflow.log_metrics(holdout.evaluation.logged())
        if opportunity is not None:  # its own population: never mixed into the lead model's
            logged = opportunity.holdout.evaluation.logged()
            mlflow.log_metrics({f"opportunity_{k}": v for k, v in logged.items()})
        mlflow.log_metrics({**counts, "best_iteration": model.best_iteration_})
        mlflow.log_metrics(
            {f"calibration_logloss_{k}": v for k, v in model.calibration_losses_.items()}
        )
        tracking.log_text(json.dumps(audited.audit.records(), indent=2), "leakage_audit.json")
        tracking.log_text(json.dumps(catalog.warnings, indent=2), "validation_report.json")
        tracking.log_frames(
            {
                "holdout_grades.json": holdout.evaluation.grades.reset_index(),
                "feature_importance.json": importance.rename("gain")
                .rename_axis("feature")
                .reset_index(),
            }
        )
        tracking.log_frames({"holdout_segments.json": holdout.evaluation.segments})
        handoff = {"what_closes.json": bundle.learnings}
        table = agreement_table(bundle, config)
        if table is not None:  # the signed policy and its alternatives, versioned with the run
            handoff["agreement_table.json"] = table
            agreed = table[table["agreed"]].iloc[0]
            mlflow.log_metrics(
                {
                    f"agreement_{k}": float(agreed[k])
                    for k in ("mqls_per_week", "expected_wins_per_week", "realized_wins_per_week",
                              "expected_share_of_wins", "realized_share_of_wins")
                    if agreed[k] == agreed[k]
                }
            )  # fmt: skip
        tracking.log_frames({k: v for k, v in handoff.items() if v is not None})
        example = (
            example_records(data.tables, data.as_of, schema=bundle.input_schema)
            if bundle.input_schema is not None
            else holdout.X.head(5).reset_index(drop=True)
        )
        logged = log_model(bundle, example)
        # the plots, drawn meanwhile, and the report complete the run before its model becomes
        # a registered version: a figure that fails leaves a failed run, and no version
        report_html = _report(
            catalog, data, ts, audited, model, holdout, tracking.log_plots(drawing), counts, run
        )
        tracking.log_text(report_html, "report.html")
        version, champion = register(
            logged, bundle.as_of, config.mlflow.registered_model, make_champion
        )
        text = _description(catalog, data, ts, holdout, opportunity, version, champion)
        tracking.describe_run(run.info.run_id, text)
        describe_model(config.mlflow.registered_model, version, text, _model_text(catalog))
    return RecordedRun(
        run.info.run_id, run.info.run_name, run.info.experiment_id, report_html, version, champion
    )


def _tags(
    catalog: Catalog,
    job: str,
    data: LoadedData,
    ts: TrainingSet,
    audited: AuditedFeatures,
    model: LeadScoringModel,
    config_hash: str,
) -> dict[str, str]:
    activities = "not counted (on Spark)" if data.activity_rows is None else data.activity_rows
    return {
        "as_of": data.as_of.isoformat(),
        "data_fingerprint": str(data.fingerprint),
        "data_shape": catalog.config.data.shape,
        "split_method": ts.split_method,
        "point_in_time": str(catalog.shape.point_in_time).lower(),
        "calibration": model.calibration_method_,
        "job": job,
        "engine": catalog.engine,
        "screened_columns": ", ".join(ts.screened) or "none",
        "leakage_flagged": ", ".join(audited.flagged) or "none",
        "leakage_dropped": ", ".join(audited.audit.dropped) or "none",
        "config_hash": config_hash,
        "git_commit": git_commit(),
        "data_leads": str(len(data.tables.leads)),
        "data_activities": str(activities),
        "data_deals": str(len(data.tables.deals)),
        "n_features": str(audited.X.shape[1]),
        "n_examples": str(len(audited.X)),
    }


def _interval(evaluation: object, name: str) -> str:
    metrics, intervals = evaluation.metrics, evaluation.intervals  # type: ignore[attr-defined]
    low, high = intervals.get(name, (float("nan"), float("nan")))
    return f"{metrics.get(name, float('nan')):.3f} ({low:.3f} to {high:.3f})"


def _description(
    catalog: Catalog,
    data: LoadedData,
    ts: TrainingSet,
    holdout: Holdout,
    opportunity: OpportunityModel | None,
    version: str,
    champion: bool,
) -> str:
    """What a run and its model version say in MLflow's UI: data, holdout figures, verdict."""
    config, e = catalog.config, holdout.evaluation
    lines = [
        f"Trained as of {data.as_of:%Y-%m-%d} on {len(data.tables.leads):,} leads "
        f"(shape {config.data.shape}, data {data.fingerprint}); {len(ts.rows):,} examples of "
        + (
            "leads marketing held (not yet accepted by sales)"
            if ts.point_in_time and config.lifecycle.sql_from != "none"
            else "open leads"
        )
        + f", split {ts.split_method}.",
        f"Holdout ({ts.holdout_kind}): ROC AUC {_interval(e, 'roc_auc')}, "
        f"ECE {_interval(e, 'ece')}, lift in the top 10% {_interval(e, 'lift_at_10')}.",
    ]
    if opportunity is not None:
        lines.append(
            "Opportunity model (leads with sales): ROC AUC "
            f"{_interval(opportunity.holdout.evaluation, 'roc_auc')}."
        )
    lines.append(
        f"Agreement '{config.agreement.name}'. Registered as {config.mlflow.registered_model} "
        f"version {version}"
        + (" (made champion)." if champion else " (not champion when registered).")
    )
    return "\n".join(lines)


def _model_text(catalog: Catalog) -> str:
    window = catalog.config.snapshots.conversion_window_days
    return (
        f"leadscore lead scoring: the calibrated probability that an open lead is won within "
        f"{window} days, with a 1-99 score, a grade, fit and engagement sub-scores and the top "
        "reasons. Leads marketing holds are scored by the lead model; leads already with "
        "sales by the opportunity model (never MQL). The alias 'champion' marks the version "
        "scoring uses; each version's description gives its holdout figures and the gate's "
        "verdict."
    )


def _population_tags(
    catalog: Catalog, bundle: ScoringBundle, opportunity: OpportunityModel | None
) -> dict[str, str]:
    lifecycle = bundle.lifecycle
    return {
        "population": "leads marketing holds (not yet accepted by sales)"
        if lifecycle is not None
        else "every open lead (no lifecycle)",
        "lifecycle_sql_from": "none" if lifecycle is None else lifecycle.sql_from,
        "opportunity_model": "yes" if opportunity is not None else "no",
        "agreement": catalog.config.agreement.name,
    }


def _report(
    catalog: Catalog,
    data: LoadedData,
    ts: TrainingSet,
    audited: AuditedFeatures,
    model: LeadScoringModel,
    holdout: Holdout,
    figures: dict[str, bytes],
    counts: dict[str, int],
    run: mlflow.ActiveRun,
) -> str:
    """The one-file HTML report of the run (passwords hidden)."""
    config = catalog.config
    activities = "on Spark" if data.activity_rows is None else f"{data.activity_rows:,}"
    evaluation = holdout.evaluation
    return redact_text(
        render(
            ReportInputs(
                title=f"leadscore model report: {run.info.run_name}",
                run_id=run.info.run_id,
                metrics=evaluation.metrics,
                intervals=evaluation.intervals,
                grades=evaluation.grades,
                segments=evaluation.segments,
                audit=audited.audit.records(),
                summary={
                    "as of": f"{data.as_of:%Y-%m-%d %H:%M} UTC",
                    "split": ts.split_method,
                    "data fingerprint": data.fingerprint,
                    "config hash": config_fingerprint(config),
                    "leads / activities / deals": f"{len(data.tables.leads):,} / {activities}"
                    f" / {len(data.tables.deals):,}",
                    **{k.replace("_", " "): f"{v:,}" for k, v in counts.items()},
                    "cutoffs": ts.rows["cutoff"].nunique(),
                    "features": audited.X.shape[1],
                    "calibration": model.calibration_method_,
                    "best iteration": model.best_iteration_,
                },
                notes=catalog.warnings,
                config_yaml=yaml.safe_dump(config_as_dict(config), sort_keys=False),
                plots=figures,
            )
        )
    )
