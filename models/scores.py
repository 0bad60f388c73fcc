"""Turning calibrated probabilities into the score and grade marketing reads."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd


def to_score(y_proba: np.ndarray) -> np.ndarray:
    """Score 1-99: the calibrated probability in percent, so a 30 is won about 30% of the time."""
    return np.clip(np.rint(np.asarray(y_proba, dtype=float) * 100), 1, 99).astype(np.int64)


def to_grade(y_proba: np.ndarray, bands: Mapping[str, float], fallback: str = "D") -> pd.Series:
    """The first grade whose minimum probability the lead reaches; `bands` is ordered best first."""
    y_proba = np.asarray(y_proba, dtype=float)
    grade = np.full(len(y_proba), fallback, dtype=object)
    for name, threshold in reversed(list(bands.items())):
        grade[y_proba >= threshold] = name
    return pd.Series(grade, dtype=object)
