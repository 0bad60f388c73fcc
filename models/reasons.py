"""Reasons: the features that pushed a lead's score up, in plain words."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

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


def _absent(frame: pd.DataFrame) -> np.ndarray:
    """Absences (a zero count or a missing value), which are never reasons up."""
    return pd.isna(frame).to_numpy() | (frame == 0).to_numpy()


def _strongest_up(values: np.ndarray, absent: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the `k` columns with the largest contributions (absences last), strongest
    first, and those contributions."""
    ranked = np.where(absent, -np.inf, values)
    top = np.argpartition(-ranked, k - 1, axis=1)[:, :k]
    top_values = np.take_along_axis(ranked, top, axis=1)
    order = np.argsort(-top_values, axis=1)
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_values, order, axis=1)


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
    top, top_values = _strongest_up(values, _absent(X[features]), k)
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


def _plain(value: object) -> object:
    """A JSON-friendly feature value (numpy numbers become Python numbers, NaN null)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def _json_value(value: object) -> str:
    """`json.dumps(_plain(value))`, with finite floats (most values) written as json does,
    by their repr, without the encoder's per-call cost (millions of calls at 1M leads)."""
    if isinstance(value, np.floating):
        value = value.item()
    if type(value) is float and np.isfinite(value):
        return repr(value)
    return json.dumps(_plain(value))


def _json_values(values: np.ndarray) -> np.ndarray:
    """`_json_value` of each of `values` (objects): a column of floats (most features) at
    once, numpy printing the shortest repr Python prints; anything else value by value."""
    try:
        floats = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        floats = None
    plain = floats is not None and all(type(v) is float or type(v) is np.float64 for v in values)
    out = np.empty(len(values), dtype=object)
    if not plain:
        out[:] = [_json_value(v) for v in values]
        return out
    out[:] = floats.astype(str)
    odd = ~np.isfinite(floats)
    out[odd] = [_json_value(v) for v in floats[odd]]  # null, Infinity
    return out


@dataclass(frozen=True)
class ReasonColumns:
    """The reason columns of a chunk of leads, one entry per lead."""

    reasons: np.ndarray  # "; "-joined sentences of the reasons up ("" when none)
    against: np.ndarray  # the sentence of the reason against ("" when none)
    structured: np.ndarray  # JSON: [{feature, value, impact}, ...], ups then the one against


def reason_columns(
    X: pd.DataFrame,
    contributions: pd.DataFrame,
    describe: Callable[[str, object], str],
    max_reasons: int = 3,
    min_impact: float = 0.05,
) -> ReasonColumns:
    """What `top_reasons` and `strongest_against` give, as the three text columns scoring
    writes, built per distinct (feature, value) instead of per lead: each pair is worded and
    JSON-encoded once, and the per-lead strings are joined column-wise."""
    features = [c for c in contributions.columns if c != "bias"]
    n = len(X)
    values = contributions[features].to_numpy()
    k = min(max_reasons, len(features))
    frame = X[features]
    codes = np.empty((n, len(features)), dtype=np.int64)
    uniques = []
    for j, name in enumerate(features):  # each feature's values, factorized once
        codes[:, j], found = pd.factorize(frame[name], use_na_sentinel=False)
        uniques.append(np.asarray(found, dtype=object))

    slots: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (feature, impact, valid)
    if k > 0:
        top, top_values = _strongest_up(values, _absent(frame), k)
        valid = np.cumprod(top_values >= min_impact, axis=1).astype(bool)  # stop at the first
        slots = [(top[:, s], top_values[:, s], valid[:, s]) for s in range(k)]
    worst = values.argmin(axis=1) if features else np.zeros(n, dtype=np.int64)
    worst_value = values[np.arange(n), worst] if features else np.zeros(n)
    against_valid = worst_value <= -min_impact if features else np.zeros(n, dtype=bool)

    names_json = [json.dumps(name) for name in features]
    many = getattr(describe, "many", None)
    # per feature and value code, once worded: the sentence and the JSON up to the impact
    texts = [np.full(len(u), None, dtype=object) for u in uniques]
    fragments = [np.full(len(u), None, dtype=object) for u in uniques]

    def word(j: int, wanted: np.ndarray) -> None:
        """Word feature j's value codes `wanted` (distinct) that are not worded yet."""
        fresh = wanted[texts[j][wanted] == None]  # noqa: E711 (elementwise)
        if not len(fresh):
            return
        values = uniques[j][fresh]
        if many is not None:
            texts[j][fresh] = many(features[j], values)
        else:
            texts[j][fresh] = [describe(features[j], v) for v in values]
        head = f'{{"feature": {names_json[j]}, "value": '
        fragments[j][fresh] = head + _json_values(values) + ', "impact": '

    def words(feature: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per lead: the sentence and the JSON start of (feature, its value), "" if not valid;
        each distinct pair is worded once."""
        rows = np.flatnonzero(valid)
        sentence = np.full(n, "", dtype=object)
        start = np.full(n, "", dtype=object)
        picked = feature[rows].astype(np.int64)
        for j in np.unique(picked):
            at = rows[picked == j]
            code = codes[at, j]
            word(int(j), np.unique(code))
            sentence[at], start[at] = texts[j][code], fragments[j][code]
        return sentence, start

    def impact_text(impact: np.ndarray) -> np.ndarray:
        """round(v, 4) as JSON writes it: numpy prints the same shortest repr as Python (each
        distinct one once: printing a float is the slow part)."""
        bits = np.round(impact, 4).view(np.int64)  # by bit pattern: -0.0 is not 0.0
        distinct, at = np.unique(bits, return_inverse=True)
        return distinct.view(np.float64).astype(str).astype(object)[at]

    reasons = np.full(n, "", dtype=object)
    structured = np.full(n, "", dtype=object)
    for s, (feature, impact, valid) in enumerate(slots):
        sentence, start = words(feature, valid)
        piece = np.where(valid, start + impact_text(np.where(valid, impact, 0.0)) + "}", "")
        glue = "; " if s else ""
        comma = ", " if s else ""
        reasons = np.where(valid, reasons + glue + sentence, reasons)
        structured = np.where(valid, structured + comma + piece, structured)
    against_sentence, against_start = words(worst, against_valid)
    against_piece = against_start + impact_text(np.where(against_valid, worst_value, 0.0)) + "}"
    has_up = structured != ""
    structured = np.where(
        against_valid,
        structured + np.where(has_up, ", ", "") + against_piece,
        structured,
    )
    return ReasonColumns(
        reasons=reasons,
        against=np.where(against_valid, against_sentence, ""),
        structured="[" + structured + "]",
    )
