"""The activity log, the one big table, and the one way jobs use it: per chunk of leads.

Every job maps a per-lead function (features, or features + scores + reasons) over a spine of
leads, each call seeing the tables with only its chunk's activities. Where those activities
come from is decided once, by the catalog:

- `InMemoryActivities`: the whole log loaded (`load_tables`), split by chunk in memory;
- `SpilledActivities`: the log streamed once from its source in batches, each batch mapped and
  checked as a loaded table is, and appended to one Arrow file per bucket of consecutive
  leads; each chunk reads only its buckets, so memory is bounded by the chunk, not the log;
- `SparkActivities` (`pipeline.io.spark`): the log read by Spark and cogrouped with the spine
  by bucket of leads, each bucket running the same function on an executor.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from leadscore.features.build import FeatureSpec, build_features
from leadscore.features.tables import (
    CrmTables,
    activities_as_of,
    clean_activities,
    utc_datetime64,
)
from leadscore.pipeline.config import SourceConfig
from leadscore.pipeline.errors import InputError, JobFailure
from leadscore.pipeline.io.checks import (
    SORT_KEYS,
    canonical_order,
    canonical_permutation,
    check_table,
    sort_codes,
)
from leadscore.pipeline.io.chunk_workers import Workers, chunk_leads, worked_in_order
from leadscore.pipeline.io.locks import held_by_someone
from leadscore.pipeline.io.mapping import Warn, as_key_type, map_source
from leadscore.pipeline.io.read_ahead import read_ahead
from leadscore.pipeline.io.readers import iter_source

SPILL_PREFIX = "leadscore-activities-"
OWNER_LOCK = ".owner.lock"  # held by the run that owns the folder, released when it ends
UNOWNED_GRACE_S = 600  # a folder without its lock file yet: just made, or from an old release
BATCH_ROWS = 1_000_000  # rows of the source read at a time
MAX_BUCKETS = 256  # open files while partitioning
MIN_BUCKET_LEADS = 10_000  # leads per bucket file, at least

Work = Callable[[CrmTables, pd.DataFrame], pd.DataFrame]
Advance = Callable[[int], None]
Keep = Callable[[pd.DataFrame], pd.DataFrame]


class ActivityLog(Protocol):
    """Activities as a job sees them: per chunk of leads, never all at once."""

    newest: pd.Timestamp | None  # the newest occurred_at (for the default as-of time)

    def at(self, as_of: pd.Timestamp) -> ActivityLog:
        """The log as of the run's time (rows at or after it are never read)."""
        ...

    def features(self, tables: CrmTables, spine: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
        """`build_features` of every spine row, indexed by (lead_id, cutoff) in spine order."""
        ...

    def map_leads(
        self,
        tables: CrmTables,
        spine: pd.DataFrame,
        work: Work,
        kinds: dict[str, str],
        chunk_size: int,
        advance: Advance | None = None,
        keep: Keep | None = None,
        workers: Workers | None = None,
    ) -> pd.DataFrame:
        """`work(tables with a chunk's activities, the chunk's spine rows)` over the spine, at
        most `chunk_size` leads at a time; the results concatenated in spine order. `kinds`
        names each output column's kind (double, long, string) for engines that need it
        first; `advance` is told how many leads each chunk covered; `keep` is given each
        chunk's rows in spine order, in this process, and gives what is kept of them (staging
        some columns elsewhere); `workers` may work the chunks in processes of their own."""
        ...


@dataclass(frozen=True)
class Chunk:
    """A chunk of the spine to work: how many leads, and its pieces (tables with only their
    leads' activities, the leads' spine rows), made where the chunk is worked."""

    leads: int
    pieces: Callable[[], Iterable[tuple[CrmTables, pd.DataFrame]]]


def lead_chunks(
    tables: CrmTables, spine: pd.DataFrame, size: int
) -> Iterator[tuple[CrmTables, pd.DataFrame]]:
    """The spine `size` leads at a time, each with only its own leads' activities."""
    for chunk in _in_memory_chunks(tables, spine, size):
        yield from chunk.pieces()


def _in_memory_chunks(tables: CrmTables, spine: pd.DataFrame, size: int) -> list[Chunk]:
    """Activities are split once, by a stable sort on the chunk number, so each chunk's work
    reads its own rows instead of the whole log. Leads, accounts and deals stay whole: account
    features count the account's other leads and deals."""
    acts = tables.activities
    position = pd.Index(spine["lead_id"].to_numpy()).get_indexer(acts["lead_id"].to_numpy())
    chunk_of = np.where(position >= 0, position // size, -1)
    order = np.argsort(chunk_of, kind="stable")
    n_chunks = -(-len(spine) // size)
    bounds = np.searchsorted(chunk_of[order], np.arange(n_chunks + 1), side="left")

    def pieces(k: int) -> list[tuple[CrmTables, pd.DataFrame]]:
        rows = order[bounds[k] : bounds[k + 1]]
        return [
            (replace(tables, activities=acts.iloc[rows]), spine.iloc[k * size : (k + 1) * size])
        ]

    return [Chunk(min(size, len(spine) - k * size), partial(pieces, k)) for k in range(n_chunks)]


def _worked(chunk: Chunk, work: Work, columns: list[str]) -> pd.DataFrame:
    """`work` on each piece of `chunk`, the rows it returned. A chunk is one piece unless a
    bucket of the spilled log holds more open leads than a chunk (past 25.6M leads, or a
    small `chunk_size`): its pieces' rows are then held together until the chunk is done."""
    outs = [out for out in (work(part, leads) for part, leads in chunk.pieces()) if len(out)]
    if not outs:
        return pd.DataFrame({c: [] for c in columns})
    return outs[0] if len(outs) == 1 else pd.concat(outs, ignore_index=True)


def _mapped(
    chunks: list[Chunk],
    work: Work,
    kinds: dict[str, str],
    advance: Advance | None,
    keep: Keep | None,
    workers: Workers | None,
) -> pd.DataFrame:
    columns = ["lead_id", *kinds]
    results = worked_in_order([partial(_worked, c, work, columns) for c in chunks], workers)
    parts = []
    try:
        for chunk, out in zip(chunks, results, strict=True):
            if len(out):
                parts.append(out if keep is None else keep(out))
            if advance is not None:
                advance(chunk.leads)
    finally:
        results.close()  # stops the workers when the parent failed
    if not parts:
        return pd.DataFrame({c: [] for c in columns})
    return pd.concat(parts, ignore_index=True)


@dataclass(frozen=True)
class InMemoryActivities:
    """The whole log in `tables.activities` (already as of the run's time, and cleaned)."""

    newest: pd.Timestamp | None = None

    def at(self, as_of: pd.Timestamp) -> InMemoryActivities:
        return self  # the loaded tables are viewed as of the run's time with the others

    def features(self, tables: CrmTables, spine: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
        return build_features(tables, spine, spec)

    def map_leads(
        self,
        tables: CrmTables,
        spine: pd.DataFrame,
        work: Work,
        kinds: dict[str, str],
        chunk_size: int,
        advance: Advance | None = None,
        keep: Keep | None = None,
        workers: Workers | None = None,
    ) -> pd.DataFrame:
        size = chunk_leads(len(spine), chunk_size, workers)
        chunks = _in_memory_chunks(tables, spine, size)
        return _mapped(chunks, work, kinds, advance, keep, workers)


OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")  # about half the bytes, cheap to undo
SCHEMA = pa.schema(
    [("lead", pa.int64()), ("occurred_at", pa.int64()), ("activity_type", pa.string())]
)


@contextmanager
def spill_folder(parent: str | None) -> Iterator[Path]:
    """A temporary folder for the split activity log, removed when the run ends.

    A run killed outright (SIGKILL, a power cut) cannot remove its folder, so each folder holds
    a lock its run keeps while alive, and every run first removes the folders whose lock nobody
    holds any more: their runs are gone."""
    base = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    if not base.is_dir():
        raise InputError(f"scoring.spill_dir {base}: no such folder")
    remove_stale_spill_folders(base)
    with tempfile.TemporaryDirectory(prefix=SPILL_PREFIX, dir=base) as name:
        folder = Path(name)
        with (folder / OWNER_LOCK).open("w") as owner:
            fcntl.flock(owner, fcntl.LOCK_EX)
            yield folder


def remove_stale_spill_folders(base: Path) -> list[Path]:
    """Remove the spill folders in `base` left by runs that are no longer alive."""
    removed = []
    for folder in base.glob(f"{SPILL_PREFIX}*"):
        if not folder.is_dir():
            continue
        lock = folder / OWNER_LOCK
        if lock.exists():
            stale = not held_by_someone(lock)
        else:
            stale = time.time() - folder.stat().st_mtime > UNOWNED_GRACE_S
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@dataclass(frozen=True)
class ActivityPartitions:
    """Activities on disk, one Arrow file per bucket of `bucket_size` consecutive leads."""

    folder: Path
    lead_ids: pd.Index  # the leads table's ids, in its order: bucket k holds k*size.. (k+1)*size
    bucket_size: int
    rows: int  # activities kept (those of known leads)
    newest: pd.Timestamp | None  # the newest occurred_at, or None without activities

    def buckets(self, lead_ids: pd.Series) -> np.ndarray:
        """The bucket of each lead (-1: not in the leads table)."""
        position = self.lead_ids.get_indexer(lead_ids.to_numpy())
        return np.where(position >= 0, position // self.bucket_size, -1)

    def read(self, buckets: Sequence[int]) -> pd.DataFrame:
        """The activities of the leads in `buckets`, in canonical order, as `load_tables` has
        them (lead_id, occurred_at, activity_type)."""
        parts = [
            pa.ipc.open_stream(pa.memory_map(str(path))).read_all()
            for path in (self.folder / f"{k}.arrow" for k in buckets)
            if path.exists()
        ]
        table = pa.concat_tables(parts) if parts else SCHEMA.empty_table()
        lead = table["lead"].to_numpy()
        moment = table["occurred_at"].to_numpy()
        kind = table["activity_type"].to_pandas()
        if not self.ids_sorted:
            return canonical_order(self._frame(lead, moment, kind), SORT_KEYS["activities"])
        # the leads table's positions sort as its ids do: the canonical order (lead, time,
        # type) from integers, without the ids' text
        order = canonical_permutation([lead, moment, sort_codes(kind)])
        if order is not None:
            lead, moment, kind = lead[order], moment[order], kind.take(order)
        return self._frame(lead, moment, kind.reset_index(drop=True))

    def _frame(self, lead: np.ndarray, moment: np.ndarray, kind: pd.Series) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "lead_id": self.lead_ids.to_numpy().take(lead),
                # nanoseconds since the epoch, viewed as times (to_datetime on integers goes
                # through Python objects: seconds per million rows)
                "occurred_at": pd.Series(moment.view("datetime64[ns]")).dt.tz_localize("UTC"),
                "activity_type": kind,
            }
        )

    @cached_property
    def ids_sorted(self) -> bool:
        """Whether the leads table's ids are unique and in canonical order (as a loaded
        leads table has them), so that positions in it sort as the ids do."""
        codes = sort_codes(pd.Series(self.lead_ids))
        return bool(len(codes) < 2 or (codes[1:] > codes[:-1]).all())


def bucket_leads(n_leads: int) -> int:
    """Leads per bucket file: at least MIN_BUCKET_LEADS, and no more than MAX_BUCKETS files."""
    return max(MIN_BUCKET_LEADS, -(-n_leads // MAX_BUCKETS), 1)


@dataclass
class _Tally:
    """What streaming the log saw: rows checked, rows of leads the leads table lacks (with
    examples), rows kept, the newest time, and rows dropped per column."""

    dropped: Counter[str] = field(default_factory=Counter)
    seen: int = 0
    unknown: int = 0
    kept: int = 0
    examples: list[object] = field(default_factory=list)
    newest: np.datetime64 | None = None

    def count(self, frame: pd.DataFrame, known: np.ndarray, times: np.ndarray) -> None:
        self.newest = times.max() if self.newest is None else max(self.newest, times.max())
        self.kept += int(known.sum())
        if not known.all():
            self.unknown += int((~known).sum())
            if len(self.examples) < 3:
                missing = frame.loc[~known, "lead_id"].drop_duplicates().head(3).tolist()
                self.examples = [*self.examples, *missing][:3]

    def report(self, where: str, index: pd.Index, warn: Warn | None) -> None:
        """Warn about dropped rows and unknown leads; none matching at all is an input error."""
        for column, n in self.dropped.items():
            if warn is not None:
                warn(f"{where}: dropped {n:,} of {self.seen + n:,} rows without {column}")
        examples = ", ".join(map(repr, self.examples))
        if self.seen and self.unknown == self.seen and len(index):
            raise InputError(
                f"{where}: no value of column 'lead_id' matches leads.lead_id (e.g. {examples} "
                f"against {', '.join(map(repr, index[:3].tolist()))}; types "
                f"{type(self.examples[0]).__name__} and {index.dtype})"
            )
        if self.unknown and warn is not None:
            warn(
                f"{where}: {self.unknown:,} of {self.seen:,} rows have a lead_id not in the "
                f"leads table, e.g. {examples}; they are ignored"
            )


def partition_activities(
    spec: SourceConfig,
    where: str,
    data_dir: Path,
    lead_ids: pd.Series,
    folder: Path,
    warn: Warn | None = None,
    advance: Callable[[int], None] | None = None,
    bucket_size: int | None = None,
) -> ActivityPartitions:
    """Stream the activity source into `folder`, one file per bucket of consecutive leads.

    Buckets hold `bucket_size` leads (default `bucket_leads`). Each batch is mapped and checked
    like a loaded table; activities of leads not in the leads table are counted, warned about
    and left out (a loaded table ignores them too); none matching at all is an input error.
    `advance` is told how many source rows each batch had.
    """
    index = pd.Index(lead_ids.to_numpy())
    bucket_size = bucket_size or bucket_leads(len(index))
    writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}
    tally = _Tally()
    batches = read_ahead(iter_source(spec, data_dir, BATCH_ROWS))  # the next read meanwhile
    try:
        read = 0  # source rows so far: messages name rows of the source
        for raw in batches:
            raw.index = pd.RangeIndex(read, read + len(raw))
            read += len(raw)
            frame = map_source(raw, spec, where, dropped=tally.dropped)
            frame = check_table("activities", frame, where)
            tally.seen += len(frame)
            if advance is not None:
                advance(len(raw))
            if frame.empty:
                continue
            times = utc_datetime64(frame["occurred_at"])
            position = index.get_indexer(as_key_type(frame["lead_id"], index).to_numpy())
            known = position >= 0
            tally.count(frame, known, times)
            if known.any():
                types = frame["activity_type"][known]
                _append(writers, folder, bucket_size, position[known], times[known], types)
    except OSError as exc:  # a full disk, most often
        raise JobFailure(
            f"cannot split the activity log into {folder}: {exc} (scoring.spill_dir sets the "
            "folder)"
        ) from None
    finally:
        batches.close()  # a batch that failed its checks stops the reading
        for writer in writers.values():
            writer.close()
    tally.report(where, index, warn)
    newest = tally.newest
    partitions = ActivityPartitions(
        folder=folder,
        lead_ids=index,
        bucket_size=bucket_size,
        rows=tally.kept,
        newest=None if newest is None else pd.Timestamp(newest, tz="UTC"),
    )
    _ = partitions.ids_sorted  # known here once, not in each process that reads a chunk
    return partitions


def _arrow_text(values: pd.Series) -> pa.Array:
    """`values` as Arrow text, as `astype("string")` spells them (missing stays missing). A
    categorical column of text (Parquet written from pandas) is spelt per category and taken
    by its codes: spelling each of millions of values went through a Python string per row."""
    if isinstance(values.dtype, pd.CategoricalDtype) and pd.api.types.is_string_dtype(
        values.cat.categories
    ):  # (other categories spell as astype does through the values: 3 as '3.0' with a NaN)
        names = _arrow_text(pd.Series(values.cat.categories))
        codes = values.cat.codes.to_numpy()
        return names.take(pa.array(codes, mask=codes < 0))
    out = pa.Array.from_pandas(values.astype("string"))
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out  # chunked: Arrow's


def _append(
    writers: dict[int, pa.ipc.RecordBatchStreamWriter],
    folder: Path,
    bucket_size: int,
    position: np.ndarray,
    times: np.ndarray,
    types: pd.Series,
) -> None:
    """Append a batch's rows to their buckets' files, opening files as buckets first appear."""
    bucket = position // bucket_size
    order = np.argsort(bucket, kind="stable")
    sorted_buckets = bucket[order]
    starts = np.flatnonzero(np.r_[True, sorted_buckets[1:] != sorted_buckets[:-1]])
    types_arrow = _arrow_text(types)
    batch = pa.record_batch(
        [
            pa.array(position[order], pa.int64()),
            pa.array(times.view(np.int64)[order], pa.int64()),
            types_arrow.cast(pa.string()).take(order),
        ],
        schema=SCHEMA,
    )
    ends = [*starts[1:], len(order)]
    for start, end in zip(starts, ends, strict=True):
        k = int(sorted_buckets[start])
        if k not in writers:
            writers[k] = pa.ipc.new_stream(str(folder / f"{k}.arrow"), SCHEMA, options=OPTIONS)
        writers[k].write_batch(batch.slice(start, end - start))


@dataclass(frozen=True)
class SpilledActivities:
    """The log on disk by bucket of leads; each chunk reads its buckets, as of `as_of`."""

    partitions: ActivityPartitions
    as_of: pd.Timestamp | None = None  # set once the run's time is known

    @property
    def newest(self) -> pd.Timestamp | None:
        return self.partitions.newest

    def at(self, as_of: pd.Timestamp) -> SpilledActivities:
        return replace(self, as_of=as_of)

    def chunks(
        self, tables: CrmTables, spine: pd.DataFrame, size: int
    ) -> Iterator[tuple[CrmTables, pd.DataFrame]]:
        """As `lead_chunks`, with activities read from disk: consecutive buckets grouped up to
        `size` open leads, and only their activities (as of the run, cleaned) in memory at
        once. `spine` must be in the leads table's order (as the open spine gives it)."""
        for chunk in self._chunks(tables, spine, size):
            yield from chunk.pieces()

    def _chunks(self, tables: CrmTables, spine: pd.DataFrame, size: int) -> list[Chunk]:
        if self.as_of is None:
            raise ValueError("the run's as-of time is not set")
        bucket = self.partitions.buckets(spine["lead_id"])
        if (np.diff(bucket) < 0).any() or (bucket < 0).any():
            raise ValueError("the spine must hold leads of the partitioned table, in its order")
        ids, starts, counts = np.unique(bucket, return_index=True, return_counts=True)
        chunks = []
        group_start = 0
        while group_start < len(ids):
            group_end, total = group_start + 1, counts[group_start]
            while group_end < len(ids) and total + counts[group_end] <= size:
                total += counts[group_end]
                group_end += 1
            first = starts[group_start]
            group = ids[group_start:group_end].tolist()
            lead_chunk = spine.iloc[first : first + total]
            chunks.append(Chunk(int(total), partial(self._pieces, tables, group, lead_chunk, size)))
            group_start = group_end
        return chunks

    def _pieces(
        self, tables: CrmTables, buckets: list[int], spine: pd.DataFrame, size: int
    ) -> Iterator[tuple[CrmTables, pd.DataFrame]]:
        """The leads of `buckets` with their activities, `size` leads at a time (a bucket can
        hold more than `size` open leads)."""
        assert self.as_of is not None
        read = self.partitions.read(buckets)
        acts = clean_activities(activities_as_of(read, self.as_of))
        yield from lead_chunks(replace(tables, activities=acts), spine, size)

    def features(self, tables: CrmTables, spine: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
        """Bucket by bucket (a lead may have rows at several cutoffs), back in spine order."""
        if self.as_of is None:
            raise ValueError("the run's as-of time is not set")
        bucket = self.partitions.buckets(spine["lead_id"])
        order = np.argsort(bucket, kind="stable")
        ids = np.unique(bucket)
        bounds = np.searchsorted(bucket[order], [*ids, ids.max(initial=-1) + 1])
        parts = []
        for k, start, end in zip(ids, bounds[:-1], bounds[1:], strict=True):
            read = self.partitions.read([int(k)]) if k >= 0 else pd.DataFrame()
            acts = clean_activities(activities_as_of(read, self.as_of)) if k >= 0 else read
            part = replace(tables, activities=acts) if k >= 0 else tables
            parts.append(build_features(part, spine.iloc[order[start:end]], spec))
        if not parts:
            return build_features(tables, spine, spec)
        X = pd.concat(parts)
        return X.iloc[np.argsort(order, kind="stable")]

    def map_leads(
        self,
        tables: CrmTables,
        spine: pd.DataFrame,
        work: Work,
        kinds: dict[str, str],
        chunk_size: int,
        advance: Advance | None = None,
        keep: Keep | None = None,
        workers: Workers | None = None,
    ) -> pd.DataFrame:
        chunks = self._chunks(tables, spine, chunk_leads(len(spine), chunk_size, workers))
        return _mapped(chunks, work, kinds, advance, keep, workers)


def source_rows(spec: SourceConfig, data_dir: Path) -> int | None:
    """How many rows a source has, when that is known without reading it (a Parquet file)."""
    if spec.path is None or (spec.format or Path(spec.path).suffix.lstrip(".")) != "parquet":
        return None
    try:
        return pq.ParquetFile(data_dir / spec.path).metadata.num_rows
    except (OSError, pa.ArrowException):
        return None  # reading it says what is wrong
