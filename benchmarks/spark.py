"""Spark benchmark: `leadscore score --engine spark` (local[2]) against the default engine on
the same data, same model, same machine, in one run; both outputs must be identical.

Usage: python benchmarks/spark.py [--open-leads 1000000] [--out benchmarks/results]

It generates a synthetic CRM with about that many open leads (about 20 activities each),
trains a model on a 20,000-lead history, then runs the real CLI twice (default engine, then
Spark) into Parquet files, timing each whole command (start-up included) and its peak memory
(the driver's; Spark's executors in local mode live in the same JVM, whose memory is counted
too). The result goes to `spark.{json,md}` in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from scoring import AS_OF, OPEN_SHARE, score_job, write_crm  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open-leads", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from leadscore.pipeline.catalog import Catalog
    from leadscore.pipeline.config import load_config
    from leadscore.pipeline.jobs.train import train
    from leadscore.pipeline.progress import Steps

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
        write_crm(work / "history", 20_000, seed=0)
        config = load_config(REPO / "configs" / "demo.yaml")
        with Catalog.open(config, work / "history", steps=Steps(quiet=True)) as catalog:
            train(catalog, AS_OF)
        data = work / "crm"
        write_crm(data, int(args.open_leads / OPEN_SHARE), seed=99)
        activities = pd.read_parquet(data / "activities.parquet", columns=["lead_id"])
        pandas_run = score_job(work, data, str(work / "pandas.parquet"))
        spark_run = score_job(work, data, str(work / "spark.parquet"), "--engine", "spark")
        a = pd.read_parquet(work / "pandas.parquet").drop(columns="scored_at")
        b = pd.read_parquet(work / "spark.parquet").drop(columns="scored_at")
        identical = a.equals(b)
        record = {
            "open_leads": len(a),
            "activities": len(activities),
            "default_engine": pandas_run,
            "spark_local_2": spark_run,
            "spark_over_default": round(spark_run["seconds"] / pandas_run["seconds"], 2),
            "identical_scores": identical,
        }
    (args.out / "spark.json").write_text(json.dumps(record, indent=2))
    table = (
        "| open leads | activities | default engine | Spark local[2] | Spark / default | "
        "peak MB default / Spark driver | identical scores |\n|---:|---:|---:|---:|---:|---:|:-:|\n"
        f"| {record['open_leads']:,} | {record['activities']:,} | {pandas_run['seconds']:.1f}s | "
        f"{spark_run['seconds']:.1f}s | {record['spark_over_default']}x | "
        f"{pandas_run['peak_mb']:,} / {spark_run['peak_mb']:,} | {'yes' if identical else 'NO'} |"
    )
    (args.out / "spark.md").write_text(table + "\n")
    print(table)
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
