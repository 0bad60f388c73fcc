"""MLflow tracking: the store, and what each job's run records.

A run is the record a data scientist compares: `train` and `retrain` log the config (every value
a param, passwords hidden), the holdout metrics with their intervals, tags that make runs
comparable (as-of, data fingerprint, config hash, git commit, shape, engine), the training table
as a dataset, and artifacts (config, leakage audit, validation report, grades, importance,
segments, plots, the HTML report). `monitor` logs its drift and backtest.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
import yaml
from mlflow.tracking import MlflowClient

from leadscore.pipeline.config import Config, config_as_dict
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io.locks import exclusive
from leadscore.pipeline.io.tracking_uri import lock_folder, tracking_uri
from leadscore.pipeline.redaction import redact, redact_text

if TYPE_CHECKING:
    from leadscore.pipeline.io.figure_drawing import Drawing


def configure_tracking() -> str:
    """Use $MLFLOW_TRACKING_URI if set, else a SQLite store `mlflow.db` in the working folder,
    and make sure the store exists (`train` calls this once its input is loaded and checked,
    the other jobs before their work).

    A new store is created (or an old one upgraded by MLflow) once, under a lock: two first runs
    in one folder would otherwise both create its tables, and one would die at its end."""
    # MLflow draws a progress bar for every artifact it fetches (a model's, at registration)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow", "alembic"):  # they narrate migrations and registrations; we print ours
        logging.getLogger(name).setLevel(logging.ERROR)
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    with exclusive(lock_folder(uri) / ".leadscore-mlflow-store.lock", 600, "the MLflow store"):
        try:
            client = MlflowClient()
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
        except Exception as exc:  # the store's own errors come in many types
            raise InputError(_store_problem(uri, exc)) from None
    return uri


def _store_problem(uri: str, exc: Exception) -> str:
    text = str(exc)
    where = redact(uri)
    if "not a database" in text or "file is encrypted" in text:
        return (
            f"the MLflow store {where} is not a SQLite database: move the file away (a new store "
            "is created) or point MLFLOW_TRACKING_URI at your store"
        )
    if "out-of-date database schema" in text.lower():
        return f"the MLflow store {where} needs an upgrade: run `mlflow db upgrade {where}`"
    return f"cannot open the MLflow store {where}: {type(exc).__name__}: {redact(text)[:500]}"


def flat_params(config: Config) -> dict[str, str]:
    """Every config value as one MLflow param per leaf, URLs with their passwords hidden."""
    params: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:  # MLflow allows only some characters in param names ('*' is a config key here)
            params[re.sub(r"[^A-Za-z0-9_\-. :/]", "_", prefix)] = redact(str(value))[:500]

    walk("", config_as_dict(config))
    return params


def log_text(text: str, artifact: str) -> None:
    """A text artifact of the active run, secrets hidden."""
    mlflow.log_text(redact_text(text), artifact)


def log_config(config: Config) -> None:
    """Every config value as a param, and the whole config as `config.yaml` (passwords hidden)."""
    mlflow.log_params(flat_params(config))
    log_text(yaml.safe_dump(config_as_dict(config), sort_keys=False), "config.yaml")


SCHEMA_SAMPLE = 2_000  # rows MLflow infers the training table's schema from


def log_training_table(table: pd.DataFrame, name: str) -> None:
    """The training table as the run's dataset input: its schema and digest, from a seeded
    sample (MLflow infers a schema value by value: 7 s for the demo's 57,000 rows, 0.2 s for
    2,000), with its size as tags."""
    sample = table.sample(min(len(table), SCHEMA_SAMPLE), random_state=0).sort_index()
    with warnings.catch_warnings():  # MLflow's hint about int columns: not for a dataset
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(sample, name=name, targets="label")
        mlflow.log_input(dataset, context="training")
    mlflow.set_tags({"training_rows": str(len(table)), "training_columns": str(table.shape[1])})


def log_frames(frames: dict[str, pd.DataFrame]) -> None:
    """Tables as JSON artifacts of the active run."""
    for artifact, frame in frames.items():
        mlflow.log_table(frame, artifact)


def log_plots(drawing: Drawing) -> dict[str, bytes]:
    """The figures being drawn as `plots/*.png` artifacts of the active run (waiting for them);
    each PNG's bytes by name."""
    png = drawing.png()
    mlflow.log_artifacts(str(drawing.folder), "plots")
    return png


def finite(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics MLflow can store (NaN and infinity are left out)."""
    return {k: float(v) for k, v in metrics.items() if np.isfinite(v)}


@dataclass(frozen=True)
class MonitorRecord:
    """What `leadscore monitor` logs."""

    as_of: pd.Timestamp
    version: str
    alert: bool
    metrics: dict[str, float]
    report: dict[str, Any]


EXPERIMENT_KIND = "mlflow.experimentKind"  # MLflow 3's UI opens a training experiment on its runs
NOTE = "mlflow.note.content"  # the description MLflow's UI shows for a run or an experiment


def use_experiment(name: str) -> str:
    """Make `name` the active experiment, tagged as model development (not GenAI), so that
    MLflow's UI opens it on its runs; returns its id."""
    experiment = mlflow.set_experiment(name)
    if experiment.tags.get(EXPERIMENT_KIND) != "custom_model_development":
        MlflowClient().set_experiment_tag(
            experiment.experiment_id, EXPERIMENT_KIND, "custom_model_development"
        )
        MlflowClient().set_experiment_tag(
            experiment.experiment_id,
            NOTE,
            "leadscore: training runs (train, retrain), score batches (score), drift checks "
            "(monitor) and tuning trials (tune) of one lead-scoring model.",
        )
    return experiment.experiment_id


def describe_run(run_id: str, text: str) -> None:
    """The run's description in MLflow's UI (passwords hidden)."""
    MlflowClient().set_tag(run_id, NOTE, redact_text(text))


def add_to_run_description(run_id: str, text: str) -> None:
    """Append a line (a gate's verdict) to a run's description."""
    client = MlflowClient()
    earlier = client.get_run(run_id).data.tags.get(NOTE, "")
    describe_run(run_id, "\n".join(t for t in (earlier, text) if t))


@dataclass(frozen=True)
class ScoreBatchRecord:
    """What `leadscore score` logs per batch, beside the training runs."""

    batch_id: str
    as_of: pd.Timestamp
    version: str
    target: str  # passwords hidden
    engine: str
    counts: dict[str, float]  # leads per stage and grade, MQLs, changes
    seconds: float


def log_score_batch(record: ScoreBatchRecord, experiment: str, model: str) -> str:
    """One MLflow run per score batch, so batches line up beside the training runs."""
    use_experiment(experiment)
    with mlflow.start_run(run_name=f"score-{record.as_of:%Y%m%d-%H%M}") as run:
        mlflow.set_tags(
            {
                "job": "score",
                "as_of": record.as_of.isoformat(),
                "model_version": record.version,
                "registered_model": model,
                "batch_id": record.batch_id,
                "target": redact(record.target),
                "engine": record.engine,
            }
        )
        mlflow.log_metrics(finite({**record.counts, "seconds": record.seconds}))
        describe_run(
            run.info.run_id,
            f"Score batch as of {record.as_of:%Y-%m-%d %H:%M} UTC with {model} version "
            f"{record.version}: {record.counts.get('leads', 0):,.0f} leads, "
            f"{record.counts.get('mqls', 0):,.0f} MQLs, "
            f"{record.counts.get('changes_into_mql', 0):,.0f} new hand-offs; written to "
            f"{redact(record.target)}.",
        )
        return run.info.run_id


def log_monitor(record: MonitorRecord, experiment: str) -> None:
    use_experiment(experiment)
    with mlflow.start_run(run_name=f"monitor-{record.as_of:%Y%m%d}"):
        mlflow.set_tags(
            {
                "job": "monitor",
                "as_of": record.as_of.isoformat(),
                "model_version": record.version,
                "alert": str(record.alert).lower(),
            }
        )
        mlflow.log_metrics(finite(record.metrics))
        log_text(json.dumps(record.report, indent=2, default=str), "monitor_report.json")


def log_decision(
    run_id: str, tags: dict[str, str], metrics: dict[str, float], record: dict
) -> None:
    """A gate's decision on a finished run: its tags, the champion's metrics, the JSON record."""
    client = MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    for key, value in finite(metrics).items():
        client.log_metric(run_id, key, value)
    client.log_text(run_id, redact_text(json.dumps(record, indent=2)), "gate_decision.json")
