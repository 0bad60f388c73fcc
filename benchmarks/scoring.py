"""Scoring benchmark: each stage's throughput and peak memory, and the end-to-end time as a
ratio of a floor measured in the same run.

Usage: python benchmarks/scoring.py [--open-leads 100000 1000000] [--out benchmarks/results]

For each size it generates a synthetic CRM with about that many open leads (about 20
activities each), trains a model on a 20,000-lead history, then times:

- load: reading and checking the four tables (`load_tables`);
- features: building the features of every open lead; `features_before` the same with the
  builders before issue 16's rewrite (`tests/frozen_features`), on the same tables, and whether
  the two give identical values;
- predict: calibrated probabilities without reasons (LightGBM predict + calibration);
- reasons: TreeSHAP contributions, reasons and sub-scores (`score_leads`' extra work);
- write: the scores into SQLite, in one transaction, with the history table; `rewrite` the
  same again (the rerun case: unchanged rows keep their time); `write_postgres` and
  `rewrite_postgres` the same into PostgreSQL when LEADSCORE_BENCH_POSTGRES (default: the local
  test database) answers.

Agreement: on a sample of up to 20,000 leads, the table-based TreeSHAP against LightGBM's own
`pred_contrib`: the largest absolute difference, the share of leads whose top-3 reasons are the
same features in the same order, and the time LightGBM's TreeSHAP takes on the sample
(extrapolated to all leads) against ours.

The floor is what no scorer can avoid on this machine: `pd.read_parquet` of the same four
files, raw LightGBM predict on the final feature matrix, and a plain `to_sql` of the same output
rows into a fresh SQLite file. Ratios are against it; absolute times on a shared machine are noisy.
Peak memory is the process's resident high-water mark after each stage (it only grows).

The job: `leadscore score` on the same data in its own process, as a user runs it (it streams
the activity log to disk by lead and reads one chunk at a time), with its wall time as a ratio of
the same floor and its own peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from training import TreeSampler

from leadscore.features.build import build_features
from leadscore.features.shapes import shape_for
from leadscore.features.tables import clean, crm_as_of
from leadscore.models.reasons import top_reasons
from leadscore.models.scoring import HISTORY_COLUMNS, PART_KINDS, chunk_scorer, finish
from leadscore.pipeline.catalog import Catalog
from leadscore.pipeline.config import load_config
from leadscore.pipeline.io.activities import InMemoryActivities
from leadscore.pipeline.io.registry import load_bundle
from leadscore.pipeline.io.sources import load_tables
from leadscore.pipeline.io.writeback import write_table
from leadscore.pipeline.jobs.train import train
from leadscore.pipeline.progress import Steps
from leadscore.pipeline.synthetic_crm import generate_crm

REPO = Path(__file__).resolve().parents[1]
AS_OF = pd.Timestamp("2026-11-01", tz="UTC")
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
OPEN_SHARE = 0.81  # share of generated leads open on the last day (measured on the generator)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(record: dict, name: str, rows: int, fn):  # noqa: ANN001, ANN201
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    record[name] = {
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds),
        "peak_mb": round(peak_mb()),
    }
    return result


def write_crm(folder: Path, n_leads: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in generate_crm(n_leads, seed).tables().items():
        if name != "truth":
            frame.to_parquet(folder / f"{name}.parquet", index=False)


def bench(work: Path, open_target: int, bundle, version: str, config) -> dict:  # noqa: ANN001
    data = work / f"crm_{open_target}"
    write_crm(data, int(open_target / OPEN_SHARE), seed=99)
    record: dict = {"open_leads_target": open_target}
    raw = timed(record, "load", open_target, lambda: load_tables(None, data))
    tables = clean(crm_as_of(raw, AS_OF))
    spine = shape_for("events").open_spine(tables, AS_OF)
    n = len(spine)
    record["open_leads"] = n
    record["activities"] = len(raw.activities)
    X = timed(
        record,
        "features",
        n,
        lambda: build_features(tables, spine, bundle.feature_spec).reset_index(drop=True),
    )
    # the builders before issue 16's rewrite, on the same tables (tests/frozen_features)
    sys.path.insert(0, str(REPO / "tests"))
    from frozen_features.build import build_features as frozen_build_features

    before = timed(
        record,
        "features_before",
        n,
        lambda: frozen_build_features(tables, spine, bundle.feature_spec).reset_index(drop=True),
    )
    record["features_identical"] = bool(before.equals(X))
    record["features_speedup"] = round(
        record["features_before"]["seconds"] / record["features"]["seconds"], 2
    )
    del before
    model = bundle.estimator
    timed(record, "predict", n, lambda: model.predict_proba(X))
    start = time.perf_counter()
    scores = score_all(tables, spine, bundle, version, config)
    full = time.perf_counter() - start
    record["reasons"] = {
        "seconds": round(
            max(full - record["features"]["seconds"] - record["predict"]["seconds"], 0), 3
        ),
        "rows_per_s": round(n / full),
        "peak_mb": round(peak_mb()),
        "note": "score_leads total minus features and predict",
    }
    history = scores[HISTORY_COLUMNS].assign(batch_id="bench")
    db = work / f"scores_{open_target}.db"

    def write(target: str) -> None:
        write_table(scores, target, "lead_scores", history=(history, "lead_score_history"))

    timed(record, "write", n, lambda: write(str(db)))
    timed(record, "rewrite", n, lambda: write(str(db)))
    postgres = os.environ.get("LEADSCORE_BENCH_POSTGRES", POSTGRES)
    try:
        with sa.create_engine(postgres).begin() as conn:
            for t in ("lead_scores", "lead_score_history"):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {t}")
        timed(record, "write_postgres", n, lambda: write(postgres))
        timed(record, "rewrite_postgres", n, lambda: write(postgres))
    except sa.exc.OperationalError as exc:
        record["write_postgres"] = {"skipped": f"no PostgreSQL at {postgres}: {exc.orig}"}
    record["agreement"] = agreement(model, X)

    # The floor: read the same files, raw predict on the same matrix, write the same rows.
    floor: dict = {}
    timed(
        floor,
        "read",
        n,
        lambda: [
            pd.read_parquet(data / f"{t}.parquet")
            for t in ("accounts", "leads", "activities", "deals")
        ],
    )
    encoded = model._encode(X)
    timed(
        floor,
        "predict",
        n,
        lambda: model.booster_.predict(
            encoded, raw_score=True, num_iteration=model.best_iteration_
        ),
    )
    plain = work / f"floor_{open_target}.db"

    def plain_write() -> None:
        with sqlite3.connect(plain) as conn:
            scores.to_sql("lead_scores", conn, index=False, if_exists="replace", chunksize=50_000)

    timed(floor, "write", n, plain_write)
    floor_s = sum(v["seconds"] for v in floor.values())
    without = sum(record[k]["seconds"] for k in ("load", "features", "predict", "write"))
    with_reasons = without + record["reasons"]["seconds"]
    record["floor"] = floor
    record["floor_seconds"] = round(floor_s, 3)
    record["end_to_end_without_reasons_s"] = round(without, 3)
    record["end_to_end_with_reasons_s"] = round(with_reasons, 3)
    record["ratio_without_reasons"] = round(without / floor_s, 2)
    record["ratio_with_reasons"] = round(with_reasons / floor_s, 2)
    record["with_over_without_reasons"] = round(with_reasons / without, 2)
    record["write_rows_per_s"] = record["write"]["rows_per_s"]
    record["peak_mb"] = round(peak_mb())
    job = score_job(work, data, str(work / f"job_{n}.db"))
    record["job"] = {**job, "rows_per_s": round(n / job["seconds"])}
    record["ratio_job"] = round(record["job"]["seconds"] / floor_s, 2)
    return record


def score_all(tables, spine, bundle, version: str, config) -> pd.DataFrame:  # noqa: ANN001
    """What the score job does with tables in memory: per chunk features, probability,
    sub-scores and reasons, then scores and grades over the batch."""
    rules = config.scoring
    work = chunk_scorer(bundle, rules)
    scored = InMemoryActivities().map_leads(tables, spine, work, PART_KINDS, rules.chunk_size)
    return finish(scored, version, AS_OF, pd.Timestamp.now(tz="UTC"), rules, config.agreement)


def score_job(work: Path, data: Path, output: str, *extra: str) -> dict:
    """`leadscore score` as a user runs it, in its own process: wall time (start-up, model
    load, streaming the activity log, features, reasons, the write) and its own peak memory.
    $SPARK_MASTER is local[2] for `--engine spark`."""
    exe = Path(sys.executable).with_name("leadscore")
    log = work / f"{Path(output).stem}.log"
    args = [str(exe), "score", "--config", str(REPO / "configs" / "demo.yaml"), "--data",
            str(data), "--as-of", AS_OF.isoformat(), "--output", output, *extra]  # fmt: skip
    # Linux keeps a process's peak memory across exec, so a child forked from this (large)
    # process would report our peak: a small fresh Python starts the job and reports its child's.
    wrapper = (
        "import resource, subprocess, sys; "
        "code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
    )
    start = time.perf_counter()
    with log.open("w") as err:
        done = subprocess.Popen(
            [sys.executable, "-c", wrapper, *args], cwd=work, stdout=subprocess.PIPE,
            stderr=err, text=True, env={**os.environ, "SPARK_MASTER": "local[2]"},
        )  # fmt: skip
        # the job and its chunk workers at once (wait4's figure is the largest one process)
        sampler = TreeSampler(done.pid)
        sampler.start()
        stdout, _ = done.communicate()
        sampler.stop.set()
        sampler.join()
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"leadscore score {' '.join(extra)} failed:\n{log.read_text()}")
    return {
        "seconds": round(seconds, 3),
        "peak_mb": round(int(stdout.split()[-1]) / 1024),  # the largest process's high-water mark
        "tree_peak_mb": round(sampler.peak_kb / 1024),
    }


def agreement(model, X: pd.DataFrame, sample: int = 20_000) -> dict:  # noqa: ANN001
    """Our TreeSHAP against LightGBM's on a sample: numbers, top-3 reasons, time."""
    rows = X.sample(min(sample, len(X)), random_state=0)
    start = time.perf_counter()
    ours = model.contributions(rows)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    exact = model.exact_contributions(rows)
    exact_s = time.perf_counter() - start

    def top3(contrib: pd.DataFrame) -> list[list[object]]:
        picked = top_reasons(rows, contrib, lambda f, v: f, 3, 0.05)
        return [[r["feature"] for r in row] for row in picked]

    same = sum(a == b for a, b in zip(top3(ours), top3(exact), strict=True))
    return {
        "sample": len(rows),
        "max_abs_difference": float((ours - exact).abs().to_numpy().max()),
        "top3_same_share": round(same / len(rows), 4),
        "ours_s": round(ours_s, 3),
        "lightgbm_pred_contrib_s": round(exact_s, 3),
        "speedup": round(exact_s / ours_s, 1),
        "lightgbm_all_leads_s_estimate": round(exact_s * len(X) / len(rows), 1),
    }


def rate(record: dict, stage: str) -> str:
    """Rows per second of a stage, or n/a when it was skipped (no PostgreSQL)."""
    value = record.get(stage, {}).get("rows_per_s")
    return f"{value:,}" if value is not None else "n/a"


def table(results: list[dict]) -> str:
    lines = [
        "| open leads | activities | load | features | predict | reasons | write | "
        "floor | e2e / floor (no reasons) | e2e / floor (reasons) | reasons / scoring w/o | "
        "SQLite rows/s (rerun) | PostgreSQL rows/s (rerun) | top-3 = exact | vs pred_contrib | "
        "`leadscore score` job / floor | job peak MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:

        def s(stage: str, r: dict = r) -> str:
            return f"{r[stage]['seconds']:.1f}s"

        lines.append(
            f"| {r['open_leads']:,} | {r['activities']:,} | {s('load')} | {s('features')} | "
            f"{s('predict')} | {s('reasons')} | {s('write')} | {r['floor_seconds']:.1f}s | "
            f"{r['ratio_without_reasons']:.2f}x | {r['ratio_with_reasons']:.2f}x | "
            f"{r['with_over_without_reasons']:.2f}x | "
            f"{r['write_rows_per_s']:,} ({r['rewrite']['rows_per_s']:,}) | "
            f"{rate(r, 'write_postgres')} ({rate(r, 'rewrite_postgres')}) | "
            f"{r['agreement']['top3_same_share']:.1%} | {r['agreement']['speedup']:.1f}x faster | "
            f"{r['job']['seconds']:.1f}s = {r['ratio_job']:.2f}x | {r['job']['peak_mb']:,} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open-leads", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    args.out = args.out.resolve()  # the run works in a temporary folder
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
        os.chdir(work)  # MLflow puts a new store's artifacts in ./mlruns: here, not in the repo
        config = load_config(REPO / "configs" / "demo.yaml")
        write_crm(work / "history", 20_000, seed=0)
        with Catalog.open(config, work / "history", steps=Steps(quiet=True)) as catalog:
            result = train(catalog, AS_OF)
        bundle = load_bundle(config.mlflow.registered_model, result.version)
        results = []
        for size in sorted(args.open_leads):  # results are written as soon as each size ends
            results.append(bench(work, size, bundle, result.version, config))
            (args.out / "scoring.json").write_text(json.dumps(results, indent=2))
            (args.out / "scoring.md").write_text(table(results) + "\n")
            print(table(results), flush=True)


if __name__ == "__main__":
    main()
