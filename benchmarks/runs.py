"""How long `leadscore runs` takes to list 100 runs, beside Python importing MLflow alone.

Usage: python benchmarks/runs.py [--runs 100] [--repeats 5]

Makes a fresh SQLite MLflow store with --runs finished train runs (tags, ten metrics with
intervals each, like leadscore's) plus as many score runs (which the listing filters out), then
times the whole `leadscore runs --limit N` process, and a `python -c "import mlflow"` process
for context (the listing read the store through MLflow until 2026-11-30; on a database store it
now reads the tables itself and does not import MLflow), medians of --repeats. Writes
benchmarks/results/runs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parents[1]


def _seconds(command: list[str], cwd: Path, env: dict[str, str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="leadscore-runs-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
        filler = f"""
import mlflow
mlflow.set_experiment("leadscore")
for i in range({args.runs}):
    for job in ("train", "score"):
        with mlflow.start_run(run_name=f"{{job}}-{{i}}"):
            mlflow.set_tags({{"job": job, "as_of": "2026-10-01", "config_hash": "abc"}})
            mlflow.log_metrics({{f"{{m}}{{s}}": 0.5 for m in ("roc_auc", "pr_auc", "ece",
                "lift_at_10", "capture_at_20") for s in ("", "_ci_low", "_ci_high")}})
"""
        subprocess.run([sys.executable, "-c", filler], env=env, check=True, capture_output=True)
        exe = str(Path(sys.executable).with_name("leadscore"))
        listing = _seconds([exe, "runs", "--limit", str(args.runs)], work, env, args.repeats)
        floor = _seconds([sys.executable, "-c", "import mlflow"], work, env, args.repeats)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "runs": args.runs,
        "leadscore_runs_s": listing,
        "python_import_mlflow_s": floor,
        "ratio": listing / floor,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "runs.json").write_text(json.dumps(result, indent=2))
    print(
        f"leadscore runs, {args.runs} runs: {listing:.2f} s; python -c 'import mlflow': "
        f"{floor:.2f} s; ratio {listing / floor:.2f}x"
    )


if __name__ == "__main__":
    main()
