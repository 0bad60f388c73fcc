"""Memory as leads grow: the peak of `leadscore score` (its own process, as a user runs it) at
1x and at 4x the open leads, in one run, with the same model.

Usage: python benchmarks/memory.py [--open-leads 1000000] [--out benchmarks/results]

Trains on a 20,000-lead history, generates two exports with about N and 4N open leads (about
20 activities each), runs the job on each into a fresh SQLite file and reports each run's wall
time and peak resident memory (the child's own, from wait4), and the ratio of the peaks.
Writes benchmarks/results/memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from scoring import AS_OF, OPEN_SHARE, REPO, score_job, write_crm

from leadscore.pipeline.catalog import Catalog
from leadscore.pipeline.config import load_config
from leadscore.pipeline.jobs.train import train
from leadscore.pipeline.progress import Steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open-leads", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    args.out = args.out.resolve()  # the run works in a temporary folder
    runs = []
    with tempfile.TemporaryDirectory(prefix="leadscore-memory-") as tmp:
        work = Path(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
        os.chdir(work)  # MLflow puts a new store's artifacts in ./mlruns: here, not in the repo
        config = load_config(REPO / "configs" / "demo.yaml")
        write_crm(work / "history", 20_000, seed=0)
        with Catalog.open(config, work / "history", steps=Steps(quiet=True)) as catalog:
            train(catalog, AS_OF)
        for factor in (1, 4):
            data = work / f"crm_{factor}x"
            write_crm(data, int(factor * args.open_leads / OPEN_SHARE), seed=99)
            job = score_job(work, data, str(work / f"scores_{factor}x.db"))
            runs.append({"factor": factor, "open_leads_target": factor * args.open_leads, **job})
            for path in data.iterdir():  # the 4x export is several GB
                path.unlink()
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "runs": runs,
        "peak_ratio_4x_over_1x": round(runs[1]["peak_mb"] / runs[0]["peak_mb"], 2),
        "time_ratio_4x_over_1x": round(runs[1]["seconds"] / runs[0]["seconds"], 2),
        "target_peak_ratio": 1.5,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
