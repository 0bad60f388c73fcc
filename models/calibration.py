"""Calibrating the booster's log-odds into probabilities that mean what they say."""

from __future__ import annotations

import math
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
        if n_splits < 8 and len(np.unique(y)) < 8:  # where the sums below are NumPy's
            return stratified_group_folds(y, groups, n_splits, seed=0)
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=0)
        return list(splitter.split(margin, y, groups))
    return list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=0).split(margin, y))


def stratified_group_folds(y: np.ndarray, groups: np.ndarray, n_splits: int, seed: int) -> Folds:
    """The folds of scikit-learn's `StratifiedGroupKFold(n_splits, shuffle=True,
    random_state=seed)` (as of scikit-learn 1.8, which changed how shuffled groups are mapped),
    the same ones (tested), computed faster. For fewer than 8 folds and 8 classes: NumPy sums 8
    or more numbers pairwise, not one after the other as here.

    Its greedy pass puts each group in the fold that keeps the classes' shares most even, and
    weighs every candidate fold with NumPy calls on a folds x classes array: about 0.3 ms a
    group, 11 s for a calibration slice of 60,000 leads. Here the same arithmetic runs on Python
    floats in the same order (sums over folds one fold after the other, as NumPy reduces along
    an outer axis; counts are whole numbers, exact as floats), so every comparison comes out as
    NumPy's does."""
    rng = np.random.RandomState(seed)
    _, y_inv, y_cnt = np.unique(np.asarray(y).reshape(-1), return_inverse=True, return_counts=True)
    _, groups_inv = np.unique(groups, return_inverse=True)
    n_groups, n_classes = int(groups_inv.max()) + 1, len(y_cnt)
    y_counts_per_group = np.zeros((n_groups, n_classes))
    np.add.at(y_counts_per_group, (groups_inv, y_inv), 1)
    perm = np.arange(n_groups)
    rng.shuffle(perm)
    y_counts_per_group = y_counts_per_group[perm]
    inv_perm = np.empty_like(perm)
    inv_perm[perm] = np.arange(perm.size)
    groups_inv = inv_perm[groups_inv]
    order = np.argsort(-np.std(y_counts_per_group, axis=1), kind="stable")

    class_totals = [float(c) for c in y_cnt]
    fold_counts = [[0.0] * n_classes for _ in range(n_splits)]
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    group_rows = y_counts_per_group.tolist()
    for group in order.tolist():
        added = group_rows[group]
        best, best_eval, best_samples = -1, math.inf, math.inf
        for candidate in range(n_splits):
            spread = 0.0
            for c in range(n_classes):
                shares = [
                    (counts[c] + added[c] if f == candidate else counts[c]) / class_totals[c]
                    for f, counts in enumerate(fold_counts)
                ]
                mean = _sequential_sum(shares) / n_splits
                squares = [(share - mean) * (share - mean) for share in shares]
                spread = spread + math.sqrt(_sequential_sum(squares) / n_splits)
            fold_eval = spread / n_classes
            samples = _sequential_sum(fold_counts[candidate])
            close = abs(fold_eval - best_eval) <= 1e-08 + 1e-05 * abs(best_eval)  # np.isclose
            if fold_eval < best_eval or (close and samples < best_samples):
                best, best_eval, best_samples = candidate, fold_eval, samples
        fold_counts[best] = [a + b for a, b in zip(fold_counts[best], added, strict=True)]
        fold_of_group[group] = best
    row_folds = fold_of_group[groups_inv]
    return [
        (np.flatnonzero(row_folds != fold), np.flatnonzero(row_folds == fold))
        for fold in range(n_splits)
    ]


def _sequential_sum(values: list[float]) -> float:
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


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
