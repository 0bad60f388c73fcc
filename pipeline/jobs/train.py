"""The training job: load -> as-of -> snapshots -> features -> audit -> train -> calibrate ->
evaluate -> register."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import pandas as pd

from leadscore.pipeline.catalog import Catalog, LoadedData
from leadscore.pipeline.config import Config
from leadscore.pipeline.io.tracking_uri import store_made_aside

if TYPE_CHECKING:  # LightGBM, scikit-learn, MLflow and matplotlib load once the input is good
    from leadscore.models.evaluation import Evaluation
    from leadscore.models.scoring import RecordRules, ScoringBundle
    from leadscore.pipeline.steps.leakage import AuditResult


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    run_name: str
    experiment_id: str
    version: str
    made_champion: bool
    as_of: pd.Timestamp
    holdout_kind: str  # how the holdout was drawn, in words
    evaluation: Evaluation  # on the holdout
    calibration: str
    importance: pd.Series
    audit: AuditResult
    kept_flagged: list[str]  # flagged by the audit, still features (policy warn)
    report_html: str
    data: LoadedData  # what it was trained on (retrain judges the champion on the same)
    holdout: pd.DataFrame  # lead_id, cutoff, label


def train(
    catalog: Catalog,
    as_of: pd.Timestamp | None,
    job: str = "train",
    make_champion: bool | None = None,
) -> TrainResult:
    """Train, evaluate on the holdout, and register the model in MLflow.

    Nothing stamped at or after the run's time is used. `make_champion` None: the model becomes
    champion only if there is none yet; False: never (a retrain's challenger, which the gate
    decides on)."""
    config, steps = catalog.config, catalog.steps
    data = catalog.load_as_of(as_of, activities="whole", with_fingerprint=True)
    # the input is good: now the store (a run refused for its input leaves none behind) and the
    # libraries that train, evaluate and record (a refused run does not wait for them). A new
    # store's tables are made on the other core while the examples are built; a store that is
    # there is opened now, so that a problem with it is found before any work
    new_store = store_made_aside()
    try:
        from leadscore.models.raw_records import InputSchema
        from leadscore.models.what_closes import what_closes
        from leadscore.pipeline.io.tracking import configure_tracking
        from leadscore.pipeline.steps.examples import labelled_examples, lifecycle_rule
        from leadscore.pipeline.steps.leakage import audited_features
        from leadscore.pipeline.steps.modelling import (
            evaluate_holdout,
            fit_model,
            marketing_examples,
            opportunity_model,
            scoring_bundle,
        )
        from leadscore.pipeline.steps.recording import record_training, slice_counts

        if new_store is None:
            configure_tracking()
        examples = labelled_examples(data, catalog)
        audited = audited_features(examples, data.tables, config, steps)
    except BaseException:  # a refused run leaves a whole store, as it did
        if new_store is not None:
            new_store.wait()
        raise
    if new_store is not None:  # made (or its problem met, once), before the lead model is fit
        problem = new_store.result()
        if problem is not None:
            raise problem
        configure_tracking()
    counts = slice_counts(examples)
    steps.note(
        " / ".join(f"{counts[f'n_{k}']:,} {k}" for k in examples.masks())
        + f" examples, {examples.rows['cutoff'].nunique()} cutoffs, {audited.X.shape[1]} features"
    )
    leads, X = marketing_examples(examples, audited.X, config, steps)
    model = fit_model(leads, X, config, steps)
    holdout = evaluate_holdout(model, leads, X, data.tables, config, steps)
    bundle = scoring_bundle(model, audited.spec, data.tables, data.as_of, holdout, X, leads)
    sales = opportunity_model(examples, audited, data, config, steps)
    learnings = what_closes(X, leads.rows, holdout.X, holdout.contributions, bundle.describer())
    # raw records need time (a creation date, activities): shape flat's models take features
    # identifiers, contact details, excluded and screened columns: never read by the model, so
    # neither in its signature nor in its example
    private = audited.spec.skip_columns
    schema = InputSchema.of(data.tables, private) if leads.point_in_time else None
    bundle = replace(
        bundle,
        learnings=learnings,
        input_schema=schema,
        grade_thresholds=_thresholds(bundle, config),
        rules=_rules(config),
        lifecycle=lifecycle_rule(config),
        opportunity=None
        if sales is None
        else replace(
            sales.bundle,
            input_schema=schema,
            grade_thresholds=_thresholds(sales.bundle, config),
            rules=_rules(config),
        ),
        holdout_fraction=config.split.holdout_lead_fraction if leads.point_in_time else None,
    )
    run = record_training(
        catalog, job, data, leads, audited, model, holdout, bundle, make_champion, sales
    )
    return TrainResult(
        run_id=run.run_id,
        run_name=run.run_name,
        experiment_id=run.experiment_id,
        version=run.version,
        made_champion=run.made_champion,
        as_of=data.as_of,
        holdout_kind=examples.holdout_kind,
        evaluation=holdout.evaluation,
        calibration=model.calibration_method_,
        importance=model.feature_importance(),
        audit=audited.audit,
        kept_flagged=audited.kept_flagged,
        report_html=run.report_html,
        data=data,
        holdout=holdout.rows,
    )


def _thresholds(bundle: ScoringBundle, config: Config) -> dict[str, float]:
    from leadscore.models.scores import grade_thresholds

    s = config.scoring
    return grade_thresholds(bundle.holdout["probability"].to_numpy(), s.grades, s.grade_by)


def _rules(config: Config) -> RecordRules:
    from leadscore.models.scoring import RecordRules

    s = config.scoring
    return RecordRules(s.grade_by, dict(s.grades), s.max_reasons, s.min_reason_impact)
