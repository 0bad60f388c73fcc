"""Calibrating the booster's log-odds into probabilities that mean what they say."""

from __future__ import annotations

from typing import Literal

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

Method = Literal["isotonic", "sigmoid"]
EPS = 1e-6
MIN_WINS = 10


class MarginCalibrator(BaseEstimator):
    """Map raw log-odds to probabilities with isotonic regression or Platt's sigmoid.

    Platt scaling is fit on the margin (log-odds), where it is a two-parameter logistic
    regression; sklearn's CalibratedClassifierCV would fit it on LightGBM's probabilities.
    """

    def __init__(self, method: Method = "isotonic") -> None:
        self.method = method

    def fit(self, margin: np.ndarray, y: np.ndarray) -> MarginCalibrator:
        margin = np.asarray(margin, dtype=float).reshape(-1)
        if self.method == "isotonic":
            self.estimator_ = IsotonicRegression(
                y_min=EPS, y_max=1 - EPS, out_of_bounds="clip"
            ).fit(margin, y)
        elif self.method == "sigmoid":
            self.estimator_ = LogisticRegression(C=1e6).fit(margin.reshape(-1, 1), y)
        else:
            raise ValueError(f"unknown calibration method {self.method!r}")
        return self

    def predict(self, margin: np.ndarray) -> np.ndarray:
        margin = np.asarray(margin, dtype=float).reshape(-1)
        if self.method == "isotonic":
            return np.clip(self.estimator_.predict(margin), EPS, 1 - EPS)
        return self.estimator_.predict_proba(margin.reshape(-1, 1))[:, 1]


Folds = list[tuple[np.ndarray, np.ndarray]]


def calibration_folds(
    margin: np.ndarray, y: np.ndarray, groups: np.ndarray | None, n_splits: int = 5
) -> Folds:
    """Stratified folds that keep a lead's rows together (when there are enough leads)."""
    if groups is not None and len(np.unique(groups)) >= n_splits:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=0)
        return list(splitter.split(margin, y, groups))
    return list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=0).split(margin, y))


def cross_validated_log_loss(
    method: Method,
    margin: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None,
    n_splits: int = 5,
    folds: Folds | None = None,
) -> float:
    """Out-of-fold log loss of a calibrator, so isotonic's flexibility is not rewarded for free
    (`folds`: made once for every candidate, or here)."""
    if folds is None:
        folds = calibration_folds(margin, y, groups, n_splits)
    out = np.empty(len(y), dtype=float)
    for fit_idx, eval_idx in folds:
        out[eval_idx] = (
            MarginCalibrator(method).fit(margin[fit_idx], y[fit_idx]).predict(margin[eval_idx])
        )
    return float(log_loss(y, out, labels=[0, 1]))


def choose_calibrator(
    margin: np.ndarray, y: np.ndarray, groups: np.ndarray | None, method: str = "auto"
) -> tuple[MarginCalibrator, dict[str, float]]:
    """Fit the requested calibrator, or under 'auto' the one with lower out-of-fold log loss."""
    wins = int(np.sum(y))
    if wins < MIN_WINS or len(y) - wins < MIN_WINS:
        raise ValueError(
            f"the calibration slice has {wins} wins in {len(y)} rows; at least {MIN_WINS} of "
            "each class are needed"
        )
    candidates: list[Method] = ["isotonic", "sigmoid"] if method == "auto" else [method]  # type: ignore[list-item]
    folds = calibration_folds(margin, y, groups)  # the same folds judge every candidate
    losses = {m: cross_validated_log_loss(m, margin, y, groups, folds=folds) for m in candidates}
    best = min(losses, key=losses.__getitem__)
    return MarginCalibrator(best).fit(margin, y), losses
