"""`leadscore train` against the textbook training job (`benchmarks/textbook_train.py`): both
whole processes, on the same synthetic export, in one run.

Usage: python benchmarks/training.py [--leads 60000] [--as-of 2026-11-01]

Reports wall time and peak memory (max RSS, from `/usr/bin/time`-like rusage of each child) and
the ratio. Writes benchmarks/results/training.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(command: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, the process's own peak RSS in MB (its rusage, from wait4), and what it
    wrote to stderr (to a file: a pipe nobody reads can fill and stall the child)."""
    with tempfile.TemporaryFile(mode="w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        err.seek(0)
        text = err.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command[0]} failed: {text[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, text


def step_seconds(log: str) -> dict[str, float]:
    """Each finished step's own time, from its line: `✓ <title> (<seconds>s)`."""
    found: dict[str, float] = {}
    for title, seconds in re.findall(r"✓ (.+?) \((\d+(?:\.\d+)?)s\)", log):
        found[title] = found.get(title, 0.0) + float(seconds)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=60_000)
    parser.add_argument("--as-of", default="2026-11-01")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="leadscore-train-bench-") as tmp:
        work = Path(tmp)
        (work / "configs").mkdir()
        shutil.copy(REPO / "configs" / "demo.yaml", work / "configs" / "demo.yaml")
        subprocess.run(
            [str(bin_dir / "leadscore"), "demo-data", "--out", "demo_data", "--leads",
             str(args.leads), "--seed", "0"],
            cwd=work, check=True, capture_output=True,
        )  # fmt: skip
        textbook = _run(
            [sys.executable, str(REPO / "benchmarks" / "textbook_train.py"), "demo_data",
             args.as_of],
            work,
        )  # fmt: skip
        ours = _run([str(bin_dir / "leadscore"), "train", "--as-of", args.as_of], work)
    steps = step_seconds(ours[2])
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "leads": args.leads,
        "leadscore_train_s": ours[0],
        "textbook_train_s": textbook[0],
        "ratio": ours[0] / textbook[0],
        "leadscore_peak_mb": ours[1],
        "textbook_peak_mb": textbook[1],
        "leadscore_steps_s": steps,
        "mlflow_logging_s": sum(v for k, v in steps.items() if "MLflow" in k),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "training.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
