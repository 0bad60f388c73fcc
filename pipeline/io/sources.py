"""Loading a CRM export into the canonical tables, with the checks every load runs.

A config maps each canonical table (leads, accounts, activities, deals) onto a source: a CSV or
Parquet file under --data, or a table or query in a SQL database. Three shapes are understood:

- events: the canonical tables themselves (the default: `<table>.parquet|csv` in --data);
- unit: one row per scored unit (a lead or an opportunity) carrying its own `closed_at` and
  `outcome`; the deals table is derived from it, one deal per unit;
- flat: one row per lead with an `outcome` and no timestamps at all.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from leadscore.features.tables import (
    OUTCOMES,
    REQUIRED_COLUMNS,
    TABLE_NAMES,
    TIMESTAMP_COLUMNS,
    CrmTables,
    normalise_label,
    utc_datetime64,
)
from leadscore.pipeline.config import Config, LookupConfig, SourceConfig, TimestampSpec
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.redaction import MissingVariable, expand_env, redact

Warn = Callable[[str], None]
KEYS = {"accounts": "account_id", "leads": "lead_id", "deals": "deal_id"}
REQUIRED_TIMESTAMPS = {"created_at", "occurred_at"}  # closed_at is empty while a deal is open
JOINS = (  # (table, column) -> (table, key) it must point at
    ("leads", "account_id", "accounts", "account_id"),
    ("activities", "lead_id", "leads", "lead_id"),
    ("deals", "lead_id", "leads", "lead_id"),
)
SUFFIXES = (".parquet", ".csv")
SORT_KEYS = {
    "accounts": ["account_id"],
    "leads": ["lead_id"],
    "activities": ["lead_id", "occurred_at", "activity_type"],
    "deals": ["deal_id"],
}


def table_file(data_dir: Path, name: str) -> Path:
    """The file that holds a canonical table: `<name>.parquet`, else `<name>.csv`."""
    for suffix in SUFFIXES:
        path = data_dir / f"{name}{suffix}"
        if path.is_file():
            return path
    raise InputError(
        f"{data_dir}: no {name}.parquet or {name}.csv (a folder of canonical tables is expected: "
        f"{', '.join(TABLE_NAMES)}; `leadscore demo-data --out {data_dir}` writes one; other "
        "layouts are mapped in the config's data section)"
    )


def describe_source(spec: SourceConfig, data_dir: Path) -> str:
    """How a source is named in messages: its file, or its table or query at a redacted URL."""
    if spec.path is not None:
        return str(data_dir / spec.path)
    where = f"table {spec.table}" if spec.table else "query"
    return f"{where} at {redact(spec.url or '')}"  # the unexpanded URL: no secret from the env


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")


def _file_kind(path: Path, spec: SourceConfig) -> str:
    return spec.format or ("parquet" if path.suffix == ".parquet" else "csv")


def _csv_options(spec: SourceConfig) -> dict[str, object]:
    options = spec.csv
    return {
        "sep": options.delimiter,
        "encoding": options.encoding,
        "quotechar": options.quotechar,
        "na_values": list(options.null_values),
        "keep_default_na": False,
        "low_memory": False,
    }


READ_ERRORS = (ValueError, OSError, pa.ArrowException, pd.errors.ParserError, UnicodeDecodeError)


def _read_file(path: Path, spec: SourceConfig) -> pd.DataFrame:
    _check_file(path)
    kind = _file_kind(path, spec)
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, **_csv_options(spec))
    except READ_ERRORS as exc:
        raise InputError(f"{path}: cannot be read as {kind}: {exc}") from None


def _iter_file(path: Path, spec: SourceConfig, rows: int) -> Iterator[pd.DataFrame]:
    _check_file(path)
    kind = _file_kind(path, spec)
    try:
        if kind == "parquet":
            for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
                yield batch.to_pandas()
            return
        with pd.read_csv(path, chunksize=rows, **_csv_options(spec)) as reader:
            yield from reader
    except READ_ERRORS as exc:
        raise InputError(f"{path}: cannot be read as {kind}: {exc}") from None


@contextmanager
def _sql_connection(spec: SourceConfig) -> Iterator[sa.Connection]:
    """A connection to a SQL source; the driver's errors become input errors naming it."""
    where = describe_source(spec, Path())
    try:
        engine = sa.create_engine(expand_env(spec.url or ""))
    except MissingVariable as exc:
        raise InputError(f"{where}: the URL needs ${{{exc.args[0]}}}, which is not set") from None
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise InputError(f"{where}: cannot use this URL: {exc}") from None
    try:
        with engine.connect() as conn:
            if spec.table is not None and not sa.inspect(conn).has_table(spec.table):
                raise InputError(f"{where}: no such table")
            yield conn
    except sa.exc.OperationalError as exc:
        raise InputError(f"{where}: cannot read: {exc.orig}") from None
    except sa.exc.ProgrammingError as exc:
        raise InputError(f"{where}: the query failed: {exc.orig}") from None
    except pd.errors.DatabaseError as exc:  # pandas wraps the driver's error for queries
        raise InputError(f"{where}: the query failed: {exc}") from None
    finally:
        engine.dispose()


def _read_sql(spec: SourceConfig) -> pd.DataFrame:
    with _sql_connection(spec) as conn:
        if spec.table is not None:
            return pd.read_sql_table(spec.table, conn)
        return pd.read_sql_query(sa.text(spec.query or ""), conn)


def _iter_sql(spec: SourceConfig, rows: int) -> Iterator[pd.DataFrame]:
    with _sql_connection(spec) as plain:
        conn = plain.execution_options(stream_results=True)  # a server-side cursor
        if spec.table is not None:
            yield from pd.read_sql_table(spec.table, conn, chunksize=rows)
        else:
            yield from pd.read_sql_query(sa.text(spec.query or ""), conn, chunksize=rows)


def read_source(spec: SourceConfig, data_dir: Path) -> pd.DataFrame:
    """The raw rows of a source, before any mapping."""
    if spec.path is not None:
        return _read_file(data_dir / spec.path, spec)
    return _read_sql(spec)


def iter_source(spec: SourceConfig, data_dir: Path, rows: int) -> Iterator[pd.DataFrame]:
    """The raw rows of a source, before any mapping, about `rows` at a time: a Parquet file by
    record batches, a CSV file by chunks, a SQL source through a server-side cursor. Nothing
    holds the whole source at once."""
    if spec.path is not None:
        return _iter_file(data_dir / spec.path, spec, rows)
    return _iter_sql(spec, rows)


def _examples(values: pd.Series, n: int = 3) -> str:
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
            f"(expected {expected}), e.g. {_examples(values[bad])}"
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


def check_table(name: str, frame: pd.DataFrame, where: str) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS[name] if c not in frame.columns]
    if missing:
        raise InputError(
            f"{where}: missing required column(s) {', '.join(map(repr, missing))} for the "
            f"{name} table (has: {', '.join(map(str, frame.columns))})"
        )
    frame = frame.copy()
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
    key = KEYS.get(name)
    if key is not None:
        if frame[key].isna().any():
            raise InputError(
                f"{where}: column {key!r} has {int(frame[key].isna().sum())} empty key(s)"
            )
        dup = frame[key].duplicated(keep=False)
        if dup.any():
            raise InputError(
                f"{where}: column {key!r} must be unique; {int(dup.sum())} rows share a value, "
                f"e.g. {_examples(frame.loc[dup, key])}"
            )
    if "outcome" in frame.columns and name in ("deals", "leads"):
        outcome = normalise_label(frame["outcome"])
        unknown = outcome.notna() & ~outcome.isin(OUTCOMES)
        if unknown.any():
            raise InputError(
                f"{where}: column 'outcome' has unknown value(s) "
                f"{_examples(frame.loc[unknown, 'outcome'])} (expected 'won', 'lost' or empty "
                "while open; map other values under values: in the source's config)"
            )
        frame["outcome"] = outcome.astype(object).where(outcome.notna(), None)
    if name == "deals":
        mismatch = frame["closed_at"].isna() != frame["outcome"].isna()
        if mismatch.any():
            raise InputError(
                f"{where}: columns 'closed_at' and 'outcome' must be both set or both empty; "
                f"{int(mismatch.sum())} row(s) differ, e.g. deal_id "
                f"{_examples(frame.loc[mismatch, 'deal_id'])}"
            )
        early = frame["closed_at"] < frame["created_at"]
        if early.any():
            raise InputError(
                f"{where}: 'closed_at' is before 'created_at' in {int(early.sum())} row(s), e.g. "
                f"deal_id {_examples(frame.loc[early, 'deal_id'])}"
            )
    return frame


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
                f"{where[target]} (e.g. {_examples(values)} against "
                f"{_examples(frames[target][key])}; types {values.dtype} and "
                f"{frames[target][key].dtype})"
            )
        if unknown.any() and not frames[target].empty:
            warnings.append(
                f"{where[table]}: {int(unknown.sum()):,} of {len(values):,} rows have a "
                f"{column} not in {where[target]}, e.g. {_examples(values[unknown])}; "
                "they are ignored"
            )
    return warnings


def _join_lookup(
    leads: pd.DataFrame, lookup: LookupConfig, data_dir: Path, warn: Warn | None
) -> pd.DataFrame:
    where = describe_source(lookup, data_dir)
    table = map_source(read_source(lookup, data_dir), lookup, where, warn)
    key = lookup.key or lookup.join_on
    if lookup.join_on not in leads.columns:
        raise InputError(f"lookup {where}: the leads have no column {lookup.join_on!r} to join on")
    if key not in table.columns:
        raise InputError(f"{where}: no key column {key!r} (has: {', '.join(table.columns)})")
    if table[key].duplicated().any():
        raise InputError(f"{where}: key column {key!r} must be unique to be a lookup")
    columns = list(lookup.columns) if lookup.columns else [c for c in table.columns if c != key]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{where}: no column(s) {', '.join(map(repr, missing))} to look up")
    values = table.set_index(key)[columns].add_prefix(lookup.prefix)
    joined = values.reindex(leads[lookup.join_on].to_numpy())
    keys = leads[lookup.join_on]
    miss = keys.notna().to_numpy() & ~keys.isin(values.index).to_numpy()
    if miss.any() and miss.sum() == keys.notna().sum():
        raise InputError(
            f"{where}: no {lookup.join_on} of the leads matches the lookup's {key} (e.g. "
            f"{_examples(keys.dropna())} against {_examples(table[key])}; types {keys.dtype} "
            f"and {table[key].dtype})"
        )
    if miss.any() and warn is not None:
        warn(
            f"{where}: {int(miss.sum()):,} of {len(leads):,} leads have a {lookup.join_on} not "
            f"in the lookup, e.g. {_examples(leads.loc[miss, lookup.join_on])}"
        )
    clash = [c for c in joined.columns if c in leads.columns]
    if clash:
        raise InputError(f"{where}: lookup column(s) {clash} already exist; set a prefix")
    return pd.concat([leads, joined.set_index(leads.index)], axis=1)


def _empty(name: str, lead_ids: pd.Series) -> pd.DataFrame:
    ts = pd.Series([], dtype="datetime64[ns, UTC]")
    ids = lead_ids.iloc[:0]
    if name == "activities":
        return pd.DataFrame(
            {"lead_id": ids, "occurred_at": ts, "activity_type": pd.Series([], dtype=object)}
        )
    if name == "accounts":
        return pd.DataFrame({"account_id": pd.Series([], dtype=object)})
    return pd.DataFrame(
        {
            "deal_id": ids,
            "lead_id": ids,
            "created_at": ts,
            "closed_at": ts,
            "outcome": pd.Series([], dtype=object),
        }
    )


def _deals_from_units(leads: pd.DataFrame) -> pd.DataFrame:
    """Shape unit: each row is its own deal, open until `closed_at`, then won or lost."""
    deals = pd.DataFrame(
        {
            "deal_id": leads["lead_id"],
            "lead_id": leads["lead_id"],
            "created_at": leads["created_at"],
            "closed_at": leads["closed_at"],
            "outcome": leads["outcome"],
        }
    )
    if "account_id" in leads.columns:
        deals["account_id"] = leads["account_id"]
    return deals


def source_spec(config: Config | None, data_dir: Path, name: str) -> SourceConfig | None:
    """Where a canonical table comes from: the config's source, else (shape events) its file in
    the data folder; None for an optional table without a source."""
    data = config.data if config is not None else None
    spec = getattr(data, name) if data is not None else None
    if spec is None and (data is None or data.shape == "events"):
        spec = SourceConfig(path=table_file(data_dir, name).name)
    return spec


def load_tables(
    config: Config | None,
    data_dir: str | Path,
    warn: Warn | None = None,
    activities: bool = True,
) -> CrmTables:
    """Read, map and check every source of the config's shape (None: canonical files).

    `activities=False` leaves the activity log empty, for a caller that streams it in parts
    (`pipeline.activity_partitions`)."""
    data_dir = Path(data_dir)
    data = config.data if config is not None else None
    shape = data.shape if data is not None else "events"
    in_databases = data is not None and all(
        spec is None or spec.url is not None
        for spec in (data.leads, data.accounts, data.activities, data.deals, *data.lookups)
    )
    if not data_dir.is_dir() and not (in_databases and data is not None and data.leads):
        raise InputError(f"data folder {data_dir} does not exist")
    frames: dict[str, pd.DataFrame] = {}
    where: dict[str, str] = {}
    for name in TABLE_NAMES:
        spec = source_spec(config, data_dir, name)
        if spec is None:
            continue
        where[name] = describe_source(spec, data_dir)
        if name == "activities" and not activities:
            frames[name] = _empty(name, pd.Series([], dtype="int64"))
            continue
        frames[name] = map_source(read_source(spec, data_dir), spec, where[name], warn)

    leads = frames["leads"]
    if leads.empty:
        raise InputError(f"{where['leads']}: has no rows")
    for lookup in data.lookups if data is not None else ():
        leads = _join_lookup(leads, lookup, data_dir, warn)
    if "account_id" not in leads.columns:  # optional: a lead without a known company
        leads = leads.assign(account_id=None)
    if shape == "unit":
        for column in ("lead_id", "created_at", "closed_at", "outcome"):
            if column not in leads.columns:
                raise InputError(
                    f"{where['leads']}: shape 'unit' needs a column {column!r} (rename the "
                    "source's id, created, closed and outcome columns onto these names)"
                )
        leads = check_table("leads", leads, where["leads"])
        leads["closed_at"] = parse_timestamps(leads["closed_at"], where["leads"], "closed_at")
        frames["deals"], where["deals"] = _deals_from_units(leads), where["leads"]
        leads = leads.drop(columns=["closed_at", "outcome"])
    if shape == "flat":
        for column in ("lead_id", "outcome"):
            if column not in leads.columns:
                raise InputError(f"{where['leads']}: shape 'flat' needs a column {column!r}")
        no_time = pd.Series(pd.NaT, index=leads.index, dtype="datetime64[ns, UTC]")
        leads = leads.assign(created_at=no_time)  # no timestamps: nothing is point-in-time
    frames["leads"] = leads
    for name in ("accounts", "activities", "deals"):
        if name not in frames:
            frames[name] = _empty(name, leads["lead_id"])
            where[name] = f"(no {name} source)"
    checked = {}
    for name in TABLE_NAMES:
        if shape == "flat" and name == "leads":
            checked[name] = _check_flat_leads(frames[name], where[name])
        else:
            checked[name] = check_table(name, frames[name], where[name])
    for message in check_joins(checked, where):
        if warn is not None:
            warn(message)
    # A database returns rows in any order; sorted tables make every run on the same data equal.
    return CrmTables(
        **{
            name: canonical_order(frame, [k for k in SORT_KEYS[name] if k in frame.columns])
            for name, frame in checked.items()
        }
    )


def canonical_order(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """`frame` in a canonical order of `keys` (stable), sorting integer codes with numpy:
    pandas' multi-column sort_values took 33 s for 24 million activities, this takes a few."""
    if not keys or len(frame) < 2:
        return frame.reset_index(drop=True)
    codes = []
    for key in keys:
        column = frame[key]
        if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(column):
            values = pd.DatetimeIndex(column).as_unit("ns").asi8  # NaT: the smallest integer
        elif pd.api.types.is_integer_dtype(column) and not column.hasnans:
            values = column.to_numpy(dtype=np.int64)
        else:
            values = pd.factorize(column, sort=True, use_na_sentinel=True)[0]
        codes.append(values)
    # Exports usually come ordered by the leading keys (lead, time): checking is far cheaper
    # than sorting, and then only runs of ties need ordering by the last key.
    if _in_order(codes):
        return frame.reset_index(drop=True)
    last = codes[-1]
    if len(codes) > 1 and _in_order(codes[:-1]) and last.min() >= 0 and last.max() < 2**20:
        starts = np.ones(len(last), dtype=np.int64)
        starts[1:] = np.any([c[1:] != c[:-1] for c in codes[:-1]], axis=0)
        run = np.cumsum(starts)  # < 2**43 rows: run * 2**20 + last fits in an int64
        order = np.argsort(run * 2**20 + last, kind="stable")  # nearly sorted: timsort is fast
    else:
        order = np.lexsort(codes[::-1])  # lexsort sorts by its last key first
    return frame.take(order).reset_index(drop=True)


def _in_order(codes: list[np.ndarray]) -> bool:
    """Whether rows are already in lexicographic order of the key columns."""
    tied = np.ones(len(codes[0]) - 1, dtype=bool)  # rows equal to the previous one so far
    for values in codes:
        after, before = values[1:], values[:-1]
        if (tied & (after < before)).any():
            return False
        tied &= after == before
    return True


def _check_flat_leads(leads: pd.DataFrame, where: str) -> pd.DataFrame:
    """Shape flat: unique ids and known outcomes; there are no timestamps to check."""
    checked = check_table("leads", leads.assign(created_at=pd.Timestamp(0, tz="UTC")), where)
    no_time = pd.Series(pd.NaT, index=checked.index, dtype="datetime64[ns, UTC]")
    return checked.assign(created_at=no_time)


def default_as_of(
    tables: CrmTables, now: pd.Timestamp | None = None, newest_activity: pd.Timestamp | None = None
) -> pd.Timestamp:
    """Now, or the day after the newest timestamp in the data when the export is older.

    An export cannot know what happened after it was taken: treating its open units as still
    open "now" would label them lost. Data without timestamps (shape flat) is as of now.
    `newest_activity` stands in for activities that were streamed rather than loaded.
    """
    now = now if now is not None else pd.Timestamp.now(tz="UTC").floor("s")
    stamps = [
        tables.leads["created_at"],
        tables.activities["occurred_at"],
        tables.deals["created_at"],
        tables.deals["closed_at"],
        pd.Series([newest_activity], dtype="datetime64[ns, UTC]"),
    ]
    newest = max((s.max() for s in stamps if s.notna().any()), default=None)
    if newest is None:
        return now
    return min(now, newest.floor("D") + pd.Timedelta(days=1))


def resolve_as_of(
    tables: CrmTables,
    as_of: pd.Timestamp | None,
    note: Warn,
    newest_activity: pd.Timestamp | None = None,
) -> pd.Timestamp:
    """The explicit --as-of, or `default_as_of` of the data, said out loud."""
    if as_of is not None:
        return as_of
    as_of = default_as_of(tables, newest_activity=newest_activity)
    note(
        f"as of {as_of:%Y-%m-%d %H:%M} UTC (now, or the day after the newest timestamp in "
        "the data; --as-of sets it)"
    )
    return as_of


def _canonical_text(values: pd.Series) -> pd.Series:
    """One spelling per value whatever the source: a Parquet int, a CSV float and a SQL bigint
    of the same number agree, timestamps count nanoseconds in UTC, missing is empty."""
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values):
        stamps = utc_datetime64(values)
        text = stamps.view("int64").astype(str)
        return pd.Series(np.where(np.isnat(stamps), "", text))
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce").astype(float)
        return numbers.map(lambda v: "" if np.isnan(v) else f"{v:.10g}")
    return values.astype(object).map(lambda v: "" if v is None or v != v else str(v))


def fingerprint(tables: CrmTables) -> str:
    """The first 16 hex digits of a SHA-256 over the loaded tables' values, in any row order
    and whatever the source (Parquet, CSV or SQL), so the same data give the same print."""
    digest = hashlib.sha256()
    for name in TABLE_NAMES:
        frame = getattr(tables, name)
        columns = sorted(map(str, frame.columns))
        digest.update(f"{name}:{','.join(columns)}".encode())
        text = pd.DataFrame({c: _canonical_text(frame[c]).to_numpy() for c in columns})
        rows = np.sort(pd.util.hash_pandas_object(text, index=False).to_numpy())
        digest.update(rows.tobytes())
    return digest.hexdigest()[:16]
