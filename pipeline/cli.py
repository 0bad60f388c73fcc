"""The `leadscore` command line."""

from __future__ import annotations

import atexit
import functools
import logging
import os
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pandas as pd
from rich.markup import escape
from rich.table import Table

from leadscore.pipeline.errors import (
    EXIT_BUSY,
    EXIT_FAILURE,
    EXIT_INPUT,
    InputError,
    JobBusy,
    JobFailure,
)
from leadscore.pipeline.io.atomic_files import write_text_atomically
from leadscore.pipeline.io.tracking_uri import tracking_uri
from leadscore.pipeline.progress import SafeConsole
from leadscore.pipeline.redaction import redact_text

DEFAULT_CONFIG = Path("configs/demo.yaml")
out = SafeConsole(highlight=False, soft_wrap=True)


def _error(text: str) -> None:
    SafeConsole(stderr=True, highlight=False, soft_wrap=True).print(
        f"[red]error:[/red] {escape(redact_text(text))}"  # data values are not markup
    )


def _fail_on_input_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Exit codes decided in one place: 2 bad input, 5 busy, 1 failure (with the traceback of
    an unexpected one, secrets hidden)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except InputError as exc:
            _error(str(exc))
            sys.exit(EXIT_INPUT)
        except JobBusy as exc:  # another job holds the target or the registry
            _error(str(exc))
            sys.exit(EXIT_BUSY)
        except JobFailure as exc:  # a full disk: not bad input
            _error(str(exc))
            sys.exit(EXIT_FAILURE)
        except (click.exceptions.Exit, click.ClickException):
            raise
        except Exception:  # a bug: say so, with the traceback (click would say "Aborted!")
            sys.stderr.write(redact_text(traceback.format_exc()))
            _error(
                "unexpected failure (a bug: please report it with the traceback above); "
                "nothing was half-written"
            )
            sys.exit(EXIT_FAILURE)

    return wrapper


def parse_time(text: str, option: str = "--as-of") -> pd.Timestamp:
    """An ISO date or time, naive taken as UTC."""
    problem = f"{option} {text!r}: not a date or time (expected e.g. 2026-06-01)"
    try:
        as_of = pd.Timestamp(text)
    except ValueError as exc:
        raise InputError(problem) from exc
    if as_of is pd.NaT:
        raise InputError(problem)
    return as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")


def _load(config_path: Path | None, overrides: tuple[str, ...]) -> Any:
    from leadscore.pipeline.config import load_config

    if config_path is None:
        if DEFAULT_CONFIG.is_file():
            config_path = DEFAULT_CONFIG
        else:
            SafeConsole(stderr=True, highlight=False, soft_wrap=True).print(
                f"[yellow]![/yellow] no --config and no {DEFAULT_CONFIG} here: using the built-in "
                "defaults, which exclude no columns beyond identifiers and PII"
            )
    return load_config(config_path, overrides)


def _as_of(text: str | None) -> pd.Timestamp | None:
    return parse_time(text) if text else None


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help=f"YAML config. Default: {DEFAULT_CONFIG} if it exists, else built-in defaults.",
)
engine_option = click.option(
    "--engine",
    type=click.Choice(["pandas", "spark"]),
    default="pandas",
    show_default=True,
    help="spark: build features (and score) on Spark with the same code; needs the spark "
    "extra. Master: spark.master in the config, spark-submit's, $SPARK_MASTER, else local[*].",
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
    `leadscore score`; on a schedule `retrain` and `monitor` (docs/scheduling.md). Exit codes:
    0 ok, 1 unexpected failure, 2 bad input (config or data), 3 `retrain --require-promotion`
    kept the champion, 4 `monitor` alert, 5 another job held the target or the registry too
    long (nothing written; retry later).
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
@click.option(
    "--drift-days",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Plant a population shift in the leads created in the last N days (for monitor).",
)
@click.option(
    "--leaks",
    is_flag=True,
    help="Plant every kind of leak real exports hide (a group of sales-stage durations, a "
    "call's duration, columns filled only for won leads) beside honest strong columns, for "
    "the leakage audit.",
)
@_fail_on_input_errors
def demo_data(out: Path, n_leads: int, seed: int, end: str, drift_days: int, leaks: bool) -> None:
    """Write a synthetic CRM history (about two years) as Parquet files.

    Writes accounts, leads, activities and deals, plus truth.parquet: each lead's hidden
    probability of being won, for evaluation only (the pipeline never reads it).
    """
    from leadscore.pipeline.progress import Steps
    from leadscore.pipeline.synthetic_crm import generate_crm

    steps = Steps()
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    with steps.step(f"Generating {n_leads:,} leads (seed {seed})"):
        crm = generate_crm(n_leads, seed, parse_time(end), drift_days, leaks)
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
@click.option(
    "--report",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write the HTML model report here (it is always logged with the MLflow run).",
)
@engine_option
@_fail_on_input_errors
def train(
    config_path: Path | None,
    data: Path | None,
    as_of: str | None,
    overrides: tuple[str, ...],
    report: Path | None,
    engine: str,
) -> None:
    """Train a calibrated model on point-in-time snapshots and register it in MLflow.

    Nothing stamped at or after --as-of is used: not a row, an outcome or a label. The run
    logs holdout metrics with 95% bootstrap intervals, a grade table, metrics per segment,
    plots and a one-file HTML report.
    """
    from leadscore.pipeline.catalog import Catalog
    from leadscore.pipeline.jobs.train import train as run_training

    config = _load(config_path, overrides)
    with Catalog.open(config, data, engine) as catalog:  # the store opens once the data is good
        result = run_training(catalog, _as_of(as_of))
    from leadscore.models.evaluation import METRICS

    evaluation = result.evaluation
    if report is not None:
        write_text_atomically(report, redact_text(result.report_html))
    metrics = Table(title=f"Holdout metrics (as of {result.as_of:%Y-%m-%d}, {result.holdout_kind})")
    for column in ("metric", "holdout", "95% interval"):
        metrics.add_column(column, justify="right" if column != "metric" else "left")
    for name in METRICS:
        low, high = evaluation.intervals[name]
        metrics.add_row(name, f"{evaluation.metrics[name]:.4f}", f"{low:.4f} to {high:.4f}")
    metrics.add_row("positive_rate", f"{evaluation.metrics['positive_rate']:.4f}", "")
    out.print(metrics)
    out.print(_grade_table(evaluation.grades))
    top = ", ".join(result.importance.head(5).index)
    status = "now the champion" if result.made_champion else "champion unchanged"
    out.print(
        f"Model {config.mlflow.registered_model} version {result.version} ({status}); "
        "calibration: "
        f"{result.calibration}; top features: {top}\n"
        f"MLflow run {result.run_name} ({result.run_id}); its report.html and plots are "
        f"artifacts{f', report also in {report}' if report else ''}. Browse runs: mlflow ui "
        f"--backend-store-uri {tracking_uri()}, then open "
        f"http://127.0.0.1:5000/#/experiments/{result.experiment_id}/runs"
        "?workflowType=machine_learning (MLflow 3 opens on its GenAI view otherwise)"
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

    Builds the same examples as `train` and judges every untimed attribute once per unit
    (lead), on its final outcome: its AUC alone, whether being filled in or a value marks one
    outcome beyond chance, names that spell outcomes or later states or measures of the sales
    process, groups of lifecycle columns measured together, timestamps on or after the close.
    Each drop comes with its price (the AUC with and without it). `train` runs the same audit
    and applies audit.policy (drop, warn or fail).
    """
    import json

    from leadscore.pipeline.catalog import Catalog
    from leadscore.pipeline.jobs.audit import audit as run_audit
    from leadscore.pipeline.progress import Steps

    config = _load(config_path, overrides)
    with Catalog.open(config, data, steps=Steps(quiet=as_json)) as catalog:
        report = run_audit(catalog, _as_of(as_of))
    result = report.result
    records = result.records()
    document = {
        "units": result.units,
        "policy": result.policy,
        "findings": records,
        "columns": result.evidence(),
    }
    write_json_atomically(out, document)
    if as_json:
        click.echo(json.dumps(document, indent=2, default=str))
        return
    title = (
        f"Leakage audit ({len(report.attributes)} attributes of {result.units:,} units, "
        f"policy {result.policy})"
    )
    table = Table(title=title)
    for column in ("column", "check", "evidence", "verdict", "price of dropping"):
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(
            record["column"], record["check"], record["evidence"], record["verdict"],
            record["price"],
        )  # fmt: skip
    if not records:
        table.add_row(
            "-", "-", "no attribute looks like it was filled in after the outcome", "-", ""
        )
    out_console = SafeConsole(highlight=False)
    out_console.print(table)
    top = result.aucs.dropna().head(8)
    out_console.print(
        "AUC alone, per unit, for comparison: "
        + ", ".join(
            f"{c} {v:.3f}" + (" (attribute)" if c in report.attributes else "")
            for c, v in top.items()
        )
    )
    out_console.print(f"Every column's evidence is in {out}")


@cli.command()
@config_option
@data_option
@as_of_option
@set_option
@click.option("--trials", type=click.IntRange(min=1), default=20, show_default=True)
@click.option(
    "--timeout", "timeout_s", type=click.FloatRange(min=1), default=None,
    help="Stop starting trials after this many seconds.",
)  # fmt: skip
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Config to write with the best settings. Default: <config>.tuned.yaml beside the "
    "config (configs/tuned.yaml without one).",
)
@_fail_on_input_errors
def tune(
    config_path: Path | None,
    data: Path | None,
    as_of: str | None,
    overrides: tuple[str, ...],
    trials: int,
    timeout_s: float | None,
    out: Path | None,
) -> None:
    """Search LightGBM settings on the time-forward slices; write the best into a config.

    Optuna's TPE sampler proposes settings; each trial trains on the train slice with early
    stopping on the valid slice and is scored by ROC AUC on the calibration slice (the holdout
    stays untouched). Trial 0 is the config's own settings. Every trial is a nested MLflow run.
    Then: `leadscore train --config <written file>` (or `retrain`).
    """
    from leadscore.pipeline.catalog import Catalog
    from leadscore.pipeline.jobs.tune import tune as run_tune

    config = _load(config_path, overrides)
    source = config_path or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    if out is None:
        out = (
            source.with_name(f"{source.stem}.tuned.yaml")
            if source is not None
            else Path("configs/tuned.yaml")
        )
    with Catalog.open(config, data) as catalog:
        result = run_tune(catalog, _as_of(as_of), trials, out, timeout_s)
    table = Table(title="Best trials (ROC AUC on the calibration slice)")
    for column in ("trial", "AUC", *result.best_params, "trees"):
        table.add_column(column, justify="right")
    for row in result.trials.head(5).to_dict("records"):
        table.add_row(
            str(row["trial"]), f"{row['auc']:.4f}",
            *(f"{row[k]:.4g}" for k in result.best_params), str(row["best_iteration"]),
        )  # fmt: skip
    out_console = SafeConsole(highlight=False, width=160)
    out_console.print(table)
    change = result.best_auc - result.baseline_auc
    print_line = (
        f"Best AUC {result.best_auc:.4f} vs the config's own {result.baseline_auc:.4f} "
        f"({change:+.4f}). Wrote {result.written}: leadscore train --config {result.written}"
    )
    out_console.print(print_line)


@cli.command()
@config_option
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON instead.")
@_fail_on_input_errors
def runs(config_path: Path | None, limit: int, as_json: bool) -> None:
    """Compare recent train and retrain runs: holdout metrics with 95% intervals, the champion
    marked with *, the gate's verdict for retrains."""
    import json

    from leadscore.pipeline.io.run_comparison import SHOWN, recent_runs

    config = _load(config_path, ())
    frame = recent_runs(
        tracking_uri(), config.mlflow.experiment, config.mlflow.registered_model, limit
    )
    if as_json:
        click.echo(json.dumps(frame.astype({"started": str}).to_dict("records"), default=str))
        return
    table = Table(title=f"Recent runs of {config.mlflow.experiment} (* = champion)")
    for column in ("run", "version", "gate", *SHOWN, "holdout n", "config", "data"):
        table.add_column(
            column, justify="left" if column in ("run", "gate") else "right", no_wrap=True
        )
    for row in frame.to_dict("records"):
        cells = [
            f"{row[name]:.3f} [{row[f'{name}_ci'][0]:.3f}, {row[f'{name}_ci'][1]:.3f}]"
            for name in SHOWN
        ]
        version = f"{row['version']}{' *' if row['champion'] else ''}"
        table.add_row(
            str(row["run"]), version, str(row["gate"]), *cells,
            f"{row['n_holdout']:,}", str(row["config"]), str(row["data"]),
        )  # fmt: skip
    if frame.empty:
        table.add_row("no train or retrain runs yet", *[""] * (len(table.columns) - 1))
    wide = SafeConsole(highlight=False, width=max(out.width, 240))  # a pipe would fold it at 80
    wide.print(table)


@cli.command()
@config_option
@data_option
@as_of_option
@set_option
@click.option(
    "--require-promotion",
    is_flag=True,
    help="Exit 3 when the champion is kept (for pipelines that need a new model).",
)
@_fail_on_input_errors
def retrain(
    config_path: Path | None,
    data: Path | None,
    as_of: str | None,
    overrides: tuple[str, ...],
    require_promotion: bool,
) -> None:
    """Train a challenger and promote it only if it passes the gate against the champion.

    Both are evaluated on the challenger's holdout (the newest cutoffs); the gate (config
    section gate) checks the AUC against the champion's within a tolerance, the calibration
    error, the holdout's size and the leakage audit. The decision and every reason are
    recorded on the MLflow run and the model version. Exit 0 whether it promoted or kept the
    champion; 3 with --require-promotion when it kept it; 2 bad input; 1 failure.
    """
    from leadscore.pipeline.catalog import Catalog
    from leadscore.pipeline.errors import EXIT_NOT_PROMOTED
    from leadscore.pipeline.jobs.retrain import retrain as run_retrain

    config = _load(config_path, overrides)
    with Catalog.open(config, data) as catalog:
        result = run_retrain(catalog, _as_of(as_of))
    name = config.mlflow.registered_model
    table = Table(title="Champion/challenger on the same holdout")
    for column in ("metric", f"challenger (v{result.challenger.version})", "champion"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for metric in ("roc_auc", "pr_auc", "ece", "lift_at_10", "capture_at_20", "n"):
        theirs = result.champion.metrics[metric] if result.champion is not None else None
        table.add_row(
            metric,
            f"{result.challenger.evaluation.metrics[metric]:.4f}",
            "-" if theirs is None else f"{theirs:.4f}",
        )
    out.print(table)
    for reason in result.decision.reasons:
        out.print(f"  {escape(reason)}")
    if result.decision.promote:
        out.print(f"Promoted: {name} version {result.challenger.version} is now the champion.")
    else:
        kept = result.champion_version or "none"
        out.print(f"Kept the champion (version {kept}); version {result.challenger.version} is "
                  "registered but not promoted.")  # fmt: skip
    if require_promotion and not result.decision.promote:
        sys.exit(EXIT_NOT_PROMOTED)


@cli.command()
@config_option
@click.option("--version", "version", required=True, help="The registered version to promote.")
@click.option("--reason", default="promoted by hand", show_default=True)
@_fail_on_input_errors
def promote(config_path: Path | None, version: str, reason: str) -> None:
    """Make a registered version the champion (recorded in the champion history)."""
    from leadscore.pipeline.io.registry import promote_by_hand
    from leadscore.pipeline.io.tracking import configure_tracking

    config = _load(config_path, ())
    configure_tracking()
    name = config.mlflow.registered_model
    before, version = promote_by_hand(name, version, reason)
    out.print(f"{name}: champion moved from version {before or 'none'} to {version}.")


@cli.command()
@config_option
@_fail_on_input_errors
def rollback(config_path: Path | None) -> None:
    """Move the champion back to the version that was champion before the current one."""
    from leadscore.pipeline.io.registry import roll_back
    from leadscore.pipeline.io.tracking import configure_tracking

    config = _load(config_path, ())
    configure_tracking()
    name = config.mlflow.registered_model
    current, target = roll_back(name)
    out.print(f"{name}: champion rolled back from version {current} to {target}.")


def write_json_atomically(path: Path, value: object) -> None:
    """Write JSON through a temporary file so a reader never sees half of it."""
    import json

    write_text_atomically(path, redact_text(json.dumps(value, indent=2, default=str)))


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


model_version_option = click.option(
    "--model-version",
    default=None,
    metavar="N",
    help="Registered version to use. Default: the champion, or the newest version trained as of "
    "--as-of or earlier when the champion was trained later.",
)
output_option = click.option(
    "--output",
    default=None,
    metavar="TARGET",
    help="SQLAlchemy URL, SQLite file, or .parquet/.csv path. Default: scoring.output.",
)


@cli.command()
@config_option
@data_option
@as_of_option
@model_version_option
@output_option
@set_option
@click.option(
    "--report",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("monitor_report.json"),
    show_default=True,
    help="Where to write the report (JSON); it is also logged to MLflow.",
)
@_fail_on_input_errors
def monitor(
    config_path: Path | None,
    data: Path | None,
    as_of: str | None,
    model_version: str | None,
    output: str | None,
    overrides: tuple[str, ...],
    report: Path,
) -> None:
    """Check drift and past scores; exit 4 when something needs a person.

    Drift: the population stability index (PSI) of the score and of every feature, for a
    sample of the leads open at --as-of against the training population. Backtest: each
    batch in the score history whose conversion window has passed, against the outcomes
    recorded since (realized AUC, and win rate per grade against the prediction). Alerts
    (config section monitor): PSI of the score or of a feature the model uses at or above
    psi_alert, or a realized AUC below backtest_min_auc. Exit 0 no alert, 4 alert, 2 bad
    input, 1 failure.
    """
    from leadscore.pipeline.catalog import Catalog
    from leadscore.pipeline.errors import EXIT_ALERT
    from leadscore.pipeline.jobs.monitor import monitor as run_monitor

    config = _load(config_path, overrides)
    with Catalog.open(config, data, output=output) as catalog:
        result = run_monitor(catalog, _as_of(as_of), model_version)
    write_json_atomically(report, result.as_dict())
    drift = Table(title=f"Drift: {result.sampled:,} open leads vs the training population")
    for column in ("feature", "PSI", "share of gain"):
        drift.add_column(column, justify="left" if column == "feature" else "right")
    for row in result.drift.head(10).itertuples():
        drift.add_row(row.feature, f"{row.psi:.3f}", f"{row.gain:.1%}")
    out.print(drift)
    if len(result.backtest):
        back = Table(title="Backtest: past scores against what happened since")
        for column in ("as of", "leads", "wins", "realized AUC", "predicted", "actual"):
            back.add_column(column, justify="right")
        for row in result.backtest.itertuples():
            back.add_row(
                f"{row.as_of:%Y-%m-%d}", f"{row.leads:,}", f"{row.wins:,}",
                f"{row.realized_auc:.3f}", f"{row.predicted:.1%}", f"{row.actual:.1%}",
            )  # fmt: skip
        out.print(back)
    for text in result.warnings:
        out.print(f"[yellow]![/yellow] {escape(text)}")
    for text in result.alerts:
        out.print(f"[red]ALERT[/red] {escape(text)}")
    out.print(f"Wrote {report}. {'ALERT' if result.alerts else 'No alert'}.")
    if result.alerts:
        sys.exit(EXIT_ALERT)


@cli.command()
@config_option
@data_option
@as_of_option
@model_version_option
@output_option
@click.option(
    "--changed-since",
    default=None,
    metavar="WHEN|last",
    help="Rescore only leads with activity, deals, new account leads or edits (updated_at) "
    "since WHEN, or since the newest as-of in the history table ('last'), plus open leads "
    "the current table lacks; keep the other rows. A new model version rescores all.",
)
@set_option
@engine_option
@_fail_on_input_errors
def score(
    config_path: Path | None,
    data: Path | None,
    as_of: str | None,
    model_version: str | None,
    output: str | None,
    changed_since: str | None,
    overrides: tuple[str, ...],
    engine: str,
) -> None:
    """Score every lead open at --as-of with lead-scoring@champion and write the scores.

    One row per lead: lead_id, probability, score (1-99), grade, MQL flag, fit and engagement
    sub-scores, reasons, model_version, as_of, scored_at; each run also appends its rows to the
    history table. The write is atomic: on failure the previous scores stay as they were.
    """
    from leadscore.pipeline.catalog import Catalog
    from leadscore.pipeline.jobs.score import score as run_scoring

    config = _load(config_path, overrides)
    since = None
    if changed_since is not None:
        since = "last" if changed_since == "last" else parse_time(changed_since, "--changed-since")
    with Catalog.open(config, data, engine, output) as catalog:
        result = run_scoring(catalog, _as_of(as_of), model_version, since)
    scores = result.scores
    table = Table(
        title=f"Scores as of {result.as_of:%Y-%m-%d %H:%M} UTC (model version {result.version})"
    )
    for column in ("stage", "grade", "leads now", "share of stage", "MQLs", "won in holdout"):
        table.add_column(column, justify="right")
    won = result.holdout_grades["win_rate"]
    for (stage, grade), group in scores.groupby(["stage", "grade"], sort=True):
        in_stage = int((scores["stage"] == stage).sum())
        rate = f"{won[grade]:.1%}" if stage == "marketing" and grade in won else "n/a"
        table.add_row(
            str(stage), str(grade), f"{len(group):,}", f"{len(group) / in_stage:.1%}",
            f"{int(group['mql'].sum()):,}", rate,
        )  # fmt: skip
    out.print(table)
    out.print(f"Wrote {len(result.scores):,} scores to {result.target}")


@cli.command()
@config_option
@data_option
@as_of_option
@output_option
@set_option
@click.option(
    "--report",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("agreement_report.html"),
    show_default=True,
    help="Where to write the marketing report (one HTML file).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write the figures as JSON here.",
)
@_fail_on_input_errors
def agreement(
    config_path: Path | None,
    data: Path | None,
    as_of: str | None,
    output: str | None,
    overrides: tuple[str, ...],
    report: Path,
    json_path: Path | None,
) -> None:
    """The hand-off sales and marketing sign, and what became of it.

    The agreement (config section agreement: the MQL definition, the weekly capacity, the
    follow-up SLA) measured on the champion's time-forward holdout for a range of definitions
    and capacities: MQLs a week, expected and realized win rate and wins, the share of wins
    captured and the wins left with marketing. Then the closed loop over the scores written
    to --output: what happened to each hand-off (accepted within the SLA, won, lost, open)
    per grade and week, and hand-offs against the leads kept. Then what precedes wins. All in
    one HTML report for marketing.
    """
    import yaml

    from leadscore.pipeline.catalog import Catalog
    from leadscore.pipeline.config import config_as_dict
    from leadscore.pipeline.jobs.agreement import agreement as run_agreement
    from leadscore.pipeline.reports.marketing_report import agreement_frame, render_marketing_report

    config = _load(config_path, overrides)
    with Catalog.open(config, data, output=output) as catalog:
        result = run_agreement(catalog, _as_of(as_of))
    config_yaml = yaml.safe_dump(config_as_dict(config), sort_keys=False)
    write_text_atomically(report, redact_text(render_marketing_report(result, config_yaml)))
    if result.table is not None:
        shown = agreement_frame(result.table).drop(
            columns=["Expected wins a week (95% range)", "Wins left with marketing a week"]
        )
        table = Table(title=f"Agreement {result.name!r} on the holdout (model {result.version})")
        for column in shown.columns:
            table.add_column(column, justify="left" if column == "Policy" else "right")
        for row in shown.itertuples(index=False):
            table.add_row(*(escape(str(v)) for v in row))
        out.print(table)
    if result.versus is not None:
        v = result.versus
        out.print(
            "Closed loop: handed over won "
            f"{v['win_rate'].iloc[0]:.1%} ({int(v['n'].iloc[0]):,} leads), kept "
            f"{v['win_rate'].iloc[1]:.1%} ({int(v['n'].iloc[1]):,} leads)"
        )
    for note in result.notes:
        out.print(f"[yellow]![/yellow] {escape(note)}")
    if json_path is not None:
        write_json_atomically(json_path, _agreement_json(result))
    out.print(f"Wrote {report}")


def _agreement_json(result: Any) -> dict[str, Any]:
    def frame(f: pd.DataFrame | None) -> list[dict[str, Any]] | None:
        if f is None:
            return None
        flat = f.reset_index()
        return flat.astype(object).where(flat.notna(), None).to_dict("records")

    return {
        "agreement": result.name,
        "model_version": result.version,
        "as_of": result.as_of.isoformat(),
        "terms": result.terms,
        "table": frame(result.table),
        "by_grade": frame(result.by_grade),
        "by_week": frame(result.by_week),
        "versus": frame(result.versus),
        "what_closes": frame(result.learnings),
        "notes": result.notes,
    }


def main() -> None:
    """The `leadscore` command: the CLI, then a quick exit."""
    environment_defaults()
    try:
        cli()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    leave(code)


def environment_defaults() -> None:
    """Settings made before any library reads them; a user's own setting of each wins."""
    # LightGBM's OpenMP threads spin while they wait. On a busy 2-core machine that turned a
    # 2-second training into 90 seconds; passive waiting costs nothing measurable when idle.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # MLflow 3 fetches its telemetry settings from the internet and sends usage records from
    # every process that imports it. A lead scorer makes no network call its user did not
    # configure: MLFLOW_DISABLE_TELEMETRY=false turns MLflow's telemetry back on.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def leave(code: int | str | None) -> None:
    """Exit with `code` as `sys.exit` would, without tearing the interpreter down.

    Everything a command writes is committed, closed or flushed by then; the atexit handlers
    still run (MLflow's, Spark's). What is skipped is freeing every object and module one by
    one: 1.4 s after a training run that opened the MLflow store (0.6 s of it the imported
    libraries alone), measured on the demo. A thread still at work (not a daemon) gets the
    normal exit, which waits for it. Output that cannot be flushed (a closed pipe, a full disk)
    exits 120, as Python's own exit does."""
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("text"): print it, exit 1
        print(code, file=sys.stderr)
        code = 1
    # the normal exit waits for threads that are not daemons; daemon threads (one waiting for a
    # child's value, `work_aside`) it would stop at its end as this exit does
    main = threading.main_thread()
    working = [t for t in threading.enumerate() if t is not main and not t.daemon]
    if working or not hasattr(atexit, "_run_exitfuncs"):
        sys.exit(code)
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # as CPython's own exit: output lost, exit code 120
            code = 120
    os._exit(code)


if __name__ == "__main__":
    main()
