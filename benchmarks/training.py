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
import threading
import time
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]


class Run(NamedTuple):
    seconds: float
    peak_mb: float  # the largest single process's peak RSS (wait4's rusage)
    log: str  # what it wrote to stderr
    tree_peak_mb: float  # the peak of the process and its children at once (sampled PSS)


def _run(command: list[str], cwd: Path) -> Run:
    """Run `command` to its end: wall seconds, peak memory, and what it wrote to stderr (to a
    file: a pipe nobody reads can fill and stall the child).

    wait4's peak is the largest single process's (the command or one of its children), not
    their sum; leadscore forks children that work beside it (`pipeline/io/work_aside.py`) and
    Spark starts a JVM, so the sum of the process tree's proportional set sizes (PSS: pages a
    fork shares are counted once) is also sampled, every 0.2 s."""
    with tempfile.TemporaryFile(mode="w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        sampler = TreeSampler(child.pid)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        sampler.stop.set()
        sampler.join()
        err.seek(0)
        text = err.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{command[0]} failed: {text[-2000:]}")
    return Run(seconds, usage.ru_maxrss / 1024, text, sampler.peak_kb / 1024)


class TreeSampler(threading.Thread):
    """The peak of a process tree's summed PSS, sampled until `stop` is set."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self.stop = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.peak_kb = max(self.peak_kb, _tree_pss_kb(self.pid))


def _tree_pss_kb(pid: int) -> int:
    total, pending = 0, [pid]
    while pending:
        process = pending.pop()
        try:
            for line in Path(f"/proc/{process}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{process}/task").iterdir():
                pending += map(int, (task / "children").read_text().split())
        except (OSError, ValueError):  # it just ended (or /proc is not what was expected)
            continue
    return total


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
    steps = step_seconds(ours.log)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "leads": args.leads,
        "leadscore_train_s": ours.seconds,
        "textbook_train_s": textbook.seconds,
        "ratio": ours.seconds / textbook.seconds,
        "leadscore_peak_mb": ours.peak_mb,
        "textbook_peak_mb": textbook.peak_mb,
        "leadscore_tree_peak_mb": ours.tree_peak_mb,
        "textbook_tree_peak_mb": textbook.tree_peak_mb,
        "leadscore_steps_s": steps,
        "mlflow_logging_s": sum(v for k, v in steps.items() if "MLflow" in k),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "training.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
