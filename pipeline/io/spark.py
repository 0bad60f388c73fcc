"""The same features and scoring on Apache Spark (`--engine spark`; `pip install -e '.[spark]'`).

One feature definition, two engines: the activity log (the big table) is read by Spark and
grouped with the spine by buckets of leads; each bucket runs the pandas code the default engine
runs (`map_source` and `check_table` on the raw rows, `clean_activities`, `build_features`, and
for scoring `_score_chunk`) through `cogroup(...).applyInPandas`. The small tables (leads,
accounts, deals) are broadcast to the executors. Results come back to the driver in spine order,
so training and grading continue exactly as on one machine.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from leadscore.features.build import FeatureSpec, build_features
from leadscore.features.tables import CrmTables, activities_as_of, clean_activities, utc_datetime64
from leadscore.pipeline.config import Config, SourceConfig
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io.checks import SORT_KEYS, canonical_order, check_table
from leadscore.pipeline.io.chunk_workers import Workers
from leadscore.pipeline.io.mapping import map_source
from leadscore.pipeline.io.readers import describe_source
from leadscore.pipeline.io.sources import source_spec

if TYPE_CHECKING:  # pyspark is an optional extra
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import SparkSession

ROW = "_row"  # the spine's own order, carried through Spark
BUCKET = "_bucket"


def spark_session(master: str | None = None, driver_memory: str = "4g") -> SparkSession:
    """A SparkSession: `master` if given, else whatever spark-submit or $SPARK_MASTER set, else
    local[*]. Workers run this Python (the one with leadscore installed) unless
    $PYSPARK_PYTHON says otherwise; timestamps are UTC."""
    try:
        from pyspark import SparkConf
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError(
            "--engine spark needs pyspark: pip install -e '.[spark]' (Java 17 must be on PATH)"
        ) from None
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("leadscore")
    chosen = master or os.environ.get("SPARK_MASTER")
    if chosen is not None:
        builder = builder.master(chosen)
    elif not SparkConf().contains("spark.master"):
        builder = builder.master("local[*]")
    if not SparkConf().contains("spark.driver.memory"):
        builder = builder.config("spark.driver.memory", driver_memory)
    spark = (
        builder.config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.maxResultSize", "0")  # the scores come back to the driver
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _read_activities(
    spark: SparkSession, spec: SourceConfig, data_dir: Path, lead_key: pd.Series
) -> tuple[SparkFrame, list[str]]:
    """The raw activity rows as Spark reads them, renamed as the config says; timestamps as
    microseconds since the epoch (the bucket function turns them back), lead_id in the leads
    table's type so the bucket join matches."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampNTZType, TimestampType

    if spec.path is None:
        raise InputError(
            f"{describe_source(spec, data_dir)}: --engine spark reads activities from files "
            "(Parquet or CSV); export the table or use the default engine"
        )
    path = str(data_dir / spec.path)
    kind = spec.format or ("parquet" if path.endswith(".parquet") else "csv")
    if kind == "parquet":
        frame = spark.read.parquet(path)
    else:
        c = spec.csv
        frame = (
            spark.read.option("header", True)
            .option("sep", c.delimiter)
            .option("encoding", c.encoding)
            .option("quote", c.quotechar)
            .csv(path)
        )
    for source, target in spec.rename.items():
        frame = frame.withColumnRenamed(source, target)
    stamps = [
        f.name
        for f in frame.schema.fields
        if isinstance(f.dataType, TimestampType | TimestampNTZType)
    ]
    for name in stamps:
        frame = frame.withColumn(name, F.unix_micros(F.col(name)))
    if "lead_id" not in frame.columns:
        raise InputError(f"{path}: no lead_id column (has: {', '.join(frame.columns)})")
    key_type = "long" if pd.api.types.is_integer_dtype(lead_key) else "string"
    # try_cast: an id that is not a number (against numeric lead ids) becomes null, an unknown
    # lead, instead of failing the job under ANSI mode
    return frame.withColumn("lead_id", F.expr(f"try_cast(lead_id AS {key_type})")), stamps


def _buckets(lead_ids: pd.Series, size: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"lead_id": lead_ids.to_numpy(), BUCKET: np.arange(len(lead_ids)) // max(size, 1)}
    )


class SparkActivities:
    """The activity source on Spark, ready to be cogrouped with a spine by lead bucket."""

    def __init__(
        self,
        spark: SparkSession,
        config: Config,
        data_dir: Path,
        leads: pd.Series,
        bucket_size: int = 20_000,
    ) -> None:
        spec = source_spec(config, data_dir, "activities")
        if spec is None:
            raise InputError("--engine spark needs an activities source")
        self.spark, self.spec, self.data_dir = spark, spec, data_dir
        self.where = describe_source(spec, data_dir)
        self.bucket_size = bucket_size
        self.lead_ids = leads.reset_index(drop=True)
        mapping = spark.createDataFrame(_buckets(self.lead_ids, bucket_size))
        raw, self.timestamp_columns = _read_activities(spark, spec, data_dir, self.lead_ids)
        # a left join: rows of unknown leads get no bucket; `newest` counts them, and no
        # spine bucket ever meets them
        self.frame = raw.join(mapping, on="lead_id", how="left")
        self.newest: pd.Timestamp | None = None  # set by `check`
        self.as_of: pd.Timestamp | None = None  # set once the run's time is known

    def check(self, warn: Callable[[str], None] | None = None) -> pd.Timestamp | None:
        """The newest occurred_at, for the default as-of time. Every row goes through the same
        mapping and checks as in the buckets (a text timestamp is parsed with its format, not
        compared as text), so bad rows fail here, before any work; rows of leads the leads
        table lacks are counted and warned about as the default engine does (none matching at
        all is an input error)."""
        from pyspark.sql import functions as F

        spec, where, stamps = self.spec, self.where, self.timestamp_columns
        lead_dtype = self.lead_ids.dtype

        def per_batch(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for raw in batches:
                unknown = raw[BUCKET].isna().to_numpy()
                acts = _activities(raw.drop(columns=[BUCKET]), spec, where, stamps, lead_dtype)
                known = acts[~acts["lead_id"].isin(raw.loc[unknown, "lead_id"])]
                top = (
                    int(utc_datetime64(known["occurred_at"]).view("int64").max())
                    if len(known)
                    else None
                )
                example = str(raw.loc[unknown, "lead_id"].iloc[0]) if unknown.any() else None
                yield pd.DataFrame(
                    {
                        "newest": pd.array([top], dtype="Int64"),
                        "rows": [len(raw)],
                        "unknown": [int(unknown.sum())],
                        "example": pd.array([example], dtype="string"),
                    }
                )

        with _input_errors():
            summary = (
                self.frame.mapInPandas(
                    per_batch, "newest long, rows long, unknown long, example string"
                )
                .agg(F.max("newest"), F.sum("rows"), F.sum("unknown"), F.first("example", True))
                .collect()[0]
            )
        value, rows, unknown, example = summary
        if rows and unknown == rows:
            raise InputError(
                f"{where}: no value of column 'lead_id' matches leads.lead_id (e.g. {example!r} "
                f"against {', '.join(map(repr, self.lead_ids.head(3).tolist()))})"
            )
        if unknown and warn is not None:
            warn(
                f"{where}: {unknown:,} of {rows:,} rows have a lead_id not in the leads table, "
                f"e.g. {example!r}; they are ignored"
            )
        self.newest = None if value is None else pd.Timestamp(int(value), unit="ns", tz="UTC")
        return self.newest

    def at(self, as_of: pd.Timestamp) -> SparkActivities:
        self.as_of = as_of
        return self

    def features(self, tables: CrmTables, spine: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
        """`build_features` per bucket on the executors (see `spark_features`)."""
        return spark_features(self, tables, spine, spec, self._moment())

    def map_leads(
        self,
        tables: CrmTables,
        spine: pd.DataFrame,
        work: Callable[[CrmTables, pd.DataFrame], pd.DataFrame],
        kinds: dict[str, str],
        chunk_size: int,
        advance: Callable[[int], None] | None = None,
        keep: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
        workers: Workers | None = None,
    ) -> pd.DataFrame:
        """`work` per bucket of `spark.bucket_size` leads on the executors (the chunk size and
        the workers are the default engine's); rows in spine order (only those `work`
        returned), `keep` given them all at once."""
        key = "long" if pd.api.types.is_integer_dtype(spine["lead_id"]) else "string"
        schema = ", ".join(
            f"`{str(c).replace('`', '``')}` {t}" for c, t in {"lead_id": key, **kinds}.items()
        )
        names = ["lead_id", *kinds]
        out = self.map_buckets(spine, self._moment(), tables, work, schema, names)
        if advance is not None:
            advance(len(spine))
        out = out.astype({"lead_id": spine["lead_id"].dtype})
        return out if keep is None or out.empty else keep(out)

    def _moment(self) -> pd.Timestamp:
        if self.as_of is None:
            raise ValueError("the run's as-of time is not set")
        return self.as_of

    def map_buckets(
        self,
        spine: pd.DataFrame,
        as_of: pd.Timestamp,
        small: CrmTables,
        work: Callable[[CrmTables, pd.DataFrame], pd.DataFrame],
        schema: str,
        names: list[str],
    ) -> pd.DataFrame:
        """`work(tables, spine_part)` on every bucket of `spine` on the executors, each with its
        leads' activities (mapped, checked, as of `as_of` and cleaned as the default engine
        does) and the broadcast small tables; the results in spine order."""
        position = pd.Index(self.lead_ids.to_numpy()).get_indexer(spine["lead_id"].to_numpy())
        if (position < 0).any():
            raise ValueError("the spine must hold leads of the leads table")
        sent = pd.DataFrame(
            {
                ROW: np.arange(len(spine)),
                "lead_id": spine["lead_id"].to_numpy(),
                "cutoff_ns": utc_datetime64(spine["cutoff"]).view("int64"),
                BUCKET: position // self.bucket_size,
            }
        )
        spine_sdf = self.spark.createDataFrame(sent)
        shared = self.spark.sparkContext.broadcast(small)
        spec, where, stamps = self.spec, self.where, self.timestamp_columns
        lead_dtype = self.lead_ids.dtype

        def bucket(part: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
            if part.empty:  # activities of leads not in this spine: no rows, typed (an untyped
                # empty column reaches Spark's Arrow hand-off as a chunked array it cannot take)
                return pd.DataFrame(
                    {c: pd.Series([], dtype=object) for c in names}
                    | {ROW: pd.Series([], dtype="int64")}
                )
            tables = shared.value
            acts = _activities(raw.drop(columns=[BUCKET]), spec, where, stamps, lead_dtype)
            acts = clean_activities(activities_as_of(acts, as_of))
            rows = part.sort_values(ROW)
            lead_part = pd.DataFrame(
                {
                    "lead_id": rows["lead_id"].to_numpy().astype(lead_dtype),
                    "cutoff": pd.Series(
                        rows["cutoff_ns"].to_numpy(dtype=np.int64).view("datetime64[ns]")
                    ).dt.tz_localize("UTC"),
                }
            )
            out = work(replace(tables, activities=acts), lead_part)
            if len(out) == len(rows):  # the same rows, in the same order
                return out[names].assign(**{ROW: rows[ROW].to_numpy()})
            row_of = pd.Series(rows[ROW].to_numpy(), index=lead_part["lead_id"].to_numpy())
            return out[names].assign(**{ROW: row_of.reindex(out["lead_id"].to_numpy()).to_numpy()})

        with _input_errors():
            result = (
                spine_sdf.groupBy(BUCKET)
                .cogroup(self.frame.groupBy(BUCKET))
                .applyInPandas(bucket, schema=f"{schema}, {ROW} long")
                .toPandas()
            )
        shared.unpersist()
        return result.sort_values(ROW).drop(columns=ROW).reset_index(drop=True)


@contextmanager
def _input_errors() -> Iterator[None]:
    """An InputError raised on an executor (a bad timestamp in some bucket) reaches the driver
    wrapped in Spark's PythonException: unwrap it, so the CLI says what is wrong and exits 2."""
    from pyspark.errors import PythonException

    try:
        yield
    except PythonException as exc:
        found = re.search(r"InputError: (.+)", str(exc))
        if found is None:
            raise
        raise InputError(found.group(1).strip()) from None


def _activities(
    raw: pd.DataFrame,
    spec: SourceConfig,
    where: str,
    stamps: list[str],
    lead_dtype: np.dtype,
) -> pd.DataFrame:
    """One bucket's raw rows through the same mapping and checks as a loaded table."""
    raw = raw.copy()
    if spec.path is not None and not str(spec.path).endswith(".parquet"):  # CSV null tokens
        tokens = [t for t in spec.csv.null_values if t != ""]
        if tokens:
            raw = raw.replace(tokens, None)
    for column in stamps:
        raw[column] = pd.to_datetime(raw[column], unit="us", utc=True)
    frame = map_source(raw, spec.model_copy(update={"rename": {}}), where)
    frame = check_table("activities", frame, where)
    frame = frame[frame["lead_id"].notna()]  # no lead: an unknown lead, counted by `newest`
    frame["lead_id"] = frame["lead_id"].astype(lead_dtype)
    return canonical_order(frame, SORT_KEYS["activities"])


def spark_features(
    activities: SparkActivities,
    small: CrmTables,
    spine: pd.DataFrame,
    spec: FeatureSpec,
    as_of: pd.Timestamp,
) -> pd.DataFrame:
    """build_features on Spark: the same frame, indexed by (lead_id, cutoff) in spine order.

    The columns and their kinds come from one spine row built on the driver without activities
    (they never depend on the rows): numbers travel as doubles, text as strings."""
    sample = build_features(small, spine.head(1), spec)
    names = list(sample.columns)
    numeric = [c for c in names if pd.api.types.is_numeric_dtype(sample[c])]
    schema = ", ".join(
        f"`{str(c).replace('`', '``')}` {'double' if c in numeric else 'string'}" for c in names
    )

    def work(tables: CrmTables, part: pd.DataFrame) -> pd.DataFrame:
        X = build_features(tables, part, spec).reset_index(drop=True)
        return X[names].astype(dict.fromkeys(numeric, "float64"))

    out = activities.map_buckets(spine, as_of, small, work, schema, names)
    for c in names:  # back to the dtypes the default engine gives (text stays object)
        if c in numeric:
            out[c] = out[c].astype(sample[c].dtype)
        else:
            out[c] = out[c].astype(object).where(out[c].notna(), None)
    out.index = pd.MultiIndex.from_frame(spine[["lead_id", "cutoff"]])
    return out


def spark_activities(
    config: Config, data_dir: Path, raw: CrmTables, warn: Callable[[str], None] | None = None
) -> SparkActivities:
    """A Spark session per `config.spark` and the activity source on it, bucketed by lead and
    checked (`SparkActivities.check`)."""
    spark = spark_session(config.spark.master, config.spark.driver_memory)
    log = SparkActivities(spark, config, data_dir, raw.leads["lead_id"], config.spark.bucket_size)
    log.check(warn)
    return log
