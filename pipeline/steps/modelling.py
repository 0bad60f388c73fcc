"""The steps from features to a model: train with early stopping, calibrate, evaluate on the
holdout, and gather what scoring needs into a bundle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from leadscore.features.build import FeatureSpec, feature_info
from leadscore.features.families import FAMILIES, feature_family
from leadscore.features.lifecycle import MARKETING, SALES
from leadscore.features.segments import UnknownSegment, segment_columns
from leadscore.features.tables import CrmTables
from leadscore.features.training_set import TrainingSet, class_problem
from leadscore.models.drift import reference_from
from leadscore.models.evaluation import Evaluation, evaluate
from leadscore.models.lead_model import LeadScoringModel
from leadscore.models.scores import assign_grades
from leadscore.models.scoring import ScoringBundle
from leadscore.models.subscores import family_logits, reference_quantiles
from leadscore.pipeline.config import Config
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.progress import Steps
from leadscore.pipeline.steps.leakage import AuditedFeatures

if TYPE_CHECKING:
    from leadscore.pipeline.catalog import LoadedData


def fit_model(
    ts: TrainingSet,
    X: pd.DataFrame,
    config: Config,
    steps: Steps,
    title: str = "Training LightGBM with early stopping, then calibrating",
) -> LeadScoringModel:
    """LightGBM on the train slice, early stopping on valid, calibration on its own slice."""
    parts = ts.masks()
    y = ts.rows["label"]
    with steps.step(title):
        return LeadScoringModel(**config.model.model_dump()).fit(
            X[parts["train"]],
            y[parts["train"]],
            X_val=X[parts["valid"]],
            y_val=y[parts["valid"]],
            X_cal=X[parts["calibration"]],
            y_cal=y[parts["calibration"]],
            groups_cal=ts.rows.loc[parts["calibration"], "lead_id"].to_numpy(),
        )


def evaluate_predictions(
    y: np.ndarray, p: np.ndarray, lead_ids: pd.Series, tables: CrmTables, config: Config
) -> Evaluation:
    """Holdout metrics with bootstrap intervals over leads, the grade table and segments."""
    s = config.scoring
    try:
        segments = segment_columns(tables, lead_ids, config.evaluation.segments)
    except UnknownSegment as exc:
        raise InputError(str(exc)) from None
    return evaluate(
        y,
        p,
        lead_ids.to_numpy(),
        assign_grades(p, s.grades, s.grade_by),
        segments,
        config.evaluation.bootstrap,
    )


@dataclass(frozen=True)
class Holdout:
    """The model on the holdout: the rows, what it predicted, why, and how well."""

    rows: pd.DataFrame  # lead_id, cutoff, label
    X: pd.DataFrame
    p: np.ndarray
    contributions: pd.DataFrame
    evaluation: Evaluation

    @property
    def y(self) -> np.ndarray:
        return self.rows["label"].to_numpy()


def evaluate_holdout(
    model: LeadScoringModel, ts: TrainingSet, X: pd.DataFrame, tables: CrmTables, config: Config,
    steps: Steps,
) -> Holdout:  # fmt: skip
    """The model's predictions and contributions on the holdout slice, measured."""
    part = ts.masks()["holdout"]
    rows = ts.rows.loc[part, ["lead_id", "cutoff", "label"]]
    with steps.step("Evaluating on the holdout (bootstrap intervals, grades, segments)"):
        X_hold = X[part]
        p = model.predict_proba(X_hold)[:, 1]
        evaluation = evaluate_predictions(
            rows["label"].to_numpy(), p, rows["lead_id"], tables, config
        )
        contributions = model.contributions(X_hold)
    return Holdout(rows, X_hold, p, contributions, evaluation)


def scoring_bundle(
    model: LeadScoringModel,
    spec: FeatureSpec,
    tables: CrmTables,
    as_of: pd.Timestamp,
    holdout: Holdout,
    X: pd.DataFrame,
    ts: TrainingSet,
) -> ScoringBundle:
    """What scoring needs besides the estimator: the feature spec, the holdout predictions (for
    grade win rates), each sub-score's reference, the drift reference, and how each feature
    reads in a reason (from the tables trained on: column names, values' spellings).

    The drift reference is the newest cutoffs (valid, calibration and holdout): counts that
    grow with calendar time (an account's leads) would drift against older ones."""
    logits = family_logits(holdout.contributions, feature_family, FAMILIES)
    newest = ~ts.masks()["train"]
    return ScoringBundle(
        model,
        spec,
        as_of,
        pd.DataFrame(
            {
                "lead_id": holdout.rows["lead_id"].to_numpy(),
                "cutoff": holdout.rows["cutoff"].to_numpy(),
                "label": holdout.y,
                "probability": holdout.p,
            }
        ),
        {family: reference_quantiles(logits[family]) for family in FAMILIES},
        reference_from(X[newest], model.predict_proba(X[newest])[:, 1]),
        feature_info(tables, spec, list(model.feature_names_in_)),
    )


def marketing_examples(
    ts: TrainingSet, X: pd.DataFrame, config: Config, steps: Steps
) -> tuple[TrainingSet, pd.DataFrame]:
    """The lead model's examples: snapshots of leads marketing still held (not yet accepted by
    sales) at their cutoff. Their label stays "won within the window". Every example when the
    export has no lifecycle."""
    leads, X_leads = ts.only(MARKETING, X)
    with_sales = len(ts.rows) - len(leads.rows)
    if with_sales:
        steps.note(
            f"Lead model: {len(leads.rows):,} snapshots of leads marketing held; "
            f"{with_sales:,} of leads already with sales are left to the opportunity model"
        )
    v = config.validation
    problem = class_problem(leads.rows, v.min_wins, v.min_losses, config.split.min_wins)
    if problem is not None:
        raise InputError(
            f"the leads marketing holds (not yet accepted by sales): {problem}. Leads become "
            f"SQL by lifecycle.sql_from={config.lifecycle.sql_from!r}; set lifecycle.sql_from "
            "to none to train on every open lead"
        )
    return leads, X_leads


@dataclass(frozen=True)
class OpportunityModel:
    """The model of leads already with sales, and how it did on their holdout."""

    model: LeadScoringModel
    holdout: Holdout
    bundle: ScoringBundle


def opportunity_model(
    ts: TrainingSet, audited: AuditedFeatures, data: LoadedData, config: Config, steps: Steps
) -> OpportunityModel | None:
    """A second model for the leads sales has accepted, so that they get a score of their own
    instead of one learnt from marketing's leads only; None (said why) when there are too few
    of them to judge it on.

    It learns from every open lead, marketing's and sales', deal features included, and is
    judged on the holdout's leads with sales only. Learning from leads with sales alone was
    measured worse (demo data as of 2026-06-01, about 1,000 such snapshots: holdout AUC 0.44
    against 0.55, and 0.42 against 0.61 on the leads with sales scored that day)."""
    if not config.lifecycle.opportunity_model or not (ts.rows["stage"] == SALES).any():
        return None
    sales, X_sales = ts.only(SALES, audited.X)
    held = sales.rows.loc[sales.masks()["holdout"], "label"]
    wins, losses = int(held.sum()), int(len(held) - held.sum())
    if min(wins, losses) < config.split.min_wins:
        steps.note(
            f"No opportunity model: the holdout has {wins:,} wins and {losses:,} non-wins among "
            f"leads already with sales (split.min_wins: {config.split.min_wins}); they are "
            "scored by the lead model, apart, and never MQL"
        )
        return None
    model = fit_model(
        ts, audited.X, config, steps, "Training the opportunity model (every open lead)"
    )
    holdout = evaluate_holdout(model, sales, X_sales, data.tables, config, steps)
    bundle = scoring_bundle(model, audited.spec, data.tables, data.as_of, holdout, audited.X, ts)
    return OpportunityModel(model, holdout, bundle)
