"""Reasons: the features that pushed a lead's score up, in plain words."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd


def _remembered(describe: Callable[[str, object], str]) -> Callable[[str, object], str]:
    """`describe` that words each (feature, value) once per call site: across a chunk of leads
    the same counts and categories recur thousands of times."""
    texts: dict[tuple[str, object], str] = {}

    def text(feature: str, value: object) -> str:
        try:
            return texts[(feature, value)]
        except KeyError:
            texts[(feature, value)] = out = describe(feature, value)
            return out
        except TypeError:  # an unhashable value
            return describe(feature, value)

    return text


def top_reasons(
    X: pd.DataFrame,
    contributions: pd.DataFrame,
    describe: Callable[[str, object], str],
    max_reasons: int = 3,
    min_impact: float = 0.05,
) -> list[list[dict[str, object]]]:
    """Per row, up to `max_reasons` features with the largest positive log-odds contribution.

    Each reason is {feature, value, impact, text}. Features below `min_impact` are not reasons,
    and neither are absences (a zero count or a missing value): "did not open an email" may
    nudge the model, but it is not a reason a sales rep can act on.
    """
    features = [c for c in contributions.columns if c != "bias"]
    values = contributions[features].to_numpy()
    k = min(max_reasons, len(features))
    if k == 0:
        return [[] for _ in range(len(X))]
    raw = X[features].to_numpy(dtype=object)
    describe = _remembered(describe)
    absent = pd.isna(X[features]).to_numpy() | (X[features] == 0).to_numpy()
    values = np.where(absent, -np.inf, values)
    top = np.argpartition(-values, k - 1, axis=1)[:, :k]
    top_values = np.take_along_axis(values, top, axis=1)
    order = np.argsort(-top_values, axis=1)
    top = np.take_along_axis(top, order, axis=1)
    top_values = np.take_along_axis(top_values, order, axis=1)
    out: list[list[dict[str, object]]] = []
    for i in range(len(X)):
        reasons = []
        for j, impact in zip(top[i], top_values[i], strict=True):
            if impact < min_impact:
                break
            feature = features[j]
            value = raw[i, j]
            reasons.append(
                {
                    "feature": feature,
                    "value": value,
                    "impact": float(impact),
                    "text": describe(feature, value),
                }
            )
        out.append(reasons)
    return out


def strongest_against(
    X: pd.DataFrame,
    contributions: pd.DataFrame,
    describe: Callable[[str, object], str],
    min_impact: float = 0.05,
) -> list[dict[str, object] | None]:
    """Per row, the feature that lowered the score most (absences included: "No activity in
    the last year" is a fair reason against), or None when nothing lowered it by `min_impact`."""
    features = [c for c in contributions.columns if c != "bias"]
    if not features:
        return [None] * len(X)
    values = contributions[features].to_numpy()
    worst = values.argmin(axis=1)
    impact = values[np.arange(len(values)), worst]
    raw = X[features].to_numpy(dtype=object)
    describe = _remembered(describe)
    out: list[dict[str, object] | None] = []
    for i, (j, value) in enumerate(zip(worst, impact, strict=True)):
        if value > -min_impact:
            out.append(None)
            continue
        feature = features[j]
        out.append(
            {
                "feature": feature,
                "value": raw[i, j],
                "impact": float(value),
                "text": describe(feature, raw[i, j]),
            }
        )
    return out
