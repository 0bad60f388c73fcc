"""Training at scale: `leadscore train` on a large synthetic history, on one machine (pandas)
and with `--engine spark` on `local[2]`, each a whole process: wall time, its own peak memory,
and the size of the training table it built.

Usage: python benchmarks/scale.py [--leads 1000000] [--cutoffs 12] [--engines pandas spark]

The history's first cutoff is set so that about `--cutoffs` monthly cutoffs fall in it. The
training table's size is read off the job's own line ("N train / ... examples, K cutoffs,
F features"): rows x features, and that many float64 values in bytes. Writes
benchmarks/results/scale.json. About an hour at 1M leads on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from training import _run, step_seconds

REPO = Path(__file__).resolve().parents[1]
AS_OF = "2026-11-01"
HISTORY_DAYS = 640  # two years of history, less the conversion window the labels need


def training_table(log: str) -> dict[str, int]:
    """Rows, cutoffs and features of the training table, from the first such line."""
    found = re.search(r"([\d,]+) train / ([\d,]+) valid / ([\d,]+) calibration / ([\d,]+) "
                      r"holdout examples, (\d+) cutoffs, (\d+) features", log)  # fmt: skip
    if found is None:
        return {}
    counts = [int(g.replace(",", "")) for g in found.groups()]
    rows, features = sum(counts[:4]), counts[5]
    return {"training_rows": rows, "cutoffs": counts[4], "features": features,
            "training_table_mb": round(rows * features * 8 / 2**20)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--cutoffs", type=int, default=12)
    parser.add_argument("--engines", nargs="+", default=["pandas", "spark"])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    exe = str(Path(sys.executable).with_name("leadscore"))
    # cutoffs are month starts from `history_start_days` after the first lead up to AS_OF
    start_days = max(HISTORY_DAYS - 30 * args.cutoffs, 0)
    runs = []
    with tempfile.TemporaryDirectory(prefix="leadscore-scale-") as tmp:
        work = Path(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
        os.environ["SPARK_MASTER"] = "local[2]"
        subprocess.run(
            [exe, "demo-data", "--out", "data", "--leads", str(args.leads), "--seed", "0"],
            cwd=work, check=True, capture_output=True,
        )  # fmt: skip
        activities = _activity_rows(work / "data")
        for engine in args.engines:
            command = [exe, "train", "--config", str(REPO / "configs" / "demo.yaml"), "--data",
                       "data", "--as-of", AS_OF, "--engine", engine, "--set",
                       f"snapshots.history_start_days={start_days}"]  # fmt: skip
            run = _run(command, work)
            runs.append({"engine": engine, "seconds": round(run.seconds, 1),
                         "peak_mb": round(run.peak_mb), "tree_peak_mb": round(run.tree_peak_mb),
                         **training_table(run.log), "steps_s": step_seconds(run.log)})  # fmt: skip
            print(json.dumps(runs[-1], indent=2), flush=True)
    result = {"date": time.strftime("%Y-%m-%d"), "leads": args.leads, "activities": activities,
              "runs": runs}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(result, indent=2))


def _activity_rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in folder.glob("activities*.parquet"))


if __name__ == "__main__":
    main()
