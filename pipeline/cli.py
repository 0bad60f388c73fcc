"""The `leadscore` command line."""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline.errors import EXIT_INPUT, InputError

DEFAULT_CONFIG = Path("configs/demo.yaml")
out = Console(highlight=False, soft_wrap=True)


def _fail_on_input_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            Console(stderr=True, highlight=False, soft_wrap=True).print(
                f"[red]error:[/red] {escape(str(exc))}"  # data values are not markup
            )
            sys.exit(EXIT_INPUT)

    return wrapper


def parse_moment(text: str, option: str = "--as-of") -> pd.Timestamp:
    """An ISO date or time, naive taken as UTC."""
    problem = f"{option} {text!r}: not a date or time (expected e.g. 2026-06-01)"
    try:
        moment = pd.Timestamp(text)
    except ValueError as exc:
        raise InputError(problem) from exc
    if moment is pd.NaT:
        raise InputError(problem)
    return moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")


def _load(config_path: Path | None, overrides: tuple[str, ...]) -> Any:
    from pipeline.config import load_config

    if config_path is None:
        if DEFAULT_CONFIG.is_file():
            config_path = DEFAULT_CONFIG
        else:
            Console(stderr=True, highlight=False, soft_wrap=True).print(
                f"[yellow]![/yellow] no --config and no {DEFAULT_CONFIG} here: using the built-in "
                "defaults, which exclude no columns beyond identifiers and PII"
            )
    return load_config(config_path, overrides)


def _data_dir(config: Any, data: Path | None) -> Path:
    return data if data is not None else Path(config.data.dir)


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help=f"YAML config. Default: {DEFAULT_CONFIG} if it exists, else built-in defaults.",
)
data_option = click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder with accounts, leads, activities and deals (.parquet or .csv). Default: data.dir.",
)
set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set model.learning_rate=0.05 (repeatable).",
)
as_of_option = click.option(
    "--as-of",
    "as_of",
    default=None,
    metavar="TIME",
    help="Behave as if now were TIME (ISO date or time, UTC if no zone). Default: now, or the "
    "day after the newest timestamp in the data when the export is older.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="leadscore")
def cli() -> None:
    """leadscore: predictive lead scoring you can inspect.

    Typical flow: `leadscore demo-data --out demo_data`, then `leadscore train`, then
    `leadscore score`. Exit codes: 0 ok, 1 unexpected failure, 2 bad input (config or data).
    """


@cli.command("demo-data")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to write into.")
@click.option(
    "--leads",
    "n_leads",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="Number of leads.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--end", default="2026-11-01", show_default=True, help="Last day of the history.")
@_fail_on_input_errors
def demo_data(out: Path, n_leads: int, seed: int, end: str) -> None:
    """Write a synthetic CRM history (about two years) as Parquet files.

    Writes accounts, leads, activities and deals, plus truth.parquet: each lead's hidden
    probability of being won, for evaluation only (the pipeline never reads it).
    """
    from pipeline.progress import Steps
    from pipeline.synthetic_crm import generate_crm

    steps = Steps()
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    with steps.step(f"Generating {n_leads:,} leads (seed {seed})"):
        crm = generate_crm(n_leads, seed, parse_moment(end))
    out.mkdir(parents=True, exist_ok=True)
    with steps.step(f"Writing Parquet files to {out}"), tempfile.TemporaryDirectory(dir=out) as tmp:
        for name, frame in crm.tables().items():  # all files written before any is replaced
            frame.to_parquet(Path(tmp) / f"{name}.parquet", index=False)
        for name in crm.tables():
            os.replace(Path(tmp) / f"{name}.parquet", out / f"{name}.parquet")
    out_sizes = ", ".join(f"{len(f):,} {n}" for n, f in crm.tables().items() if n != "truth")
    click.echo(f"Wrote {out_sizes} to {out}")


@cli.command()
@config_option
@data_option
@as_of_option
@set_option
@_fail_on_input_errors
def train(
    config_path: Path | None, data: Path | None, as_of: str | None, overrides: tuple[str, ...]
) -> None:
    """Train a calibrated model on point-in-time snapshots and register it in MLflow.

    Nothing stamped at or after --as-of is used: not a row, an outcome or a label.
    """
    from pipeline.progress import Steps
    from pipeline.train import train as run_training

    config = _load(config_path, overrides)
    moment = parse_moment(as_of) if as_of else None
    result = run_training(config, _data_dir(config, data), moment, Steps())
    holdout = (
        "unseen leads, newest cutoffs"
        if config.data.shape != "flat"
        else "STRATIFIED RANDOM holdout: no timestamps"
    )
    metrics = Table(title=f"Holdout metrics (as of {result.as_of:%Y-%m-%d}, {holdout})")
    for name in ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "lift_at_10", "positive_rate"):
        metrics.add_column(name, justify="right")
    metrics.add_row(
        *(
            f"{result.metrics[k]:.4f}"
            for k in (
                "roc_auc",
                "pr_auc",
                "brier",
                "log_loss",
                "ece",
                "lift_at_10",
                "positive_rate",
            )
        )
    )
    out.print(metrics)
    out.print(_grade_table(result.grades))
    top = ", ".join(result.importance.head(5).index)
    status = "now the champion" if result.made_champion else "champion unchanged"
    out.print(
        f"Model {config.mlflow.registered_model} version {result.version} ({status}); "
        "calibration: "
        f"{result.calibration}; top features: {top}\n"
        f"MLflow run {result.run_id}. Browse runs: mlflow ui --backend-store-uri "
        f"{_tracking_uri()}"
    )


@cli.command()
@config_option
@data_option
@as_of_option
@set_option
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON instead.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("leakage_audit.json"),
    show_default=True,
    help="Where to write the findings (column, check, evidence, verdict).",
)
@_fail_on_input_errors
def audit(
    config_path: Path | None,
    data: Path | None,
    as_of: str | None,
    overrides: tuple[str, ...],
    as_json: bool,
    out: Path,
) -> None:
    """Find columns that are probably only known after the outcome, with the evidence.

    Builds the same labelled examples as `train` and checks every untimed attribute: its
    single-feature AUC against the rest, whether being filled in or a value occurs in one class
    only, timestamps on or after the close, and values or names that spell outcomes. `train`
    runs the same audit and applies audit.policy (drop, warn or fail).
    """
    import json

    from pipeline.progress import Steps
    from pipeline.train import audit as run_audit
    from pipeline.train import prepare

    config = _load(config_path, overrides)
    moment = parse_moment(as_of) if as_of else None
    steps = Steps(quiet=as_json)
    tables, ts, _, _ = prepare(config, _data_dir(config, data), moment, steps, [])
    with steps.step("Auditing attributes for leakage"):
        result = run_audit(ts, tables, config)
    records = result.records()
    write_json_atomically(out, records)
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    table = Table(title=f"Leakage audit ({len(ts.attributes)} attributes, policy {result.policy})")
    for column in ("column", "check", "evidence", "verdict"):
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(record["column"], record["check"], record["evidence"], record["verdict"])
    if not records:
        table.add_row("-", "-", "no attribute looks like it was filled in after the outcome", "-")
    out_console = Console(highlight=False)
    out_console.print(table)
    top = result.aucs.dropna().head(8)
    out_console.print(
        "Single-feature AUC, for comparison: "
        + ", ".join(
            f"{c} {v:.3f}" + (" (attribute)" if c in ts.attributes else "") for c, v in top.items()
        )
    )
    out_console.print(f"Wrote {out}")


def write_json_atomically(path: Path, value: object) -> None:
    """Write JSON through a temporary file so a reader never sees half of it."""
    import json

    from pipeline.atomic_files import replaced_atomically

    with replaced_atomically(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2))


def _tracking_uri() -> str:
    from pipeline.registry import DEFAULT_TRACKING_URI

    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _grade_table(grades: pd.DataFrame) -> Table:
    table = Table(title="Holdout by grade")
    for column in ("grade", "leads", "won (actual)", "predicted", "share of wins"):
        table.add_column(column, justify="right")
    for grade, row in grades.iterrows():
        table.add_row(
            str(grade),
            f"{int(row['leads']):,}",
            f"{row['win_rate']:.1%}",
            f"{row['predicted']:.1%}",
            f"{row['share_of_wins']:.1%}",
        )
    return table


@cli.command()
@config_option
@data_option
@as_of_option
@click.option(
    "--model-version",
    default=None,
    metavar="N",
    help="Registered version to use. Default: the champion, or the newest version trained as of "
    "--as-of or earlier when the champion was trained later.",
)
@click.option(
    "--output",
    default=None,
    metavar="TARGET",
    help="SQLAlchemy URL, SQLite file, or .parquet/.csv path. Default: scoring.output.",
)
@click.option(
    "--changed-since",
    default=None,
    metavar="WHEN|last",
    help="Rescore only leads with activity, deals, new account leads or edits (updated_at) "
    "since WHEN, or since the newest as-of in the history table ('last'), plus open leads "
    "the current table lacks; keep the other rows. A new model version rescores all.",
)
@set_option
@_fail_on_input_errors
def score(
    config_path: Path | None,
    data: Path | None,
    as_of: str | None,
    model_version: str | None,
    output: str | None,
    changed_since: str | None,
    overrides: tuple[str, ...],
) -> None:
    """Score every lead open at --as-of with lead-scoring@champion and write the scores.

    One row per lead: lead_id, probability, score (1-99), grade, MQL flag, fit and engagement
    sub-scores, reasons, model_version, as_of, scored_at; each run also appends its rows to the
    history table. The write is atomic: on failure the previous scores stay as they were.
    """
    from pipeline.progress import Steps
    from pipeline.score import score as run_scoring

    config = _load(config_path, overrides)
    moment = parse_moment(as_of) if as_of else None
    result = run_scoring(
        config,
        _data_dir(config, data),
        moment,
        output or config.scoring.output,
        Steps(),
        model_version,
        None
        if changed_since is None
        else "last"
        if changed_since == "last"
        else parse_moment(changed_since, "--changed-since"),
    )
    counts = result.scores["grade"].value_counts()
    table = Table(
        title=f"Scores as of {result.as_of:%Y-%m-%d %H:%M} UTC (model version {result.version})"
    )
    for column in ("grade", "leads now", "share", "won in holdout"):
        table.add_column(column, justify="right")
    won = result.holdout_grades["win_rate"]
    for grade in sorted(counts.index):
        rate = f"{won[grade]:.1%}" if grade in won else "n/a"
        table.add_row(grade, f"{counts[grade]:,}", f"{counts[grade] / counts.sum():.1%}", rate)
    out.print(table)
    out.print(f"Wrote {len(result.scores):,} scores to {result.target}")


def main() -> None:
    # LightGBM's OpenMP threads spin while they wait. On a busy 2-core machine that turned a
    # 2-second training into 90 seconds; passive waiting costs nothing measurable when idle.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cli()


if __name__ == "__main__":
    main()
