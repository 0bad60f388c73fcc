"""Population drift: how far the leads scored now are from the ones the model learned from,
as the population stability index (PSI) per feature and for the score."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

EPS = 1e-4  # a share of zero would make PSI infinite
MISSING, OTHER = "(missing)", "(other)"


@dataclass(frozen=True)
class Binning:
    """Bins fitted on the reference population, and its share in each (missing last)."""

    edges: np.ndarray | None  # numeric: inner cut points; None for categories
    categories: tuple[str, ...]  # categorical: the reference's most common values
    reference: np.ndarray  # shares per bin, summing to 1

    def shares(self, values: pd.Series) -> np.ndarray:
        """The share of `values` in each bin."""
        missing = values.isna().to_numpy()
        if self.edges is not None:
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
            index = np.searchsorted(self.edges, numbers, side="right")
            n_bins = len(self.edges) + 1
        else:
            text = values.astype(object).where(~missing, None).astype(str).to_numpy()
            lookup = {c: i for i, c in enumerate(self.categories)}
            index = np.array([lookup.get(t, len(self.categories)) for t in text], dtype=int)
            n_bins = len(self.categories) + 1  # the last: any other value
        index = np.where(missing, n_bins, index)
        counts = np.bincount(index, minlength=n_bins + 1).astype(float)
        return counts / max(counts.sum(), 1.0)


def fit_binning(values: pd.Series, bins: int = 10, top: int = 10) -> Binning:
    """Deciles of a number (fewer when values repeat), or the `top` commonest categories."""
    present = values.dropna()
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = present.to_numpy(dtype=float)
        if len(numbers):
            quantiles = np.quantile(numbers, np.linspace(0, 1, bins + 1)[1:-1])
            edges = np.unique(quantiles)
        else:
            edges = np.array([], dtype=float)
        binning = Binning(edges=edges, categories=(), reference=np.array([]))
    else:
        counts = present.astype(str).value_counts()
        binning = Binning(edges=None, categories=tuple(counts.index[:top]), reference=np.array([]))
    return Binning(binning.edges, binning.categories, binning.shares(values))


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index: sum of (actual - expected) * ln(actual / expected)."""
    e = np.clip(np.asarray(expected, dtype=float), EPS, None)
    a = np.clip(np.asarray(actual, dtype=float), EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class DriftReference:
    """The training population, binned: each feature and the predicted probability."""

    features: dict[str, Binning] = field(default_factory=dict)
    score: Binning | None = None
    rows: int = 0


def reference_from(X: pd.DataFrame, probability: np.ndarray) -> DriftReference:
    """Fit the bins on the training rows (their features and out-of-fold-free predictions)."""
    return DriftReference(
        features={c: fit_binning(X[c]) for c in X.columns},
        score=fit_binning(pd.Series(probability, dtype=float)),
        rows=len(X),
    )


def drift_table(
    reference: DriftReference, X: pd.DataFrame, probability: np.ndarray, importance: pd.Series
) -> pd.DataFrame:
    """PSI of the score and of every feature the reference knows, with each feature's share of
    the model's total gain (a drifting feature the model barely uses matters less)."""
    gain_share = importance / max(float(importance.sum()), 1e-12)
    rows = []
    if reference.score is not None:
        now = reference.score.shares(pd.Series(probability, dtype=float))
        rows.append({"feature": "score", "psi": psi(reference.score.reference, now), "gain": 1.0})
    for name, binning in reference.features.items():
        if name not in X.columns:
            continue
        rows.append(
            {
                "feature": name,
                "psi": psi(binning.reference, binning.shares(X[name])),
                "gain": float(gain_share.get(name, 0.0)),
            }
        )
    frame = pd.DataFrame(rows, columns=["feature", "psi", "gain"])
    return frame.sort_values("psi", ascending=False, ignore_index=True)
