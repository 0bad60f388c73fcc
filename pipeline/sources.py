"""Loading the canonical CRM tables from a folder, with the checks every load runs."""

from __future__ import annotations

import hashlib
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


def load_tables(data_dir: str | Path) -> CrmTables:
    """Read and check accounts, leads, activities and deals from a folder."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"data folder {data_dir} does not exist")
    frames = {}
    for name in TABLE_NAMES:
        path = table_file(data_dir, name)
        frames[name] = _check_table(name, _read(path), path)
    if frames["leads"].empty:
        raise InputError(f"{table_file(data_dir, 'leads')}: has no leads")
    return CrmTables(**frames)


def fingerprint(data_dir: str | Path) -> str:
    """A SHA-256 over the bytes of the four table files, to tell runs on the same data apart."""
    digest = hashlib.sha256()
    for name in TABLE_NAMES:
        path = table_file(Path(data_dir), name)
        digest.update(name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]
