"""Holdout metrics match scikit-learn and hand computations; bootstrap intervals resample whole
leads; segments fold rare values into "(other)"; an evaluation logs every metric with bounds."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from leadscore.models.evaluation import (
    METRICS,
    Evaluation,
    bootstrap_intervals,
    capture_at,
    evaluate,
    expected_calibration_error,
    holdout_metrics,
    lift_at,
    segment_metrics,
)


def logistic_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes drawn from a logistic model, with the model's own probabilities as scores."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    p = 1 / (1 + np.exp(-(-1.0 + 1.5 * x)))
    y = (rng.random(n) < p).astype(int)
    return y, p


def width(interval: tuple[float, float]) -> float:
    return interval[1] - interval[0]


# --- holdout_metrics ---------------------------------------------------------------------------


def test_holdout_metrics_on_a_four_row_case_computed_by_hand():
    y = np.array([0, 1, 1, 0])
    p = np.array([0.2, 0.6, 0.8, 0.7])
    m = holdout_metrics(y, p)
    # Pairs (positive, negative): 0.6 < 0.7 is the one misordered pair of four.
    assert m["roc_auc"] == pytest.approx(0.75)
    # Ranked 0.8 (win), 0.7, 0.6 (win): precision 1 at recall 1/2, 2/3 at recall 1.
    assert m["pr_auc"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert m["log_loss"] == pytest.approx(
        -(math.log(0.8) + math.log(0.6) + math.log(0.8) + math.log(0.3)) / 4
    )
    assert m["brier"] == pytest.approx((0.04 + 0.16 + 0.04 + 0.49) / 4)
    assert m["positive_rate"] == 0.5
    assert m["n"] == 4.0
    assert m["wins"] == 2.0


def test_holdout_metrics_match_scikit_learn_with_ties_and_bool_labels():
    rng = np.random.default_rng(5)
    y = rng.random(60) < 0.3
    p = np.round(np.clip(0.3 + 0.4 * (y - 0.3) + rng.normal(0, 0.2, 60), 0.01, 0.99), 1)
    m = holdout_metrics(y, p)  # rounding to one decimal leaves many tied scores
    yi = y.astype(int)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(yi, p))
    assert m["pr_auc"] == pytest.approx(average_precision_score(yi, p))
    assert m["log_loss"] == pytest.approx(log_loss(yi, p))
    assert m["brier"] == pytest.approx(brier_score_loss(yi, p))
    assert m["wins"] == float(yi.sum())
    assert m["positive_rate"] == pytest.approx(yi.mean())
    assert m["n"] == 60.0


def test_holdout_metrics_returns_exactly_the_logged_metrics_and_counts():
    y, p = logistic_sample(200, seed=1)
    assert set(holdout_metrics(y, p)) == {*METRICS, "positive_rate", "n", "wins"}


def test_one_class_holdout_has_undefined_auc_but_a_finite_log_loss():
    m = holdout_metrics(np.zeros(6, dtype=int), np.full(6, 0.2))
    assert math.isnan(m["roc_auc"])
    assert math.isnan(m["pr_auc"])
    assert math.isnan(m["lift_at_10"])
    assert math.isnan(m["capture_at_20"])
    assert m["log_loss"] == pytest.approx(-math.log(0.8))
    assert m["brier"] == pytest.approx(0.04)
    assert m["ece"] == pytest.approx(0.2)


# --- lift and capture --------------------------------------------------------------------------

# Ten leads ranked best first; wins at ranks 1, 3 and 7.
Y10 = np.array([1, 0, 1, 0, 0, 0, 1, 0, 0, 0])
P10 = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])


def test_capture_at_20_is_the_share_of_wins_in_the_top_two_of_ten():
    assert capture_at(Y10, P10, 0.2) == pytest.approx(1 / 3)
    assert capture_at(Y10, P10, 0.3) == pytest.approx(2 / 3)
    # The order of rows does not matter, only the scores.
    order = np.random.default_rng(0).permutation(10)
    assert capture_at(Y10[order], P10[order], 0.2) == pytest.approx(1 / 3)
    assert holdout_metrics(Y10, P10)["capture_at_20"] == pytest.approx(1 / 3)


def test_lift_at_10_is_the_top_win_rate_over_the_base_rate():
    # Top 10% of ten is one lead, a win: 1 / 0.3.
    assert lift_at(Y10, P10, 0.1) == pytest.approx(10 / 3)
    # Top 30% (three leads, two wins): (2/3) / 0.3.
    assert lift_at(Y10, P10, 0.3) == pytest.approx((2 / 3) / 0.3)
    assert holdout_metrics(Y10, P10)["lift_at_10"] == pytest.approx(10 / 3)


def test_lift_and_capture_round_the_top_share_up():
    # 15% of ten rows is 1.5 leads: the top two count.
    assert lift_at(Y10, P10, 0.15) == pytest.approx(0.5 / 0.3)  # top two: one win
    assert capture_at(Y10, P10, 0.25) == pytest.approx(2 / 3)  # 2.5 of ten: the top three


def test_lift_and_capture_are_undefined_without_wins():
    assert math.isnan(lift_at(np.zeros(5), np.linspace(0, 1, 5)))
    assert math.isnan(capture_at(np.zeros(5), np.linspace(0, 1, 5)))


# --- expected calibration error ----------------------------------------------------------------


def test_ece_pools_each_probability_bin_before_taking_the_gap():
    y = np.array([0, 1, 0, 1, 0])
    p = np.array([0.12, 0.18, 0.85, 0.95, 1.0])
    # Bins of width 0.1: [0.1, 0.2) holds 0.12 and 0.18 (1 win, 0.30 predicted): gap 0.70;
    # [0.8, 0.9) holds 0.85 (0 wins): 0.85; the top bin holds 0.95 and 1.0 (1 win, 1.95): 0.95.
    assert expected_calibration_error(y, p) == pytest.approx((0.70 + 0.85 + 0.95) / 5)


def test_ece_is_zero_when_every_bin_wins_as_often_as_predicted():
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    p = np.array([0.25, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75])
    assert expected_calibration_error(y, p) == pytest.approx(0.0)


def test_ece_with_fewer_bins_merges_gaps_that_cancel():
    y = np.array([1, 0])
    p = np.array([0.3, 0.7])
    assert expected_calibration_error(y, p, n_bins=10) == pytest.approx(0.7)  # 0.7 and 0.7
    assert expected_calibration_error(y, p, n_bins=1) == pytest.approx(0.0)  # 1 win, 1.0 predicted


# --- bootstrap intervals -----------------------------------------------------------------------


def test_bootstrap_is_deterministic_for_a_seed():
    y, p = logistic_sample(300, seed=2)
    first = bootstrap_intervals(y, p, n_boot=50, seed=7)
    assert bootstrap_intervals(y, p, n_boot=50, seed=7) == first
    assert bootstrap_intervals(y, p, n_boot=50, seed=8)["roc_auc"] != first["roc_auc"]
    assert set(first) == set(METRICS)


def test_bootstrap_interval_brackets_the_point_estimate():
    y, p = logistic_sample(2000, seed=3)
    point = holdout_metrics(y, p)
    intervals = bootstrap_intervals(y, p, n_boot=200, seed=0)
    for name in ("roc_auc", "pr_auc", "log_loss", "brier"):
        low, high = intervals[name]
        assert low < point[name] < high, name
    # A 95% interval of an AUC near 0.78 from 2,000 rows is a few hundredths wide, not 0 or 0.5.
    assert 0.02 < width(intervals["roc_auc"]) < 0.08


def test_bootstrap_intervals_narrow_with_four_times_the_data():
    y_small, p_small = logistic_sample(2000, seed=4)
    y_big, p_big = logistic_sample(8000, seed=4)
    small = bootstrap_intervals(y_small, p_small, n_boot=150, seed=0)
    big = bootstrap_intervals(y_big, p_big, n_boot=150, seed=0)
    # The width shrinks like 1/sqrt(n): about half.
    for name in ("roc_auc", "log_loss", "brier"):
        assert width(big[name]) < 0.7 * width(small[name]), name
        assert width(big[name]) > 0.3 * width(small[name]), name


def test_group_bootstrap_of_duplicated_leads_equals_row_bootstrap_of_the_leads():
    """Each lead appears ten times (shuffled); resampling whole leads draws the same samples as
    resampling the leads once each, so the intervals are the same."""
    y, p = logistic_sample(400, seed=6)
    ids = np.array([f"lead-{i}" for i in range(400)])
    perm = np.random.default_rng(1).permutation(4000)
    y10, p10, g10 = np.repeat(y, 10)[perm], np.repeat(p, 10)[perm], np.repeat(ids, 10)[perm]
    # Groups are numbered in order of first appearance.
    first_seen = pd.Index(ids).get_indexer(pd.unique(g10))
    once = bootstrap_intervals(y[first_seen], p[first_seen], n_boot=60, seed=3)
    grouped = bootstrap_intervals(y10, p10, groups=g10, n_boot=60, seed=3)
    for name in ("roc_auc", "pr_auc", "log_loss", "brier", "ece"):
        assert grouped[name] == pytest.approx(once[name], rel=1e-9), name


def test_group_bootstrap_is_much_wider_than_row_bootstrap_of_correlated_rows():
    y, p = logistic_sample(400, seed=6)
    y10, p10 = np.repeat(y, 10), np.repeat(p, 10)
    groups = np.repeat(np.arange(400), 10)
    rows = bootstrap_intervals(y10, p10, n_boot=100, seed=0)
    leads = bootstrap_intervals(y10, p10, groups=groups, n_boot=100, seed=0)
    # Ten perfectly correlated copies: row resampling is about sqrt(10) ~ 3.2 times too narrow.
    for name in ("roc_auc", "log_loss", "brier"):
        assert width(rows[name]) < 0.5 * width(leads[name]), name


def test_bootstrap_leaves_out_single_class_draws_of_the_metrics_that_need_both(monkeypatch):
    y = np.array([0, 0, 0, 0, 1, 0, 0, 0])
    p = np.linspace(0.1, 0.8, 8)
    seen: list[np.ndarray] = []
    real_percentile = np.percentile

    def spy(values, q, *args, **kwargs):
        seen.append(np.asarray(values))
        return real_percentile(values, q, *args, **kwargs)

    monkeypatch.setattr(np, "percentile", spy)
    intervals = bootstrap_intervals(y, p, n_boot=200, seed=0)
    monkeypatch.undo()
    # Two percentile calls per metric, in METRICS order.
    draws = dict(zip(METRICS, seen[::2], strict=True))
    assert len(draws["log_loss"]) == 200
    assert len(draws["brier"]) == 200
    # The lone win is missing from about (7/8)^8 = 34% of draws; those carry no AUC.
    assert 100 < len(draws["roc_auc"]) < 170
    assert len(draws["pr_auc"]) == len(draws["roc_auc"])
    assert np.all((draws["roc_auc"] >= 0) & (draws["roc_auc"] <= 1))
    low, high = intervals["roc_auc"]
    assert 0 <= low < high <= 1


def test_bootstrap_without_any_win_has_no_auc_interval():
    intervals = bootstrap_intervals(np.zeros(6, dtype=int), np.full(6, 0.2), n_boot=20)
    assert all(math.isnan(v) for v in intervals["roc_auc"])
    assert all(math.isnan(v) for v in intervals["capture_at_20"])
    assert intervals["log_loss"] == pytest.approx((-math.log(0.8), -math.log(0.8)))


# --- segments ----------------------------------------------------------------------------------


@pytest.fixture
def segment_case() -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    # web: rows 0-4, ads: 5-8, missing: 9-10, then three single values folded into "(other)".
    source = [*["web"] * 5, *["ads"] * 4, None, None, "email", "event", "partner"]
    #             web             | ads           | missing | (other)
    y = np.array([1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0])
    p = np.array([0.9, 0.6, 0.7, 0.2, 0.1, 0.3, 0.4, 0.2, 0.1, 0.8, 0.2, 0.5, 0.5, 0.3])
    us = {2, 3, 4, 6}  # all losses
    region = ["US" if i in us else "EU" for i in range(14)]
    return y, p, pd.DataFrame({"source": source, "region": region})


def test_segment_counts_wins_rates_and_folding(segment_case):
    y, p, segments = segment_case
    table = segment_metrics(y, p, segments, top=2, min_n=4)
    source = table[table["segment"] == "source"].set_index("value")
    assert list(source.index) == ["web", "ads", "(other)", "(missing)"]  # most rows first
    assert source["n"].to_dict() == {"web": 5, "ads": 4, "(other)": 3, "(missing)": 2}
    assert source["wins"].to_dict() == {"web": 2, "ads": 1, "(other)": 1, "(missing)": 1}
    assert source.loc["web", "win_rate"] == pytest.approx(0.4)
    assert source.loc["ads", "win_rate"] == pytest.approx(0.25)
    assert source.loc["(other)", "win_rate"] == pytest.approx(1 / 3)
    assert source.loc["web", "predicted"] == pytest.approx(0.5)
    assert source.loc["ads", "predicted"] == pytest.approx(0.25)
    assert source.loc["(missing)", "predicted"] == pytest.approx(0.5)
    assert list(table.columns) == [
        "segment",
        "value",
        "n",
        "wins",
        "win_rate",
        "predicted",
        "roc_auc",
    ]
    assert list(table["segment"]) == ["region"] * 2 + ["source"] * 4


def test_segment_auc_needs_min_n_rows_and_both_outcomes(segment_case):
    y, p, segments = segment_case
    table = segment_metrics(y, p, segments, top=2, min_n=4).set_index(["segment", "value"])
    auc = table["roc_auc"]
    assert auc["source", "web"] == pytest.approx(5 / 6)  # wins 0.9, 0.6 vs 0.7, 0.2, 0.1
    assert auc["source", "ads"] == pytest.approx(2 / 3)  # exactly min_n rows
    assert math.isnan(auc["source", "(other)"])  # both outcomes but 3 rows
    assert math.isnan(auc["source", "(missing)"])
    assert math.isnan(auc["region", "US"])  # 4 rows, no win
    eu = segments["region"].to_numpy() == "EU"
    assert auc["region", "EU"] == pytest.approx(roc_auc_score(y[eu], p[eu]))
    assert table.loc[("region", "EU"), "n"] == 10
    assert table.loc[("region", "EU"), "wins"] == 5


def test_segments_keep_every_value_within_top_and_default_min_n_hides_small_aucs(segment_case):
    y, p, segments = segment_case
    table = segment_metrics(y, p, segments)  # top 8, min_n 30
    values = set(table.loc[table["segment"] == "source", "value"])
    assert values == {"web", "ads", "(missing)", "email", "event", "partner"}
    assert table["roc_auc"].isna().all()
    assert table["n"].groupby(table["segment"]).sum().to_dict() == {"region": 14, "source": 14}


# --- evaluate and Evaluation.logged -------------------------------------------------------------


def test_evaluate_logs_every_metric_with_interval_bounds_and_no_nan():
    y, p = logistic_sample(600, seed=9)
    groups = np.repeat(np.arange(200), 3)
    grades = pd.Series(np.where(p > 0.5, "A", np.where(p > 0.2, "B", "C")))
    segments = pd.DataFrame({"source": np.where(np.arange(600) % 3 == 0, "web", "ads")})
    evaluation = evaluate(y, p, groups, grades, segments, n_boot=40)
    assert isinstance(evaluation, Evaluation)
    logged = evaluation.logged()
    expected = {*METRICS, "positive_rate", "n", "wins"}
    expected |= {f"{name}_ci_{side}" for name in METRICS for side in ("low", "high")}
    assert set(logged) == expected
    assert all(np.isfinite(v) for v in logged.values())
    for name in METRICS:
        assert logged[f"{name}_ci_low"] <= logged[f"{name}_ci_high"], name
    assert logged["n"] == 600
    assert logged["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert list(evaluation.grades.index) == ["A", "B", "C"]
    assert evaluation.grades["leads"].sum() == 600
    assert evaluation.segments.set_index("value")["n"].to_dict() == {"ads": 400, "web": 200}


def test_logged_leaves_out_undefined_metrics_and_bounds():
    evaluation = Evaluation(
        metrics={"roc_auc": float("nan"), "log_loss": 0.3, "n": 10.0},
        intervals={"roc_auc": (float("nan"), float("nan")), "log_loss": (0.25, 0.35)},
        grades=pd.DataFrame(),
        segments=pd.DataFrame(),
    )
    assert evaluation.logged() == {
        "log_loss": 0.3,
        "n": 10.0,
        "log_loss_ci_low": 0.25,
        "log_loss_ci_high": 0.35,
    }


def test_rows_without_a_group_id_are_each_their_own_group():
    y, p = np.array([0, 1, 0, 1]), np.array([0.4, 0.6, 0.9, 0.1])
    low, high = bootstrap_intervals(y, p, groups=np.array(["a", "b", None, None]))["roc_auc"]
    assert low < 0.5 < high  # the point AUC is 0.25: the unlabelled rows are drawn too


def test_a_rare_missing_value_keeps_its_own_row_beyond_the_top_values():
    y = np.array([1, 0, 0, 1, 0])
    segments = pd.DataFrame({"source": ["x", "x", "x", None, "y"]})
    table = segment_metrics(y, np.full(5, 0.3), segments, top=1)
    assert table.set_index("value")["n"].to_dict() == {"x": 3, "(missing)": 1, "(other)": 1}


@pytest.mark.parametrize("seed", range(12))
def test_the_fast_metrics_equal_scikit_learns(seed: int) -> None:
    """The bootstrap's own metrics give scikit-learn's values (ties, clipped extremes, rare
    wins), without its per-call input checks."""
    from leadscore.models.evaluation import average_precision, binary_log_loss, roc_auc

    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 3_000))
    y = (rng.random(n) < rng.uniform(0.01, 0.5)).astype(int)
    y[0], y[1] = 0, 1  # both classes
    p = rng.random(n)
    if seed % 2:  # blocks of tied scores, as isotonic calibration gives
        p = np.round(p, 1)
    if seed % 3 == 0:  # scores at the extremes, clipped by log loss
        p[:3] = [0.0, 1.0, 1.0]
    assert roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert average_precision(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert binary_log_loss(y, p) == pytest.approx(log_loss(y, p, labels=[0, 1]), rel=1e-12)


def test_a_draw_of_one_class_has_no_pr_auc_either() -> None:
    from leadscore.models.evaluation import _metric_values

    values = _metric_values(np.ones(20, dtype=int), np.linspace(0.1, 0.9, 20))
    assert math.isnan(values["roc_auc"]) and math.isnan(values["pr_auc"])
