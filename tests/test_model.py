"""Model behaviour: the planted signal is recovered and probabilities are calibrated."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from leadscore.features.build import build_features
from leadscore.features.snapshots import SPLITS
from leadscore.features.tables import CrmTables, clean, crm_as_of
from leadscore.features.training_set import timed_training_set
from leadscore.models.calibration import MarginCalibrator, choose_calibrator
from leadscore.models.evaluation import expected_calibration_error, holdout_metrics, lift_at
from leadscore.models.lead_model import LeadScoringModel
from leadscore.pipeline.config import load_config
from leadscore.pipeline.steps.examples import feature_spec
from leadscore.pipeline.synthetic_crm import generate_crm

AS_OF = pd.Timestamp("2026-11-01", tz="UTC")


@pytest.fixture(scope="module")
def trained():
    crm = generate_crm(12_000, seed=7)
    tables = clean(crm_as_of(CrmTables(crm.accounts, crm.leads, crm.activities, crm.deals), AS_OF))
    config = load_config(
        None,
        (
            "features.exclude=[disqualify_reason]",
            "features.identifiers=[lead_id, account_id, deal_id, name]",
        ),
    )
    ts = timed_training_set(
        tables, config.snapshots, config.split, feature_spec(config), AS_OF, build_features
    )
    part = {k: (ts.rows["split"] == k).to_numpy() for k in SPLITS}
    model = LeadScoringModel(random_state=0).fit(
        ts.X[part["train"]],
        ts.rows["label"][part["train"]],
        X_val=ts.X[part["valid"]],
        y_val=ts.rows["label"][part["valid"]],
        X_cal=ts.X[part["calibration"]],
        y_cal=ts.rows["label"][part["calibration"]],
        groups_cal=ts.rows["lead_id"][part["calibration"]].to_numpy(),
    )
    return model, ts, part, crm


def test_holdout_auc_well_above_chance_and_beats_fit_only(trained):
    model, ts, part, _ = trained
    y = ts.rows["label"][part["holdout"]]
    p = model.predict_proba(ts.X[part["holdout"]])[:, 1]
    assert roc_auc_score(y, p) > 0.85


def test_planted_drivers_are_among_top_features(trained):
    model = trained[0]
    top = set(model.feature_importance().head(12).index)
    # intent (high-value activity, opportunity) and fit (title/seniority, company) were planted
    assert top & {"has_open_deal", "days_since_deal_created"}
    assert top & {
        "act_high_value_7d",
        "act_high_value_30d",
        "act_high_value_90d",
        "engagement_decay",
        "act_demo_request_30d",
        "act_meeting_30d",
    }
    assert top & {"job_title", "seniority"}
    assert "disqualify_reason" not in model.feature_names_in_
    assert "email" not in model.feature_names_in_


def test_holdout_probabilities_are_calibrated(trained):
    model, ts, part, _ = trained
    y = ts.rows["label"][part["holdout"]].to_numpy()
    p = model.predict_proba(ts.X[part["holdout"]])[:, 1]
    assert expected_calibration_error(y, p) <= 0.05
    assert abs(p.mean() - y.mean()) < 0.01


def test_unseen_category_and_missing_values_are_scored(trained):
    model, ts, part, _ = trained
    X = ts.X[part["holdout"]].head(3).copy()
    X["source"] = "carrier pigeon"
    X["account_employees"] = np.nan
    p = model.predict_proba(X)[:, 1]
    assert np.isfinite(p).all() and ((p > 0) & (p < 1)).all()


def test_contributions_sum_to_the_raw_log_odds(trained):
    model, ts, part, _ = trained
    X = ts.X[part["holdout"]].head(50)
    contrib = model.contributions(X)
    np.testing.assert_allclose(contrib.sum(axis=1), model.decision_function(X), atol=1e-6)


def test_fit_refuses_a_single_class_slice():
    X = pd.DataFrame({"a": np.arange(20.0)})
    with pytest.raises(ValueError, match="only one class"):
        both = np.r_[np.zeros(10), np.ones(10)]
        LeadScoringModel().fit(X, np.zeros(20), X_val=X, y_val=both, X_cal=X, y_cal=both)


@pytest.mark.parametrize(("shape", "expected"), [("logistic", "sigmoid"), ("step", "isotonic")])
def test_auto_calibration_picks_the_method_that_fits_the_shape(shape, expected):
    rng = np.random.default_rng(0)
    margin = rng.normal(0, 2, 20_000)
    if shape == "logistic":
        p = 1 / (1 + np.exp(-(0.7 * margin - 1)))
    else:
        p = np.where(margin > 1, 0.6, np.where(margin > -1, 0.3, 0.02))
    y = (rng.random(margin.size) < p).astype(int)
    calibrator, losses = choose_calibrator(margin, y, None, "auto")
    assert calibrator.method == expected, losses
    assert set(losses) == {"isotonic", "sigmoid"}


def test_calibrator_is_monotone_and_bounded():
    rng = np.random.default_rng(1)
    margin = rng.normal(size=2000)
    y = (rng.random(2000) < 1 / (1 + np.exp(-margin))).astype(int)
    for method in ("isotonic", "sigmoid"):
        p = MarginCalibrator(method).fit(margin, y).predict(np.linspace(-10, 10, 101))
        assert (np.diff(p) >= -1e-12).all() and (p > 0).all() and (p < 1).all()


def test_metrics_match_hand_computed_cases():
    y = np.array([0, 0, 1, 1, 0, 1, 0, 0, 0, 1])
    p = np.array([0.05, 0.15, 0.85, 0.75, 0.15, 0.95, 0.05, 0.25, 0.35, 0.45])
    metrics = holdout_metrics(y, p)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert metrics["brier"] == pytest.approx(np.mean((p - y) ** 2))
    # bins: [0,.1): 2 rows mean p .05 win 0 -> gap .1 total; [.1,.2): 2 rows .3 total vs 0 ...
    by_hand = (
        abs(0 - 0.10)
        + abs(0 - 0.30)
        + abs(0 - 0.25)
        + abs(0 - 0.35)
        + abs(1 - 0.45)
        + abs(1 - 0.75)
        + abs(1 - 0.85)
        + abs(1 - 0.95)
    ) / 10
    assert expected_calibration_error(y, p) == pytest.approx(by_hand)
    assert lift_at(y, p, 0.1) == pytest.approx(1 / 0.4)
    assert lift_at(y, p, 0.5) == pytest.approx((4 / 5) / 0.4)
