"""Fit and engagement sub-scores: the model's log-odds split by feature family."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

QUANTILES = 201


def family_logits(
    contributions: pd.DataFrame, family_of: Callable[[str], str], families: Sequence[str]
) -> pd.DataFrame:
    """Per row, the sum of each family's TreeSHAP contributions, plus the model's `bias`.

    The columns add up to the raw log-odds exactly: bias + sum over families.
    """
    features = [c for c in contributions.columns if c != "bias"]
    out = {
        family: contributions[[f for f in features if family_of(f) == family]].sum(axis=1)
        for family in families
    }
    out["bias"] = contributions["bias"]
    return pd.DataFrame(out, index=contributions.index)


def reference_quantiles(values: np.ndarray) -> np.ndarray:
    """A compact picture of a population's values, to rank new leads against."""
    return np.quantile(np.asarray(values, dtype=float), np.linspace(0, 1, QUANTILES))


def to_subscore(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """1-99: where each value falls among the reference population (50 = a typical lead)."""
    rank = np.searchsorted(reference, np.asarray(values, dtype=float), side="right")
    share = rank / len(reference)
    return np.clip(np.rint(share * 100), 1, 99).astype(np.int64)
