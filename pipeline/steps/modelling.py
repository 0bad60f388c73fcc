"""The steps from features to a model: train with early stopping, calibrate, evaluate on the
holdout, and gather what scoring needs into a bundle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadscore.features.build import FeatureSpec, feature_info
from leadscore.features.families import FAMILIES, feature_family
from leadscore.features.segments import UnknownSegment, segment_columns
from leadscore.features.tables import CrmTables
from leadscore.features.training_set import TrainingSet
from leadscore.models.drift import reference_from
from leadscore.models.evaluation import Evaluation, evaluate
from leadscore.models.lead_model import LeadScoringModel
from leadscore.models.scores import assign_grades
from leadscore.models.scoring import ScoringBundle
from leadscore.models.subscores import family_logits, reference_quantiles
from leadscore.pipeline.config import Config
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.progress import Steps


def fit_model(ts: TrainingSet, X: pd.DataFrame, config: Config, steps: Steps) -> LeadScoringModel:
    """LightGBM on the train slice, early stopping on valid, calibration on its own slice."""
    parts = ts.masks()
    y = ts.rows["label"]
    with steps.step("Training LightGBM with early stopping, then calibrating"):
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
        pd.DataFrame({"label": holdout.y, "probability": holdout.p}),
        {family: reference_quantiles(logits[family]) for family in FAMILIES},
        reference_from(X[newest], model.predict_proba(X[newest])[:, 1]),
        feature_info(tables, spec, list(model.feature_names_in_)),
    )
