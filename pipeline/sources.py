"""Loading the canonical CRM tables from a folder, with the checks every load runs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from features.tables import (
    OUTCOMES,
    REQUIRED_COLUMNS,
    TABLE_NAMES,
    TIMESTAMP_COLUMNS,
    CrmTables,
    normalise_label,
)
from pipeline.errors import InputError

KEYS = {"accounts": "account_id", "leads": "lead_id", "deals": "deal_id"}
REQUIRED_TIMESTAMPS = {"created_at", "occurred_at"}  # closed_at is empty while a deal is open
JOINS = (  # (table, column) -> (table, key) it must point at
    ("leads", "account_id", "accounts", "account_id"),
    ("activities", "lead_id", "leads", "lead_id"),
    ("deals", "lead_id", "leads", "lead_id"),
)
SUFFIXES = (".parquet", ".csv")


def table_file(data_dir: Path, name: str) -> Path:
    """The file that holds a canonical table: `<name>.parquet`, else `<name>.csv`."""
    for suffix in SUFFIXES:
        path = data_dir / f"{name}{suffix}"
        if path.is_file():
            return path
    raise InputError(
        f"{data_dir}: no {name}.parquet or {name}.csv (a folder of canonical tables is expected: "
        f"{', '.join(TABLE_NAMES)}; `leadscore demo-data --out {data_dir}` writes one)"
    )


def _read(path: Path) -> pd.DataFrame:
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, low_memory=False)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InputError(f"{path}: cannot be read as {path.suffix[1:]}: {exc}") from exc


def _examples(values: pd.Series, n: int = 3) -> str:
    return ", ".join(repr(v) for v in values.drop_duplicates().head(n).tolist())


def parse_timestamps(values: pd.Series, path: Path, column: str) -> pd.Series:
    """Parse a column to UTC timestamps; naive values are taken as UTC."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values):
        return values.dt.tz_localize("UTC")
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    bad = parsed.isna() & values.notna() & (values.astype("string").str.strip() != "")
    if bad.any():
        raise InputError(
            f"{path}: column {column!r} has {int(bad.sum())} value(s) that are not timestamps "
            f"(expected ISO 8601 such as 2025-03-01T12:00:00Z), e.g. {_examples(values[bad])}"
        )
    return parsed


def _check_table(name: str, frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS[name] if c not in frame.columns]
    if missing:
        raise InputError(
            f"{path}: missing required column(s) {', '.join(map(repr, missing))} "
            f"(has: {', '.join(map(str, frame.columns))})"
        )
    frame = frame.copy()
    for column in TIMESTAMP_COLUMNS[name]:
        frame[column] = parse_timestamps(frame[column], path, column)
        if column in REQUIRED_TIMESTAMPS and frame[column].isna().any():
            rows = frame.index[frame[column].isna()]
            raise InputError(
                f"{path}: column {column!r} is empty in {len(rows)} row(s) (first at row "
                f"{int(rows[0]) + 1}); every row needs a timestamp"
            )
    key = KEYS.get(name)
    if key is not None:
        if frame[key].isna().any():
            raise InputError(
                f"{path}: column {key!r} has {int(frame[key].isna().sum())} empty key(s)"
            )
        dup = frame[key].duplicated(keep=False)
        if dup.any():
            raise InputError(
                f"{path}: column {key!r} must be unique; {int(dup.sum())} rows share a value, "
                f"e.g. {_examples(frame.loc[dup, key])}"
            )
    if name == "deals":
        outcome = normalise_label(frame["outcome"])
        unknown = outcome.notna() & ~outcome.isin(OUTCOMES)
        if unknown.any():
            raise InputError(
                f"{path}: column 'outcome' has unknown value(s) "
                f"{_examples(frame.loc[unknown, 'outcome'])} "
                "(expected 'won', 'lost' or empty while open)"
            )
        mismatch = frame["closed_at"].isna() != outcome.isna()
        if mismatch.any():
            raise InputError(
                f"{path}: columns 'closed_at' and 'outcome' must be both set or both empty; "
                f"{int(mismatch.sum())} row(s) differ, e.g. deal_id "
                f"{_examples(frame.loc[mismatch, 'deal_id'])}"
            )
        early = frame["closed_at"] < frame["created_at"]
        if early.any():
            raise InputError(
                f"{path}: 'closed_at' is before 'created_at' in {int(early.sum())} row(s), e.g. "
                f"deal_id {_examples(frame.loc[early, 'deal_id'])}"
            )
    return frame


def check_joins(frames: dict[str, pd.DataFrame], paths: dict[str, Path]) -> list[str]:
    """Join keys must resolve. None resolving is fatal (usually a type mismatch such as
    '17' against 17); some not resolving is returned as a warning with examples."""
    warnings = []
    for table, column, target, key in JOINS:
        values = frames[table][column].dropna()
        if values.empty:
            continue
        unknown = ~values.isin(frames[target][key])
        if unknown.all():
            raise InputError(
                f"{paths[table]}: no value of column {column!r} matches {target}.{key} in "
                f"{paths[target]} (e.g. {_examples(values)} against "
                f"{_examples(frames[target][key])}; types {values.dtype} and "
                f"{frames[target][key].dtype})"
            )
        if unknown.any():
            warnings.append(
                f"{paths[table].name}: {int(unknown.sum()):,} of {len(values):,} rows have a "
                f"{column} not in {paths[target].name}, e.g. {_examples(values[unknown])}; "
                "they are ignored"
            )
    return warnings


def load_tables(data_dir: str | Path, warn: Callable[[str], None] | None = None) -> CrmTables:
    """Read and check accounts, leads, activities and deals from a folder."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"data folder {data_dir} does not exist")
    frames, paths = {}, {}
    for name in TABLE_NAMES:
        paths[name] = table_file(data_dir, name)
        frames[name] = _check_table(name, _read(paths[name]), paths[name])
    if frames["leads"].empty:
        raise InputError(f"{paths['leads']}: has no leads")
    for message in check_joins(frames, paths):
        if warn is not None:
            warn(message)
    return CrmTables(**frames)


def fingerprint(data_dir: str | Path) -> str:
    """The first 16 hex digits of a SHA-256 over the four table files' bytes."""
    digest = hashlib.sha256()
    for name in TABLE_NAMES:
        path = table_file(Path(data_dir), name)
        digest.update(name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]
