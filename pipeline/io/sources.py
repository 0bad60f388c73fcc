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
from pathlib import Path

import numpy as np
import pandas as pd

from leadscore.features.tables import (
    TABLE_NAMES,
    CrmTables,
    empty_history,
    snake_case,
    utc_datetime64,
)
from leadscore.pipeline.config import (
    Config,
    DataConfig,
    LookupConfig,
    SourceConfig,
)
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io.checks import (
    KEYS,
    SORT_KEYS,
    Policies,
    canonical_order,
    check_flat_leads,
    check_joins,
    check_table,
)
from leadscore.pipeline.io.mapping import (
    Warn,
    as_key_type,
    examples,
    map_source,
    parse_timestamps,
)
from leadscore.pipeline.io.readers import describe_source, read_source, table_file


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
            f"{examples(keys.dropna())} against {examples(table[key])}; types {keys.dtype} "
            f"and {table[key].dtype})"
        )
    if miss.any() and warn is not None:
        warn(
            f"{where}: {int(miss.sum()):,} of {len(leads):,} leads have a {lookup.join_on} not "
            f"in the lookup, e.g. {examples(leads.loc[miss, lookup.join_on])}"
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


def _check_data_dir(data: DataConfig | None, data_dir: Path) -> None:
    """The data folder must exist, unless every source is a database."""
    in_databases = data is not None and all(
        spec is None or spec.url is not None
        for spec in (data.leads, data.accounts, data.activities, data.deals, *data.lookups)
    )
    if not data_dir.is_dir() and not (in_databases and data is not None and data.leads):
        raise InputError(f"data folder {data_dir} does not exist")


def _unit_leads(
    leads: pd.DataFrame,
    frames: dict[str, pd.DataFrame],
    where: dict[str, str],
    policies: Policies,
) -> pd.DataFrame:
    """Shape unit: each row carries its own close and outcome; the deals table is derived.
    A unit closed before it was created is an error, or dropped whole by its policy."""
    for column in ("lead_id", "created_at", "closed_at", "outcome"):
        if column not in leads.columns:
            raise InputError(
                f"{where['leads']}: shape 'unit' needs a column {column!r} (rename the "
                "source's id, created, closed and outcome columns onto these names)"
            )
    leads = check_table("leads", leads, where["leads"], policies)
    leads["closed_at"] = parse_timestamps(leads["closed_at"], where["leads"], "closed_at")
    deals = check_table("deals", _deals_from_units(leads), where["leads"], policies)
    leads = leads[leads["lead_id"].isin(deals["lead_id"]).to_numpy()]
    frames["deals"], where["deals"] = deals, where["leads"]
    return leads.drop(columns=["closed_at", "outcome"])


def _policies(spec: SourceConfig | None, key: str | None, warn: Warn | None) -> Policies:
    """A source's policies for rows breaking a rule, and its key as the export names it."""
    if spec is None:
        return Policies(warn=warn)
    label = {canonical: source for source, canonical in spec.rename.items()}.get(key or "", key)
    return Policies(spec.duplicates, spec.closed_before_created, label, warn)


def _generated_ids(leads: pd.DataFrame, where: str) -> pd.DataFrame:
    """`generated_id: true`: the leads numbered by their row in the source (1, 2, ...)."""
    if "lead_id" in leads.columns:
        raise InputError(
            f"{where}: has a lead_id column and generated_id is true; keep one of the two"
        )
    return leads.assign(lead_id=np.asarray(leads.index, dtype=np.int64) + 1)


def _flat_leads(leads: pd.DataFrame, where: dict[str, str]) -> pd.DataFrame:
    """Shape flat: an id and an outcome, no timestamps (nothing is point-in-time)."""
    for column in ("lead_id", "outcome"):
        if column not in leads.columns:
            raise InputError(f"{where['leads']}: shape 'flat' needs a column {column!r}")
    no_time = pd.Series(pd.NaT, index=leads.index, dtype="datetime64[ns, UTC]")
    return leads.assign(created_at=no_time)


def _attribute_history(
    spec: SourceConfig,
    data_dir: Path,
    leads: pd.DataFrame,
    accounts: pd.DataFrame,
    warn: Warn | None,
) -> pd.DataFrame:
    """The field history, checked and pointed at the tables' own columns: each row names a
    lead (lead_id) or an account (account_id), a field (a column, matched as names are
    everywhere), its new value and when it changed. Rows of unknown fields or ids are counted
    and left out."""
    where = describe_source(spec, data_dir)
    frame = map_source(read_source(spec, data_dir), spec, where, warn)
    missing = [c for c in ("field", "value", "changed_at") if c not in frame.columns]
    if missing or not {"lead_id", "account_id"} & set(frame.columns):
        raise InputError(
            f"{where}: an attribute history needs columns field, value, changed_at and lead_id "
            f"or account_id (has: {', '.join(map(str, frame.columns))}; rename yours onto these)"
        )
    frame = frame.assign(changed_at=parse_timestamps(frame["changed_at"], where, "changed_at"))
    if frame["changed_at"].isna().any():
        raise InputError(f"{where}: column 'changed_at' is empty in some rows")
    parts = []
    for key, table in (("lead_id", leads), ("account_id", accounts)):
        if key not in frame.columns:
            continue
        rows = frame[frame[key].notna()]
        columns = {snake_case(str(c)): str(c) for c in table.columns if c != key}
        fields = rows["field"].astype(str).map(lambda f, cols=columns: cols.get(snake_case(f)))
        ids = as_key_type(rows[key], pd.Index(table[key].dropna()))
        known = fields.notna() & ids.isin(table[key])
        if (~known).any() and warn is not None:
            warn(
                f"{where}: {int((~known).sum()):,} of {len(rows):,} rows name a field that is no "
                f"column, or a {key} not in the data, e.g. {examples(rows.loc[~known, 'field'])}; "
                "they are ignored"
            )
        part = pd.DataFrame(
            {
                "lead_id": ids[known] if key == "lead_id" else None,
                "account_id": ids[known] if key == "account_id" else None,
                "field": fields[known],
                "value": rows.loc[known, "value"],
                "changed_at": rows.loc[known, "changed_at"],
            }
        )
        parts.append(part.astype({"lead_id": object, "account_id": object}))
    history = pd.concat(parts, ignore_index=True) if parts else empty_history()
    return history.sort_values(["field", "changed_at"], kind="stable").reset_index(drop=True)


def load_tables(
    config: Config | None,
    data_dir: str | Path,
    warn: Warn | None = None,
    activities: bool = True,
) -> CrmTables:
    """Read, map and check every source of the config's shape (None: canonical files).

    `activities=False` leaves the activity log empty, for a caller that streams it in parts
    (`pipeline.io.activities`)."""
    data_dir = Path(data_dir)
    data = config.data if config is not None else None
    shape = data.shape if data is not None else "events"
    _check_data_dir(data, data_dir)
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
    leads_spec = source_spec(config, data_dir, "leads")
    if leads_spec is not None and leads_spec.generated_id:
        leads = _generated_ids(leads, where["leads"])
    policies = {
        name: _policies(source_spec(config, data_dir, name), KEYS.get(name), warn)
        for name in TABLE_NAMES
    }
    for lookup in data.lookups if data is not None else ():
        leads = _join_lookup(leads, lookup, data_dir, warn)
    if "account_id" not in leads.columns:  # optional: a lead without a known company
        leads = leads.assign(account_id=None)
    if shape == "unit":
        leads = _unit_leads(leads, frames, where, policies["leads"])
    elif shape == "flat":
        leads = _flat_leads(leads, where)
    frames["leads"] = leads
    for name in ("accounts", "activities", "deals"):
        if name not in frames:
            frames[name] = _empty(name, leads["lead_id"])
            where[name] = f"(no {name} source)"
    checked = {
        name: check_flat_leads(frames[name], where[name], policies[name])
        if shape == "flat" and name == "leads"
        else check_table(name, frames[name], where[name], policies[name])
        for name in TABLE_NAMES
    }
    for message in check_joins(checked, where):
        if warn is not None:
            warn(message)
    history = empty_history()
    if data is not None and data.attribute_history is not None:
        history = _attribute_history(
            data.attribute_history, data_dir, checked["leads"], checked["accounts"], warn
        )
    # A database returns rows in any order; sorted tables make every run on the same data equal.
    return CrmTables(
        **{
            name: canonical_order(frame, [k for k in SORT_KEYS[name] if k in frame.columns])
            for name, frame in checked.items()
        },
        history=history,
    )


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


ROWS_PER_HASH_BLOCK = 1_000_000  # rows spelt out at a time by the fingerprint


def _canonical_text(values: pd.Series) -> pd.Series:
    """One spelling per value whatever the source: a Parquet int, a CSV float and a SQL bigint
    of the same number agree, timestamps count nanoseconds in UTC, missing is empty."""
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values):
        stamps = utc_datetime64(values)
        text = stamps.view("int64").astype(str)
        return pd.Series(np.where(np.isnat(stamps), "", text))
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce").astype(float).to_numpy()
        return pd.Series(_number_text(numbers))
    if isinstance(values.dtype, pd.CategoricalDtype):  # each category spelt once
        spelt = np.array([*map(_object_text, values.cat.categories), ""], dtype=object)
        return pd.Series(spelt[values.cat.codes.to_numpy()])  # code -1 (missing) picks ""
    objects = values.astype(object)
    if pd.api.types.infer_dtype(objects, skipna=True) in ("string", "empty"):
        return objects.where(objects.notna(), "")
    return objects.map(_object_text)


def _object_text(value: object) -> str:
    return "" if value is None or value != value else str(value)


def _number_text(numbers: np.ndarray) -> np.ndarray:
    """`f"{v:.10g}"` of each number ("" for NaN), whole numbers of up to ten digits spelt by
    numpy at once (the same digits), the rest one at a time."""
    text = np.full(len(numbers), "", dtype=object)
    with np.errstate(invalid="ignore"):
        whole = (
            np.isfinite(numbers)
            & (numbers == np.trunc(numbers))
            & (np.abs(numbers) < 1e10)
            & ~((numbers == 0) & np.signbit(numbers))  # -0.0 is spelt "-0"
        )
    text[whole] = numbers[whole].astype(np.int64).astype(str)
    rest = ~whole & ~np.isnan(numbers)
    text[rest] = [f"{v:.10g}" for v in numbers[rest]]
    return text


def _row_hashes(
    frame: pd.DataFrame, columns: list[str], rows_per_block: int = ROWS_PER_HASH_BLOCK
) -> np.ndarray:
    """pandas' `hash_pandas_object` of the frame of the columns' canonical text (its row
    hashes, index left out), one column's text of one block of rows at a time: a large table's
    text is never held whole (20M activities spelt out take gigabytes). A row's hash depends on
    that row alone, and the columns' hashes combine as pandas combines them
    (`combine_hash_arrays`, CPython's tuple hash), so the hashes are the same."""
    if len(frame) > rows_per_block:
        starts = range(0, len(frame), rows_per_block)
        blocks = (frame.iloc[s : s + rows_per_block] for s in starts)
        return np.concatenate([_row_hashes(b, columns, rows_per_block) for b in blocks])
    out = np.full(len(frame), 0x345678, dtype=np.uint64)
    mult = np.uint64(1000003)
    for i, column in enumerate(columns):
        text = pd.Series(_canonical_text(frame[column]).to_numpy())
        out ^= pd.util.hash_pandas_object(text, index=False).to_numpy()
        out *= mult
        inverse = len(columns) - i
        mult += np.uint64(82520 + inverse + inverse)
    return out + np.uint64(97531)


def fingerprint(tables: CrmTables, activities_elsewhere: bool = False) -> str:
    """The first 16 hex digits of a SHA-256 over the loaded tables' values, in any row order
    and whatever the source (Parquet, CSV or SQL), so the same data give the same print.
    `activities_elsewhere`: the activity log stays on Spark, and the print says so."""
    digest = hashlib.sha256()
    for name in TABLE_NAMES:
        frame = getattr(tables, name)
        columns = sorted(map(str, frame.columns))
        digest.update(f"{name}:{','.join(columns)}".encode())
        digest.update(np.sort(_row_hashes(frame, columns)).tobytes())
    printed = digest.hexdigest()[:16]
    return f"{printed}-without-activities" if activities_elsewhere else printed
