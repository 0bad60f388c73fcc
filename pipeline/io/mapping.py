"""Mapping an export onto the canonical names: renames, value maps, timestamps in local formats
and zones, rows dropped for missing values. The config's source section says how."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

import numpy as np
import pandas as pd

from leadscore.pipeline.config import (
    SourceConfig,
    TimestampSpec,
)
from leadscore.pipeline.errors import InputError

Warn = Callable[[str], None]


def examples(values: pd.Series, n: int = 3) -> str:
    return ", ".join(repr(v) for v in values.drop_duplicates().head(n).tolist())


def parse_timestamps(
    values: pd.Series, where: str, column: str, spec: TimestampSpec | None = None
) -> pd.Series:
    """Parse a column to UTC timestamps; values without a zone are in `spec.timezone` (UTC)."""
    spec = spec or TimestampSpec()
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values):
        return values.dt.tz_localize(spec.timezone).dt.tz_convert("UTC")
    text = values.astype("string").str.strip()
    try:
        if spec.format is not None:
            parsed = pd.to_datetime(text, format=spec.format, errors="coerce")
        else:
            parsed = pd.to_datetime(text, errors="coerce", format="mixed", utc=False)
    except (ValueError, TypeError):  # mixed zones: parse each to UTC
        parsed = pd.to_datetime(text, errors="coerce", format="mixed", utc=True)
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert("UTC")
    else:
        try:
            # The hour the clocks go back happens twice: take its first pass (summer time). The
            # hour they skip never happens: move such times forward to the change.
            first_pass = np.ones(len(parsed), dtype=bool)
            parsed = parsed.dt.tz_localize(
                spec.timezone, ambiguous=first_pass, nonexistent="shift_forward"
            )
        except Exception as exc:  # an unknown zone name
            raise InputError(
                f"{where}: column {column!r}: timezone {spec.timezone!r}: {exc}"
            ) from None
        parsed = parsed.dt.tz_convert("UTC")
    bad = parsed.isna() & text.notna() & (text != "")
    if bad.any():
        expected = (
            f"format {spec.format!r}" if spec.format else "ISO 8601 such as 2025-03-01T12:00:00Z"
        )

        raise InputError(
            f"{where}: column {column!r} has {int(bad.sum())} value(s) that are not timestamps "
            f"(expected {expected}), e.g. {examples(values[bad])}"
        )
    return parsed


def value_text(values: pd.Series) -> pd.Series:
    """Values as the text a value map's keys are written in: 1.0 (an int column with gaps,
    which pandas reads as floats) is "1"."""
    if pd.api.types.is_float_dtype(values):
        return values.map(
            lambda v: pd.NA if pd.isna(v) else str(int(v)) if float(v).is_integer() else str(v)
        ).astype("string")
    return values.astype("string")


def _fold(value: object) -> str:
    """How value-map keys and values are compared: 'Page View', 'page view', 'PAGE_VIEW' agree."""
    return re.sub(r"[\s\-/_]+", "_", str(value).strip().lower())


def _map_values(frame: pd.DataFrame, maps: dict[str, dict[str, str | None]], where: str) -> None:
    """Apply value maps in place on a frame this module owns.

    Keys match the text of a value ignoring case, spaces, hyphens and underscores.
    """
    for column, mapping in maps.items():
        targets = (
            [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
            if column == "*"
            else [column]
        )
        if column != "*" and column not in frame.columns:
            raise InputError(f"{where}: value map for column {column!r}, which it does not have")
        folded = {_fold(k): v for k, v in mapping.items()}
        for target in targets:
            text = value_text(frame[target]).map(_fold, na_action="ignore")
            hit = text.isin(list(folded)).fillna(False).astype(bool)
            if hit.any():
                mapped = frame[target].astype(object)
                mapped[hit.to_numpy()] = text[hit].map(folded).astype(object).to_numpy()
                frame[target] = mapped.where(mapped.notna(), None)


def map_source(
    raw: pd.DataFrame,
    spec: SourceConfig,
    where: str,
    warn: Warn | None = None,
    dropped: Counter[str] | None = None,
) -> pd.DataFrame:
    """Rename, map values, parse timestamps and drop unusable rows, as the source spec says.

    The frame keeps the raw rows' index, so a message about a later check still names the
    row of the source after rows were dropped.

    Dropped rows are warned about, or counted per column into `dropped` when the source is
    mapped a batch at a time (the caller warns once with the totals)."""
    unknown = [c for c in spec.rename if c not in raw.columns]
    if unknown:
        glued = len(raw.columns) == 1 and any(d in str(raw.columns[0]) for d in ";\t|,")
        hint = " Is csv.delimiter right? The header was read as one column." if glued else ""
        raise InputError(
            f"{where}: rename names column(s) {', '.join(map(repr, unknown))} that it does not "
            f"have (has: {', '.join(map(str, raw.columns))}).{hint}"
        )
    frame = raw.rename(columns=spec.rename)
    _map_values(frame, spec.values, where)
    for column, ts in spec.timestamps.items():
        if column not in frame.columns:
            raise InputError(f"{where}: timestamp format given for column {column!r}, not present")
        frame[column] = parse_timestamps(frame[column], where, column, ts)
    for column in spec.drop_rows_without:
        if column not in frame.columns:
            raise InputError(f"{where}: drop_rows_without names column {column!r}, not present")
        empty = frame[column].isna()
        if empty.any():
            if dropped is not None:
                dropped[column] += int(empty.sum())
            elif warn is not None:
                warn(
                    f"{where}: dropped {int(empty.sum()):,} of {len(frame):,} rows without {column}"
                )
            frame = frame[~empty]
    return frame  # indexed by source row (0 = the first data row): messages name rows by it


def as_key_type(ids: pd.Series, index: pd.Index) -> pd.Series:
    """Ids in the type of the table's key they point at: a text export of numbers matches
    numeric ids, and a CSV read a chunk at a time (which guesses types per chunk: numbers in
    one, text in the next) matches the whole table's."""
    if pd.api.types.is_numeric_dtype(index) and not pd.api.types.is_numeric_dtype(ids):
        return pd.to_numeric(ids, errors="coerce")
    if not pd.api.types.is_numeric_dtype(index) and pd.api.types.is_numeric_dtype(ids):
        return value_text(ids).astype(object)
    return ids
