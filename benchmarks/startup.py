"""Start-up: how long `leadscore score --help` takes, how long a real `leadscore score` run
takes to print its first step line and to finish on a small export (fixed costs: imports, the
model from the registry), and how long `leadscore train` takes to refuse an export with a
missing column, all from launch, as a user starts them.

Usage: python benchmarks/startup.py [--repeats 5] [--out benchmarks/results]

The run scores the demo data (generated here) with a model trained here; the first step line is
the first line the job writes to stderr. Each figure is the median of `--repeats` launches, next
to the median of `python -c pass` measured in the same run (the interpreter's own floor).
Writes benchmarks/results/startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AS_OF = "2026-11-01"


def _until_exit(command: list[str], cwd: Path, code: int = 0) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True)
    seconds = time.perf_counter() - start
    if result.returncode != code:
        said = result.stderr[-500:].decode(errors="replace")
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}: {said}")
    return seconds


def _without_outcomes(work: Path) -> Path:
    """The demo export with the deals' outcome column dropped: a run must refuse it."""
    import shutil

    import pandas as pd

    bad = work / "bad_data"
    shutil.copytree(work / "demo_data", bad)
    pd.read_parquet(bad / "deals.parquet").drop(columns="outcome").to_parquet(bad / "deals.parquet")
    return bad


def _until_first_line(command: list[str], cwd: Path) -> tuple[float, str]:
    """Seconds from launch to the first line on stderr (the job's first step), then waits for
    the job to end so runs do not overlap."""
    start = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert child.stderr is not None
    line = child.stderr.readline()
    seconds = time.perf_counter() - start
    child.stderr.read()
    if child.wait() != 0:
        raise RuntimeError(f"{' '.join(command)} failed")
    return seconds, line.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    exe = str(Path(sys.executable).with_name("leadscore"))
    with tempfile.TemporaryDirectory(prefix="leadscore-startup-") as tmp:
        work = Path(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
        config = ["--config", str(REPO / "configs" / "demo.yaml")]
        subprocess.run(
            [exe, "demo-data", "--out", "demo_data", "--leads", "12000", "--seed", "0"],
            cwd=work, check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            [exe, "train", *config, "--data", "demo_data", "--as-of", AS_OF],
            cwd=work, check=True, capture_output=True,
        )  # fmt: skip
        score = [exe, "score", *config, "--data", "demo_data", "--as-of", AS_OF,
                 "--output", str(work / "scores.db")]  # fmt: skip
        python = [_until_exit([sys.executable, "-c", "pass"], work) for _ in range(args.repeats)]
        helps = [_until_exit([exe, "score", "--help"], work) for _ in range(args.repeats)]
        firsts = [_until_first_line(score, work) for _ in range(args.repeats)]
        wholes = [_until_exit(score, work) for _ in range(args.repeats)]
        refuse = [exe, "train", *config, "--data", str(_without_outcomes(work)), "--as-of", AS_OF]
        refused = [_until_exit(refuse, work, code=2) for _ in range(args.repeats)]
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "repeats": args.repeats,
        "python_pass_s": round(statistics.median(python), 3),
        "score_help_s": round(statistics.median(helps), 3),
        "first_step_line_s": round(statistics.median(s for s, _ in firsts), 3),
        "first_step_line": firsts[0][1],
        "score_run_s": round(statistics.median(wholes), 3),
        "refused_train_s": round(statistics.median(refused), 3),
        "targets": {"score_help_s": 1.0, "first_step_line_s": 1.5},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "startup.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
