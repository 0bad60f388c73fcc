"""The lead-scoring estimator: LightGBM with early stopping, then calibration."""

from __future__ import annotations

import re

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from leadscore.models import tree_shap
from leadscore.models.calibration import choose_calibrator


def categorical_columns(X: pd.DataFrame) -> list[str]:
    """Columns LightGBM should treat as categories: anything that is not a number."""
    return [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]


def booster_names(names: list[str]) -> list[str]:
    """Feature names LightGBM accepts, one per feature, in order.

    LightGBM stores its model as JSON and refuses names holding `" , : [ ] { }`, which real
    CRM exports use (`Lead: Source`). The booster gets ASCII names made unique by position;
    everything a person reads keeps the original names (`feature_names_in_`)."""
    safe = [re.sub(r"[^0-9A-Za-z_]+", "_", str(name)).strip("_") or "feature" for name in names]
    if len(set(safe)) == len(safe) and safe == [str(n) for n in names]:
        return safe
    return [f"f{i}_{name}" for i, name in enumerate(safe)]


class LeadScoringModel(ClassifierMixin, BaseEstimator):
    """Gradient-boosted trees on point-in-time features, with calibrated probabilities.

    `fit` trains on (X, y), stops early on the time-forward validation slice (X_val, y_val), and
    calibrates on a separate held-back slice (X_cal, y_cal), choosing isotonic or sigmoid by
    out-of-fold log loss (`groups_cal` keeps each lead's rows in one fold). Categorical columns go
    to LightGBM as pandas categories with the categories seen in training; unseen values and
    absent columns count as missing.
    """

    def __init__(
        self,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 100,
        n_estimators: int = 2000,
        early_stopping_rounds: int = 100,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        calibration: str = "auto",
        random_state: int = 0,
        n_jobs: int = 2,
    ) -> None:
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.n_estimators = n_estimators
        self.early_stopping_rounds = early_stopping_rounds
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.calibration = calibration
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _encode(self, X: pd.DataFrame) -> pd.DataFrame:
        """The booster's input: columns in training order under the booster's names, categories
        with the categories seen in training (unseen and absent values are missing)."""
        X = X.reindex(columns=list(self.feature_names_in_))  # absent columns count as missing
        encoded = []
        for c in X.columns:
            if c in self.categories_:
                known = X[c].astype(object).where(X[c].isin(self.categories_[c]))  # unseen -> NaN
                encoded.append(pd.Categorical(known, categories=self.categories_[c]))
            else:
                encoded.append(pd.to_numeric(X[c], errors="coerce").astype("float64").to_numpy())
        # models saved before booster names existed were trained under the original names
        names = getattr(self, "booster_names_", None) or list(self.feature_names_in_)
        return pd.DataFrame(dict(zip(names, encoded, strict=True)), index=X.index)

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray | pd.Series,
        *,
        X_val: pd.DataFrame,
        y_val: np.ndarray | pd.Series,
        X_cal: pd.DataFrame,
        y_cal: np.ndarray | pd.Series,
        groups_cal: np.ndarray | None = None,
    ) -> LeadScoringModel:
        y = np.asarray(y).astype(int)
        y_val = np.asarray(y_val).astype(int)
        y_cal = np.asarray(y_cal).astype(int)
        for name, labels in (("training", y), ("validation", y_val), ("calibration", y_cal)):
            if len(np.unique(labels)) < 2:
                raise ValueError(f"the {name} slice has only one class; cannot fit")
        self.feature_names_in_ = np.array(X.columns, dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self.booster_names_ = booster_names(list(X.columns))
        self.categories_ = {
            c: sorted(X[c].dropna().astype(str).unique()) for c in categorical_columns(X)
        }
        self.classes_ = np.array([0, 1])
        self.booster_ = lgb.LGBMClassifier(
            objective="binary",
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            n_estimators=self.n_estimators,
            subsample=self.subsample,
            subsample_freq=1,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            verbose=-1,
        ).fit(
            self._encode(X),
            y,
            eval_X=(self._encode(X_val),),
            eval_y=(y_val,),
            eval_metric="binary_logloss",
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
        )
        self.best_iteration_ = int(self.booster_.best_iteration_ or self.n_estimators)
        self.calibrator_, self.calibration_losses_ = choose_calibrator(
            self.decision_function(X_cal), y_cal, groups_cal, self.calibration
        )
        return self

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated log-odds of the booster."""
        return self.booster_.predict(
            self._encode(X), raw_score=True, num_iteration=self.best_iteration_, **self._threads()
        )

    def proba_from_margin(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated probabilities from raw log-odds (e.g. summed contributions)."""
        return self.calibrator_.predict(margin)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.proba_from_margin(self.decision_function(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Exact TreeSHAP contributions to the log-odds; columns are features plus `bias`.

        Computed from per-leaf tables (`models.tree_shap`): the same numbers as LightGBM's
        `pred_contrib` (to rounding), several times faster. Models too deep for the tables fall
        back to LightGBM's own."""
        tables = self._shap_tables()
        if tables is None:
            return self.exact_contributions(X)
        values = tree_shap.contributions(tables, self._as_floats(self._encode(X)), self.n_jobs)
        return pd.DataFrame(values, index=X.index, columns=[*self.feature_names_in_, "bias"])

    def exact_contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """LightGBM's own TreeSHAP (`pred_contrib`): the reference `contributions` must match."""
        values = self.booster_.predict(
            self._encode(X),
            pred_contrib=True,
            num_iteration=self.best_iteration_,
            **self._threads(),
        )
        return pd.DataFrame(values, index=X.index, columns=[*self.feature_names_in_, "bias"])

    @staticmethod
    def _threads() -> dict[str, int]:
        """LightGBM's prediction threads: one in a process that works on one thread
        (`tree_shap.use_one_thread`), else its own setting."""
        return {"num_threads": 1} if tree_shap.one_thread() else {}

    def prepare_explaining(self) -> None:
        """Build the TreeSHAP tables and load (or compile) the one-thread kernel now, running it
        on one row on this thread: no thread pool is started."""
        tables = self._shap_tables()
        if tables is not None:
            tree_shap.contributions(tables, np.zeros((1, tables.n_features)), threads=1)

    def _shap_tables(self) -> tree_shap.LeafTables | None:
        if not hasattr(self, "_tables"):
            dump = self.booster_.booster_.dump_model(num_iteration=self.best_iteration_)
            fits = tree_shap.table_bytes(dump) <= tree_shap.MAX_BYTES
            self._tables = tree_shap.build_tables(dump) if fits else None
        return self._tables

    @staticmethod
    def _as_floats(encoded: pd.DataFrame) -> np.ndarray:
        """The booster's input as float64: category codes for categories, NaN for missing."""
        out = np.empty(encoded.shape, dtype=np.float64)
        for j, c in enumerate(encoded.columns):
            column = encoded[c]
            if isinstance(column.dtype, pd.CategoricalDtype):
                codes = column.cat.codes.to_numpy().astype(np.float64)
                out[:, j] = np.where(codes < 0, np.nan, codes)
            else:
                out[:, j] = column.to_numpy(dtype=np.float64)
        return out

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_tables", None)  # rebuilt from the booster on first use
        return state

    def feature_importance(self) -> pd.Series:
        """Total gain per feature, largest first."""
        gain = self.booster_.booster_.feature_importance(
            importance_type="gain", iteration=self.best_iteration_
        )
        return pd.Series(gain, index=self.feature_names_in_).sort_values(ascending=False)

    @property
    def calibration_method_(self) -> str:
        return self.calibrator_.method
