"""The registered model served over REST against the same model in process.

Usage: python benchmarks/serving.py [--leads 6000] [--batch 1000] [--repeats 20]

Trains a model on demo data in a fresh folder, starts `mlflow models serve` on the champion
(env manager local), and measures, against `mlflow.pyfunc.load_model(...).predict` on the same
raw records in this process: the latency of one lead (median of --repeats calls) and the
throughput of a batch of --batch leads. Ratios are served / in process; absolute times only as
context. Writes benchmarks/results/serving.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

import pandas as pd
import requests

REPO = Path(__file__).resolve().parents[1]
AS_OF = "2026-10-01"


def _cli(folder: Path, *args: str) -> None:
    exe = Path(sys.executable).with_name("leadscore")
    subprocess.run([str(exe), *args], cwd=folder, check=True, capture_output=True, text=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _records(folder: Path, n: int) -> pd.DataFrame:
    from leadscore.features.tables import CrmTables
    from leadscore.models.raw_records import example_records

    data = folder / "demo_data"
    names = ("accounts", "leads", "activities", "deals")
    tables = CrmTables(*(pd.read_parquet(data / f"{name}.parquet") for name in names))
    return example_records(tables, pd.Timestamp(AS_OF, tz="UTC"), n=n)


def _timed(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    import mlflow

    with tempfile.TemporaryDirectory(prefix="leadscore-serving-") as tmp:
        work = Path(tmp)
        (work / "configs").mkdir()
        shutil.copy(REPO / "configs" / "demo.yaml", work / "configs" / "demo.yaml")
        _cli(work, "demo-data", "--out", "demo_data", "--leads", str(args.leads), "--seed", "3")
        _cli(work, "train", "--as-of", AS_OF)
        uri = f"sqlite:///{work / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        model = mlflow.pyfunc.load_model("models:/lead-scoring@champion")
        records = _records(work, args.batch)
        one, params = records.head(1), {"as_of": AS_OF}
        port = _free_port()
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("mlflow")), "models", "serve", "-m",
             "models:/lead-scoring@champion", "--env-manager", "local", "-p", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}/invocations"
        try:
            for _ in range(120):
                try:
                    requests.get(f"http://127.0.0.1:{port}/ping", timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.5)

            def post(frame: pd.DataFrame) -> None:
                body = {"dataframe_records": json.loads(frame.to_json(orient="records")),
                        "params": params}  # fmt: skip
                requests.post(url, json=body, timeout=300).raise_for_status()

            post(one)  # warm both up
            model.predict(one, params=params)
            local_one = _timed(lambda: model.predict(one, params=params), args.repeats)
            served_one = _timed(lambda: post(one), args.repeats)
            local_batch = _timed(lambda: model.predict(records, params=params), 3)
            served_batch = _timed(lambda: post(records), 3)
        finally:
            server.terminate()
            server.wait(30)
    result = {
        "date": pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d"),
        "one_lead_in_process_s": local_one,
        "one_lead_served_s": served_one,
        "one_lead_ratio": served_one / local_one,
        "batch": args.batch,
        "batch_in_process_leads_per_s": args.batch / local_batch,
        "batch_served_leads_per_s": args.batch / served_batch,
        "batch_ratio": served_batch / local_batch,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving.json").write_text(json.dumps(result, indent=2))
    lines = [
        "| measure | in process | served (REST) | served / in process |",
        "|---|---:|---:|---:|",
        f"| one lead, median latency | {local_one * 1000:.1f} ms | {served_one * 1000:.1f} ms "
        f"| {served_one / local_one:.2f}x |",
        f"| {args.batch:,} leads, throughput | {args.batch / local_batch:,.0f} leads/s | "
        f"{args.batch / served_batch:,.0f} leads/s | {served_batch / local_batch:.2f}x the time |",
    ]
    (args.out / "serving.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
