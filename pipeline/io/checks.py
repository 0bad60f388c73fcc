"""The checks every load runs on a canonical table (required columns, timestamps, unique keys,
outcomes, deals closed before created, join keys), and the canonical row order."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadscore.features.tables import (
    OUTCOMES,
    REQUIRED_COLUMNS,
    TIMESTAMP_COLUMNS,
    CrmTables,
    normalise_label,
    snake_case,
)
from leadscore.pipeline.config import Config
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io.mapping import Warn, examples, parse_timestamps

KEYS = {"accounts": "account_id", "leads": "lead_id", "deals": "deal_id"}


REQUIRED_TIMESTAMPS = {"created_at", "occurred_at"}  # closed_at is empty while a deal is open


JOINS = (  # (table, column) -> (table, key) it must point at
    ("leads", "account_id", "accounts", "account_id"),
    ("activities", "lead_id", "leads", "lead_id"),
    ("deals", "lead_id", "leads", "lead_id"),
)


SORT_KEYS = {
    "accounts": ["account_id"],
    "leads": ["lead_id"],
    "activities": ["lead_id", "occurred_at", "activity_type"],
    "deals": ["deal_id"],
}


@dataclass(frozen=True)
class Policies:
    """What a source's config says to do about rows that break a rule, instead of stopping."""

    duplicates: str = "fail"  # fail, or keep the first or last row of a repeated key
    closed_before_created: str = "fail"  # fail, or drop such rows
    key_label: str | None = None  # the key as the export names it, for messages
    warn: Warn | None = None  # told how many rows a policy dropped


def check_table(
    name: str, frame: pd.DataFrame, where: str, policies: Policies | None = None
) -> pd.DataFrame:
    """The table with timestamps parsed and outcomes normalised, checked: required columns,
    timestamps, unique non-empty keys, known outcomes, deals closed after they were created."""
    policies = policies or Policies()
    missing = [c for c in REQUIRED_COLUMNS[name] if c not in frame.columns]
    if missing:
        raise InputError(
            f"{where}: missing required column(s) {', '.join(map(repr, missing))} for the "
            f"{name} table (has: {', '.join(map(str, frame.columns))})"
        )
    frame = _timestamps(name, frame.copy(), where)
    key = KEYS.get(name)
    if key is not None:
        frame = _unique_keys(frame, key, where, policies)
    if "outcome" in frame.columns and name in ("deals", "leads"):
        frame["outcome"] = _outcomes(frame, where)
    if name == "deals":
        frame = _deal_dates(frame, where, policies)
    return frame


def _timestamps(name: str, frame: pd.DataFrame, where: str) -> pd.DataFrame:
    for column in TIMESTAMP_COLUMNS[name]:
        if column not in frame.columns:
            continue
        frame[column] = parse_timestamps(frame[column], where, column)
        if column in REQUIRED_TIMESTAMPS and frame[column].isna().any():
            rows = frame.index[frame[column].isna()]
            raise InputError(
                f"{where}: column {column!r} is empty in {len(rows)} row(s) (first at row "
                f"{int(rows[0]) + 1}); every row needs a timestamp (or list the column under "
                "drop_rows_without in the source's config)"
            )
    return frame


def _unique_keys(frame: pd.DataFrame, key: str, where: str, policies: Policies) -> pd.DataFrame:
    label = policies.key_label or key
    if frame[key].isna().any():
        raise InputError(
            f"{where}: column {label!r} has {int(frame[key].isna().sum())} empty key(s)"
        )
    dup = frame[key].duplicated(keep=False)
    if not dup.any():
        return frame
    if policies.duplicates == "fail":
        raise InputError(
            f"{where}: column {label!r} must be unique; {int(dup.sum())} rows share a value, "
            f"e.g. {examples(frame.loc[dup, key])}. Set duplicates: first or last in the "
            "source's config to keep one row of each"
        )
    keep = frame[~frame[key].duplicated(keep=policies.duplicates)]
    if policies.warn is not None:
        values = frame.loc[dup, key]
        policies.warn(
            f"{where}: {int(dup.sum()):,} rows share a {label} with another ({values.nunique():,} "
            f"values, e.g. {examples(values)}); kept the {policies.duplicates} of each, dropped "
            f"{len(frame) - len(keep):,} (duplicates: {policies.duplicates})"
        )
    return keep


def _outcomes(frame: pd.DataFrame, where: str) -> pd.Series:
    outcome = normalise_label(frame["outcome"])
    unknown = outcome.notna() & ~outcome.isin(OUTCOMES)
    if unknown.any():
        raise InputError(
            f"{where}: column 'outcome' has unknown value(s) "
            f"{examples(frame.loc[unknown, 'outcome'])} (expected 'won', 'lost' or empty "
            "while open; map other values under values: in the source's config)"
        )
    return outcome.astype(object).where(outcome.notna(), None)


def _deal_dates(frame: pd.DataFrame, where: str, policies: Policies) -> pd.DataFrame:
    label = policies.key_label or "deal_id"
    mismatch = frame["closed_at"].isna() != frame["outcome"].isna()
    if mismatch.any():
        raise InputError(
            f"{where}: columns 'closed_at' and 'outcome' must be both set or both empty; "
            f"{int(mismatch.sum())} row(s) differ, e.g. {label} "
            f"{examples(frame.loc[mismatch, 'deal_id'])}"
        )
    early = (frame["closed_at"] < frame["created_at"]).to_numpy()
    if not early.any():
        return frame
    if policies.closed_before_created == "fail":
        raise InputError(
            f"{where}: 'closed_at' is before 'created_at' in {int(early.sum())} row(s), e.g. "
            f"{label} {examples(frame.loc[early, 'deal_id'])}. Set closed_before_created: "
            "drop in the source's config to leave them out"
        )
    if policies.warn is not None:
        policies.warn(
            f"{where}: dropped {int(early.sum()):,} of {len(frame):,} rows closed before they "
            f"were created, e.g. {label} {examples(frame.loc[early, 'deal_id'])} "
            "(closed_before_created: drop)"
        )
    return frame[~early]


def check_joins(frames: dict[str, pd.DataFrame], where: dict[str, str]) -> list[str]:
    """Join keys must resolve. None resolving is fatal (usually a type mismatch such as
    '17' against 17); some not resolving is returned as a warning with examples."""
    warnings = []
    for table, column, target, key in JOINS:
        if column not in frames[table].columns:
            continue
        values = frames[table][column].dropna()
        if values.empty:
            continue
        unknown = ~values.isin(frames[target][key])
        if unknown.all() and not frames[target].empty:
            raise InputError(
                f"{where[table]}: no value of column {column!r} matches {target}.{key} in "
                f"{where[target]} (e.g. {examples(values)} against "
                f"{examples(frames[target][key])}; types {values.dtype} and "
                f"{frames[target][key].dtype})"
            )
        if unknown.any() and not frames[target].empty:
            warnings.append(
                f"{where[table]}: {int(unknown.sum()):,} of {len(values):,} rows have a "
                f"{column} not in {where[target]}, e.g. {examples(values[unknown])}; "
                "they are ignored"
            )
    return warnings


def canonical_order(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """`frame` in a canonical order of `keys` (stable), sorting integer codes with numpy:
    pandas' multi-column sort_values took 33 s for 24 million activities, this takes a few."""
    if not keys or len(frame) < 2:
        return frame.reset_index(drop=True)
    order = canonical_permutation([sort_codes(frame[key]) for key in keys])
    return (
        frame.reset_index(drop=True) if order is None else frame.take(order).reset_index(drop=True)
    )


def sort_codes(column: pd.Series) -> np.ndarray:
    """Integers that sort as `column`'s values do in the canonical order (missing first)."""
    if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(column):
        return pd.DatetimeIndex(column).as_unit("ns").asi8  # NaT: the smallest integer
    if pd.api.types.is_integer_dtype(column) and not column.hasnans:
        return column.to_numpy(dtype=np.int64)
    if isinstance(column.dtype, pd.CategoricalDtype):  # its codes sort as its categories: no
        return column.cat.codes.to_numpy(dtype=np.int64)  # hashing (missing: -1, first)
    return pd.factorize(column, sort=True, use_na_sentinel=True)[0]


def canonical_permutation(codes: list[np.ndarray]) -> np.ndarray | None:
    """The stable lexicographic order of rows by `codes` (each key's sort codes, first key
    first), or None when the rows are in that order already."""
    # Exports usually come ordered by the leading keys (lead, time): checking is far cheaper
    # than sorting, and then only runs of ties need ordering by the last key.
    if len(codes[0]) < 2 or _in_order(codes):
        return None
    if len(codes) > 1 and _in_order(codes[:-1]):
        # only the rows tied on the leading keys move: each run of them sorted by the last key
        same = np.logical_and.reduce([c[1:] == c[:-1] for c in codes[:-1]])  # row i+1 ties i
        tied = np.zeros(len(codes[0]), dtype=bool)
        tied[1:] = same
        tied[:-1] |= same
        rows = np.flatnonzero(tied)
        starts = np.ones(len(rows), dtype=bool)
        starts[1:] = ~same[rows[1:] - 1]  # a tied row not tied to the row before starts a run
        order = np.arange(len(codes[0]))
        order[rows] = rows[np.lexsort((codes[-1][rows], np.cumsum(starts)))]
        return order
    return np.lexsort(codes[::-1])  # lexsort sorts by its last key first


def _in_order(codes: list[np.ndarray]) -> bool:
    """Whether rows are already in lexicographic order of the key columns."""
    tied = np.ones(len(codes[0]) - 1, dtype=bool)  # rows equal to the previous one so far
    for values in codes:
        after, before = values[1:], values[:-1]
        if (tied & (after < before)).any():
            return False
        tied &= after == before
    return True


def check_flat_leads(
    leads: pd.DataFrame, where: str, policies: Policies | None = None
) -> pd.DataFrame:
    """Shape flat: unique ids and known outcomes; there are no timestamps to check."""
    stamped = leads.assign(created_at=pd.Timestamp(0, tz="UTC"))
    checked = check_table("leads", stamped, where, policies)
    no_time = pd.Series(pd.NaT, index=checked.index, dtype="datetime64[ns, UTC]")
    return checked.assign(created_at=no_time)


def check_named_columns(config: Config, tables: CrmTables) -> None:
    """Every column the config names in a rule list (features.identifiers, pii, exclude,
    known_at_creation, audit.allow) must be a column of the data: a typo in a leak's name
    would otherwise keep the leak. Lists left at their defaults are not checked. Names match
    as everywhere, ignoring case, spaces and punctuation; an account column may also be named
    as its feature (`account_<name>`)."""
    known: dict[str, str] = {}
    for name, frame in (
        ("leads", tables.leads),
        ("accounts", tables.accounts),
        ("activities", tables.activities),
        ("deals", tables.deals),
    ):
        for column in frame.columns:
            known.setdefault(snake_case(str(column)), str(column))
            if name == "accounts":
                known.setdefault(snake_case(f"account_{column}"), f"account_{column}")
    for column in ("lead_id", "account_id", "deal_id", "outcome", "closed_at", "created_at"):
        known.setdefault(column, column)
    lists = {
        f"features.{name}": getattr(config.features, name)
        for name in config.features.model_fields_set
        if name in ("identifiers", "pii", "exclude", "known_at_creation")
    }
    if "allow" in config.audit.model_fields_set:
        lists["audit.allow"] = config.audit.allow
    for key, names in lists.items():
        for name in names or ():
            if snake_case(str(name)) in known:
                continue
            close = difflib.get_close_matches(str(name), list(known.values()), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise InputError(
                f"{key} names {name!r}, which is no column of the data{hint} (a name that "
                "matches nothing leaves the column it meant as a feature; columns: "
                f"{', '.join(sorted(set(known.values()))[:40])})"
            )
