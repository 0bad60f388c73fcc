"""Which engine for the engagement group-by: our NumPy segment reductions against Polars and
DuckDB on the same Arrow-backed columns, in one process.

Usage: python benchmarks/feature_engines.py [--open-leads 1000000] [--repeats 3]

The work is the heart of `features.engagement` at one cutoff: for every open lead, counts per
activity type in each window (7, 30, 90 days), the decay-weighted sum and the days since the
last activity, from activities strictly before the cutoff. Each engine starts from the same
integer columns (lead code, time in ns, type code) and ends with a NumPy matrix in lead order,
so conversion costs count. Polars and DuckDB are not dependencies of leadscore: an engine that
is not installed is reported as such. Best of `--repeats`. Writes
benchmarks/results/feature_engines.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scoring import AS_OF, OPEN_SHARE, REPO, write_crm

from leadscore.features.engagement import ACTIVITY_TYPES, NS_PER_DAY, _type_codes
from leadscore.features.tables import clean, crm_as_of, utc_datetime64
from leadscore.pipeline.io.sources import load_tables

WINDOWS = (7, 30, 90)
HALF_LIFE = 14.0
LOOKBACK = 365


def numpy_engine(lead: np.ndarray, t: np.ndarray, kind: np.ndarray, n: int, c: int) -> np.ndarray:
    n_types = len(ACTIVITY_TYPES) + 1
    sel = np.flatnonzero((t >= c - LOOKBACK * NS_PER_DAY) & (t < c))
    code, age = lead[sel], (c - t[sel]) / NS_PER_DAY
    cell = code * n_types + kind[sel]
    out = [np.bincount(cell[age < w], minlength=n * n_types).reshape(n, n_types) for w in WINDOWS]
    decay = np.bincount(code, weights=np.power(0.5, age / HALF_LIFE), minlength=n)
    youngest = np.full(n, np.inf)
    np.minimum.at(youngest, code, age)
    return np.column_stack([*out, decay, youngest])


def polars_engine(lead: np.ndarray, t: np.ndarray, kind: np.ndarray, n: int, c: int) -> np.ndarray:
    import polars as pl

    n_types = len(ACTIVITY_TYPES) + 1
    frame = pl.DataFrame({"lead": lead, "t": t, "kind": kind})
    age = (pl.lit(c) - pl.col("t")) / NS_PER_DAY
    counts = [
        ((pl.col("age") < w) & (pl.col("kind") == k)).sum().alias(f"c{w}_{k}")
        for w in WINDOWS
        for k in range(n_types)
    ]
    result = (
        frame.lazy()
        .filter((pl.col("t") >= c - LOOKBACK * NS_PER_DAY) & (pl.col("t") < c))
        .with_columns(age=age)
        .group_by("lead")
        .agg(
            [
                *counts,
                (0.5 ** (pl.col("age") / HALF_LIFE)).sum().alias("decay"),
                pl.col("age").min().alias("youngest"),
            ]
        )
        .collect()
    )
    out = np.zeros((n, result.width - 1))
    out[:, -1] = np.inf
    out[result["lead"].to_numpy()] = result.drop("lead").to_numpy()
    return out


def duckdb_engine(lead: np.ndarray, t: np.ndarray, kind: np.ndarray, n: int, c: int) -> np.ndarray:
    import duckdb
    import pyarrow as pa

    n_types = len(ACTIVITY_TYPES) + 1
    acts = pa.table({"lead": lead, "t": t, "kind": kind})  # noqa: F841 (read by the query)
    counts = ", ".join(
        f"count(*) FILTER (WHERE age < {w} AND kind = {k}) AS c{w}_{k}"
        for w in WINDOWS
        for k in range(n_types)
    )
    query = f"""
        SELECT lead, {counts}, sum(pow(0.5, age / {HALF_LIFE})) AS decay, min(age) AS youngest
        FROM (SELECT lead, kind, ({c} - t) / {NS_PER_DAY}.0 AS age FROM acts
              WHERE t >= {c - LOOKBACK * NS_PER_DAY} AND t < {c})
        GROUP BY lead"""
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    result = con.sql(query).to_arrow_table()
    out = np.zeros((n, result.num_columns - 1))
    out[:, -1] = np.inf
    columns = [result.column(i).to_numpy() for i in range(1, result.num_columns)]
    out[result.column(0).to_numpy()] = np.column_stack(columns)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open-leads", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, help="an export to use instead of generating one")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    data = args.data
    if data is None:
        data = Path("/tmp") / f"leadscore-engines-{args.open_leads}"
        write_crm(data, int(args.open_leads / OPEN_SHARE), seed=99)
    tables = clean(crm_as_of(load_tables(None, data), AS_OF))
    acts = tables.activities
    lead, keys = pd.factorize(acts["lead_id"])
    t = utc_datetime64(acts["occurred_at"]).view(np.int64)
    kind = _type_codes(acts["activity_type"], [*ACTIVITY_TYPES, "other"])
    c, n = AS_OF.as_unit("ns").value, len(keys)
    result: dict[str, object] = {"date": time.strftime("%Y-%m-%d"), "activities": len(acts),
                                 "leads": n}  # fmt: skip
    reference = numpy_engine(lead, t, kind, n, c)
    for name, engine in (("numpy", numpy_engine), ("polars", polars_engine),
                         ("duckdb", duckdb_engine)):  # fmt: skip
        try:
            seconds = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                found = engine(lead, t, kind, n, c)
                seconds.append(time.perf_counter() - start)
        except ImportError as exc:
            result[name] = {"skipped": f"not installed ({exc.name})"}
            continue
        same = np.allclose(found, reference, rtol=1e-12, equal_nan=True)
        result[name] = {"seconds": round(min(seconds), 3), "same_values": bool(same)}
        print(name, result[name], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "feature_engines.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
