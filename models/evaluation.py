"""Holdout metrics: discrimination, calibration and lift, with bootstrap intervals; per grade and
per segment."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from leadscore.models.scores import grade_table


def expected_calibration_error(y: np.ndarray, y_proba: np.ndarray, n_bins: int = 10) -> float:
    """Weighted mean |win rate - mean prediction| over equal-width probability bins."""
    y, y_proba = np.asarray(y, dtype=float), np.asarray(y_proba, dtype=float)
    bins = np.minimum((y_proba * n_bins).astype(int), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.abs(
        np.bincount(bins, weights=y, minlength=n_bins)
        - np.bincount(bins, weights=y_proba, minlength=n_bins)
    )
    return float(gap.sum() / max(count.sum(), 1))


def _best(y_proba: np.ndarray, share: float) -> np.ndarray:
    """Row positions of the top `share` of scores (at least one; ties in row order)."""
    n_top = max(1, int(np.ceil(share * len(y_proba))))
    return np.argsort(-np.asarray(y_proba), kind="stable")[:n_top]


def lift_at(y: np.ndarray, y_proba: np.ndarray, share: float = 0.1) -> float:
    """Win rate among the top `share` of scores divided by the overall win rate."""
    y = np.asarray(y, dtype=float)
    top = _best(y_proba, share)
    base = y.mean()
    return float(y[top].mean() / base) if base > 0 else float("nan")


def capture_at(y: np.ndarray, y_proba: np.ndarray, share: float = 0.2) -> float:
    """The share of all wins found among the top `share` of scores."""
    y = np.asarray(y, dtype=float)
    top = _best(y_proba, share)
    wins = y.sum()
    return float(y[top].sum() / wins) if wins > 0 else float("nan")


# The metrics every run logs under these names, each with <name>_ci_low and <name>_ci_high.
METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_at_10", "capture_at_20")
HIGHER_IS_BETTER = {"roc_auc", "pr_auc", "lift_at_10", "capture_at_20"}


def roc_auc(y: np.ndarray, y_proba: np.ndarray) -> float:
    """`roc_auc_score` for 0/1 labels, as the Mann-Whitney statistic on average ranks (ties
    count a half): the same value without scikit-learn's input checks, which cost more than the
    metric in 200 bootstrap draws."""
    positive = y == 1
    n_pos = int(positive.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(y_proba)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(y: np.ndarray, y_proba: np.ndarray) -> float:
    """`average_precision_score` for 0/1 labels: precision at each distinct score, weighted by
    the recall it adds."""
    order = np.argsort(-y_proba, kind="mergesort")
    ranked, scores = y[order], y_proba[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # end of each tied block
    tps = np.cumsum(ranked)[last].astype(float)
    if len(tps) == 0 or tps[-1] == 0:
        return float("nan")
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def binary_log_loss(y: np.ndarray, y_proba: np.ndarray) -> float:
    """`log_loss(y, y_proba, labels=[0, 1])`: probabilities clipped to [eps, 1 - eps]."""
    eps = np.finfo(y_proba.dtype).eps
    p = np.clip(y_proba, eps, 1 - eps)
    return float(-np.mean(np.where(y == 1, np.log(p), np.log(1 - p))))


def _metric_values(y: np.ndarray, y_proba: np.ndarray) -> dict[str, float]:
    both = 0 < int(np.sum(y)) < len(y)  # a draw of one class has no AUC of either kind
    return {
        "roc_auc": roc_auc(y, y_proba),
        "pr_auc": average_precision(y, y_proba) if both else float("nan"),
        "log_loss": binary_log_loss(y, y_proba),
        "brier": float(np.mean((y - y_proba) ** 2)),
        "ece": expected_calibration_error(y, y_proba),
        "lift_at_10": lift_at(y, y_proba, 0.1),
        "capture_at_20": capture_at(y, y_proba, 0.2),
    }


def holdout_metrics(y: np.ndarray, y_proba: np.ndarray) -> dict[str, float]:
    """The metrics every run reports, computed on data the model never saw."""
    y = np.asarray(y).astype(int)
    y_proba = np.asarray(y_proba, dtype=float)
    extra = {"positive_rate": float(y.mean()), "n": float(len(y)), "wins": float(y.sum())}
    return {**_metric_values(y, y_proba), **extra}


def bootstrap_intervals(
    y: np.ndarray,
    y_proba: np.ndarray,
    groups: np.ndarray | None = None,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of every metric in METRICS.

    With `groups` (a lead id per row: the time-forward holdout has a lead at several cutoffs),
    whole groups are resampled, so a lead's rows are never split between draws; rows of one
    lead are not independent, and treating them as such would make the intervals too narrow.
    Draws with a single class leave out the metrics that need both."""
    y = np.asarray(y).astype(int)
    y_proba = np.asarray(y_proba, dtype=float)
    codes = np.arange(len(y)) if groups is None else pd.factorize(np.asarray(groups))[0]
    orphans = codes < 0  # a row without a group id is a group of its own
    codes[orphans] = codes.max(initial=-1) + 1 + np.arange(int(orphans.sum()))
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    members = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[members], np.arange(n_groups + 1))
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in METRICS}
    for _ in range(n_boot):
        picked = rng.integers(0, n_groups, n_groups)
        sizes = starts[picked + 1] - starts[picked]
        offsets = np.repeat(starts[picked] - np.cumsum(sizes) + sizes, sizes)
        rows = members[np.arange(sizes.sum()) + offsets]
        for name, value in _metric_values(y[rows], y_proba[rows]).items():
            if np.isfinite(value):
                draws[name].append(value)
    tail = (1 - level) / 2 * 100
    return {
        name: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail)))
        if v
        else (float("nan"), float("nan"))
        for name, v in draws.items()
    }


def segment_metrics(
    y: np.ndarray, y_proba: np.ndarray, segments: pd.DataFrame, top: int = 8, min_n: int = 30
) -> pd.DataFrame:
    """Per segment column and value (the `top` most common; the rest as "(other)", missing as
    "(missing)"): holdout rows, wins, actual and predicted win rate, and ROC AUC where the
    segment has both outcomes and at least `min_n` rows (a smaller one gets NaN, not noise)."""
    y = np.asarray(y).astype(int)
    y_proba = np.asarray(y_proba, dtype=float)
    rows = []
    for column in segments.columns:
        present = segments[column].notna()
        values = segments[column].astype(object).where(present, "(missing)").astype(str)
        common = values[present].value_counts().index[:top]  # missing is never lumped in
        values = values.where(values.isin(common) | ~present, "(other)").to_numpy()
        for value in pd.unique(values):
            mask = values == value
            yy, pp = y[mask], y_proba[mask]
            auc = (
                roc_auc(yy, pp) if len(np.unique(yy)) == 2 and mask.sum() >= min_n else float("nan")
            )
            rows.append(
                {
                    "segment": column,
                    "value": value,
                    "n": int(mask.sum()),
                    "wins": int(yy.sum()),
                    "win_rate": float(yy.mean()),
                    "predicted": float(pp.mean()),
                    "roc_auc": auc,
                }
            )
    columns = ["segment", "value", "n", "wins", "win_rate", "predicted", "roc_auc"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["segment", "n"], ascending=[True, False], ignore_index=True)


@dataclass(frozen=True)
class Evaluation:
    """A model's predictions on a holdout, measured: what every run logs and reports."""

    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    grades: pd.DataFrame
    segments: pd.DataFrame

    def logged(self) -> dict[str, float]:
        """The metrics and their interval bounds under MLflow names (finite values only)."""
        values = dict(self.metrics)
        for name, (low, high) in self.intervals.items():
            values[f"{name}_ci_low"], values[f"{name}_ci_high"] = low, high
        return {k: float(v) for k, v in values.items() if np.isfinite(v)}


def evaluate(
    y: np.ndarray,
    y_proba: np.ndarray,
    groups: np.ndarray | None,
    grades: pd.Series,
    segments: pd.DataFrame,
    n_boot: int = 200,
) -> Evaluation:
    """Metrics with bootstrap intervals (resampling `groups`), the grade table and segments."""
    y = np.asarray(y).astype(int)
    return Evaluation(
        metrics=holdout_metrics(y, y_proba),
        intervals=bootstrap_intervals(y, y_proba, groups, n_boot),
        grades=grade_table(y, y_proba, grades),
        segments=segment_metrics(y, y_proba, segments),
    )
