"""One table of every figure `make bench` measured, each against its target (issue 16), from
the JSON files the benchmarks wrote in this run.

Usage: python benchmarks/summary.py [--results benchmarks/results]

Writes benchmarks/results/summary.md and prints it. A figure whose benchmark did not run (its
file is missing) is listed as not measured, never guessed. Training at scale
(`make bench-scale`, about an hour) is listed when its file is there.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _load(folder: Path, name: str) -> dict | list | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _verdict(value: float | None, target: float, at_most: bool = True) -> str:
    if value is None:
        return "not measured"
    ok = value <= target if at_most else value >= target
    return "met" if ok else f"**missed** ({value / target:.2f}x the target)"


def rows(folder: Path) -> list[tuple[str, str, str, str]]:
    """(figure, measured, target, verdict) for each figure."""
    out: list[tuple[str, str, str, str]] = []
    scoring = _load(folder, "scoring")
    if scoring:
        big = max(scoring, key=lambda r: r["open_leads"])
        n = f"{big['open_leads']:,} open leads, {big['activities']:,} activities"
        out.append((
            f"`leadscore score` job (with reasons) / floor, {n}",
            f"{big['job']['seconds']:.1f} s / {big['floor_seconds']:.1f} s = "
            f"{big['ratio_job']:.2f}x",
            "at most 3x", _verdict(big["ratio_job"], 3.0),
        ))  # fmt: skip
        out.append((
            "end to end without reasons / floor (stages timed in one process; the job always "
            "explains)",
            f"{big['ratio_without_reasons']:.2f}x", "at most 1.5x",
            _verdict(big["ratio_without_reasons"], 1.5),
        ))  # fmt: skip
        out.append((
            "end to end with reasons / floor (stages timed in one process)",
            f"{big['ratio_with_reasons']:.2f}x", "(context)", "",
        ))  # fmt: skip
        if "features_speedup" in big:
            out.append((
                "feature building, before / now, same tables",
                f"{big['features_before']['seconds']:.1f} s / {big['features']['seconds']:.1f} s = "
                f"{big['features_speedup']:.2f}x faster; identical: {big['features_identical']}",
                "at least 4x, identical", _verdict(big["features_speedup"], 4.0, at_most=False)
                if big["features_identical"] else "**values differ**",
            ))  # fmt: skip
        for r in sorted(scoring, key=lambda r: r["open_leads"]):
            out.append((
                f"`leadscore score` job, {r['open_leads']:,} open leads: time, peak memory",
                f"{r['job']['seconds']:.1f} s = {r['ratio_job']:.2f}x floor, "
                f"{r['job']['peak_mb']:,} MB{_tree(r['job'], 'tree_peak_mb')}",
                "(context)", "",
            ))  # fmt: skip
    startup = _load(folder, "startup")
    if startup:
        out.append((
            "`leadscore score --help`", f"{startup['score_help_s']:.2f} s "
            f"(`python -c pass`: {startup['python_pass_s']:.2f} s)", "under 1 s",
            _verdict(startup["score_help_s"], 1.0),
        ))  # fmt: skip
        out.append((
            "`leadscore score`: first step line after launch",
            f"{startup['first_step_line_s']:.2f} s", "under 1.5 s",
            _verdict(startup["first_step_line_s"], 1.5),
        ))  # fmt: skip
        if "score_run_s" in startup:
            out.append((
                "`leadscore score`, whole run on the 12,000-lead demo (9,691 open leads)",
                f"{startup['score_run_s']:.2f} s", "(context: fixed costs)", "",
            ))  # fmt: skip
            out.append((
                "`leadscore train` refusing an export without the deals' outcome column",
                f"{startup['refused_train_s']:.2f} s", "(context)", "",
            ))  # fmt: skip
    training = _load(folder, "training")
    if training:
        out.append((
            f"`leadscore train` / textbook training job, {training['leads']:,} leads (whole "
            "processes)",
            f"{training['leadscore_train_s']:.1f} s / {training['textbook_train_s']:.1f} s = "
            f"{training['ratio']:.2f}x; peaks {training['leadscore_peak_mb']:,.0f} / "
            f"{training['textbook_peak_mb']:,.0f} MB{_tree(training, 'leadscore_tree_peak_mb')}",
            "at most 1.5x", _verdict(training["ratio"], 1.5),
        ))  # fmt: skip
        if "mlflow_logging_s" in training:
            out.append((
                f"MLflow logging and registering, {training['leads']:,}-lead model",
                f"{training['mlflow_logging_s']:.1f} s", "under 3 s (demo model)",
                _verdict(training["mlflow_logging_s"], 3.0),
            ))  # fmt: skip
    memory = _load(folder, "memory")
    if memory:
        one, four = memory["runs"]
        out.append((
            f"`leadscore score` peak memory, {four['open_leads_target']:,} / "
            f"{one['open_leads_target']:,} open leads",
            f"{four['peak_mb']:,} / {one['peak_mb']:,} MB = {memory['peak_ratio_4x_over_1x']:.2f}x "
            f"(time {memory['time_ratio_4x_over_1x']:.2f}x; with its workers at once: "
            f"{_tree_ratio(four, one)})",
            "at most 1.5x", _verdict(_worse_memory_ratio(memory), 1.5),
        ))  # fmt: skip
    runs = _load(folder, "runs")
    if runs:
        out.append((
            f"`leadscore runs`, {runs['runs']} runs",
            f"{runs['leadscore_runs_s']:.2f} s (`import mlflow` alone: "
            f"{runs['python_import_mlflow_s']:.2f} s)",
            "under 2 s", _verdict(runs["leadscore_runs_s"], 2.0),
        ))  # fmt: skip
    serving = _load(folder, "serving")
    if serving:
        out.append(("serving (MLflow pyfunc over HTTP)", _serving(serving), "(context)", ""))
    scale = _load(folder, "scale")
    if scale:
        for r in scale["runs"]:
            out.append((
                f"`leadscore train` at scale, {scale['leads']:,} leads, {scale['activities']:,} "
                f"activities, {r['engine']}",
                f"{r['seconds'] / 60:.1f} min, peak {r['peak_mb']:,.0f} MB"
                f"{_tree(r, 'tree_peak_mb')}, training table {r.get('training_rows', 0):,} rows "
                f"x {r.get('features', 0)} features ({r.get('training_table_mb', 0):,} MB)",
                "measured", "",
            ))  # fmt: skip
    else:
        out.append(("`leadscore train` at scale (`make bench-scale`)", "not measured in this run",
                    "measured", "not measured"))  # fmt: skip
    return out


def _worse_memory_ratio(memory: dict) -> float:
    """The verdict's ratio: the larger of the largest process's and the process tree's (the
    job forks chunk workers, so either alone can flatter it)."""
    one, four = memory["runs"]
    tree = _tree_peak_ratio(four, one)
    return round(max(memory["peak_ratio_4x_over_1x"], tree or 0.0), 2)


def _tree_peak_ratio(four: dict, one: dict) -> float | None:
    """The process tree's peak at 4x over its peak at 1x, where measured."""
    if "tree_peak_mb" not in four or "tree_peak_mb" not in one:
        return None
    return four["tree_peak_mb"] / one["tree_peak_mb"]


def _tree_ratio(four: dict, one: dict) -> str:
    """The process tree's peaks at 4x and 1x, where measured."""
    ratio = _tree_peak_ratio(four, one)
    if ratio is None:
        return "not measured"
    return f"{four['tree_peak_mb']:,} / {one['tree_peak_mb']:,} MB = {ratio:.2f}x"


def _tree(record: dict, key: str) -> str:
    """The peak of the process and its children at once, where measured."""
    return f" (with its children at once: {record[key]:,.0f} MB)" if key in record else ""


def _serving(serving: dict) -> str:
    return (
        f"one lead {serving['one_lead_served_s'] * 1000:.0f} ms served vs "
        f"{serving['one_lead_in_process_s'] * 1000:.0f} ms in process; {serving['batch']:,} leads "
        f"{serving['batch_served_leads_per_s']:,.0f} leads/s served vs "
        f"{serving['batch_in_process_leads_per_s']:,.0f} in process"
    )


def table(found: list[tuple[str, str, str, str]]) -> str:
    lines = ["| figure | measured | target | verdict |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in found]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    text = f"Measured {time.strftime('%Y-%m-%d')} (2 cores, shared machine):\n\n"
    text += table(rows(args.results)) + "\n"
    (args.results / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
