"""Holdout metrics: discrimination, calibration and lift."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


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


def lift_at(y: np.ndarray, y_proba: np.ndarray, share: float = 0.1) -> float:
    """Win rate among the top `share` of scores divided by the overall win rate."""
    y = np.asarray(y, dtype=float)
    n_top = max(1, int(np.ceil(share * len(y))))
    top = np.argsort(-np.asarray(y_proba), kind="stable")[:n_top]
    base = y.mean()
    return float(y[top].mean() / base) if base > 0 else float("nan")


def holdout_metrics(y: np.ndarray, y_proba: np.ndarray) -> dict[str, float]:
    """The metrics every run reports, computed on data the model never saw."""
    y = np.asarray(y).astype(int)
    y_proba = np.asarray(y_proba, dtype=float)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, y_proba)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, y_proba)) if both else float("nan"),
        "brier": float(brier_score_loss(y, y_proba)),
        "log_loss": float(log_loss(y, y_proba, labels=[0, 1])),
        "ece": expected_calibration_error(y, y_proba),
        "lift_at_10": lift_at(y, y_proba, 0.1),
        "positive_rate": float(y.mean()),
        "n": float(len(y)),
    }


def grade_table(y: np.ndarray, y_proba: np.ndarray, grades: pd.Series) -> pd.DataFrame:
    """Per grade: holdout leads, their actual and predicted win rate, and their share of wins."""
    frame = pd.DataFrame({"grade": np.asarray(grades), "won": np.asarray(y), "p": y_proba})
    table = frame.groupby("grade").agg(
        leads=("won", "size"),
        win_rate=("won", "mean"),
        predicted=("p", "mean"),
        wins=("won", "sum"),
    )
    total = max(frame["won"].sum(), 1)
    table["share_of_wins"] = table["wins"] / total
    return table.drop(columns="wins").sort_index()
