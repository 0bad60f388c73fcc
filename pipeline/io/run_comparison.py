"""Recent training runs side by side, with the champion marked: `leadscore runs`.

Where the MLflow store is a database (SQLite by default, PostgreSQL, MySQL, SQL Server), the
runs are read from its tables with plain SELECTs: importing MLflow and opening its SQL store
costs about 3 s before a query runs, the query itself milliseconds. The tables read (experiments,
runs, tags, latest_metrics, model_versions, registered_model_aliases) are the ones MLflow's
own store maps; a test holds the listing equal to MlflowClient's on a real store. Anything that
read cannot answer plainly (a store that is missing, not a database, of another schema, with
workspaces set or enabled, or with a name in more than one workspace) and every other kind of
store (a tracking server) goes through MlflowClient, with its checks and its error messages.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io.tracking_uri import CHAMPION, database_store

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.sql.expression import TableClause

SHOWN = ("roc_auc", "pr_auc", "ece", "lift_at_10", "capture_at_20")
JOBS = ("train", "retrain")


@dataclass(frozen=True)
class FoundRun:
    """What the listing needs of one run."""

    run_id: str
    name: str
    start_time: int  # ms since the epoch
    tags: dict[str, str]
    metrics: dict[str, float]


@dataclass(frozen=True)
class Found:
    runs: list[FoundRun]  # newest first, at most `limit`
    versions: dict[str, str]  # run id -> registered version
    champion: str | None


def recent_runs(uri: str, experiment: str, registered_model: str, limit: int = 10) -> pd.DataFrame:
    """The newest `limit` finished train and retrain runs, newest first: name, when, as-of,
    registered version, whether it is the champion, the gate's verdict, and each metric with
    its interval."""
    found = read_from_database(uri, experiment, registered_model, limit)
    if found is None:
        found = read_with_client(experiment, registered_model, limit)
    return _table(found)


def read_from_database(
    uri: str, experiment: str, registered_model: str, limit: int
) -> Found | None:
    """The runs read straight from the store's tables, or None where that read cannot answer
    plainly (the caller then asks MlflowClient)."""
    if (
        not database_store(uri)
        or os.environ.get("MLFLOW_WORKSPACE")
        or _truthy(os.environ.get("MLFLOW_ENABLE_WORKSPACES", ""))
    ):  # a workspace narrows every query: MLflow's own client knows how
        return None
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return None  # SQLite would create an empty file; MLflow makes the store properly
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    try:
        engine = create_engine(uri, poolclass=NullPool)
    except (SQLAlchemyError, ImportError, ValueError):  # no driver installed, a bad URL
        return None
    try:
        with engine.connect() as connection:
            return _select(connection, experiment, registered_model, limit)
    except SQLAlchemyError:  # not a database, or tables of another shape
        return None
    finally:
        engine.dispose()


def _select(
    connection: Connection, experiment: str, registered_model: str, limit: int
) -> Found | None:
    """SQLAlchemy Core on MLflow's tables, so each dialect quotes its reserved words (`key`)."""
    from sqlalchemy import case, column, select, table

    def columns(name: str, *names: str) -> TableClause:
        return table(name, *(column(c) for c in names))

    experiments = columns("experiments", "experiment_id", "name")
    runs = columns(
        "runs", "run_uuid", "name", "start_time", "status", "lifecycle_stage", "experiment_id"
    )
    tags = columns("tags", "run_uuid", "key", "value")
    latest = columns("latest_metrics", "run_uuid", "key", "value", "is_nan")
    models = columns("registered_models", "name")
    versions = columns(
        "model_versions", "name", "version", "run_id", "current_stage", "last_updated_time"
    )
    aliases = columns("registered_model_aliases", "name", "alias", "version")

    found = connection.execute(
        select(experiments.c.experiment_id).where(experiments.c.name == experiment)
    ).all()
    named = connection.execute(select(models.c.name).where(models.c.name == registered_model))
    if len(found) != 1 or len(named.all()) > 1:  # none (the client says so) or workspaces
        return None
    job = tags.alias("job")
    newest = connection.execute(
        select(runs.c.run_uuid, runs.c.name, runs.c.start_time)
        .join(job, (job.c.run_uuid == runs.c.run_uuid) & (job.c.key == "job"))
        .where(
            runs.c.experiment_id == found[0][0],
            runs.c.status == "FINISHED",
            runs.c.lifecycle_stage == "active",
            job.c.value.in_(JOBS),
        )
        # the client's order: newest first, and at equal times train runs before retrain runs
        .order_by(
            runs.c.start_time.desc(), case((job.c.value == "train", 0), else_=1), runs.c.run_uuid
        )
        .limit(limit)
    ).all()
    ids = [run_id for run_id, _, _ in newest]
    run_tags: dict[str, dict[str, str]] = {run_id: {} for run_id in ids}
    run_metrics: dict[str, dict[str, float]] = {run_id: {} for run_id in ids}
    for run_id, key, value in connection.execute(
        select(tags.c.run_uuid, tags.c.key, tags.c.value).where(tags.c.run_uuid.in_(ids))
    ):
        run_tags[run_id][key] = value
    for run_id, key, value, is_nan in connection.execute(
        select(latest.c.run_uuid, latest.c.key, latest.c.value, latest.c.is_nan).where(
            latest.c.run_uuid.in_(ids)
        )
    ):
        run_metrics[run_id][key] = math.nan if is_nan else float(value)
    registered = connection.execute(
        select(versions.c.run_id, versions.c.version)
        .where(versions.c.name == registered_model, versions.c.current_stage != "Deleted_Internal")
        # the client's order, so that a run registered twice maps to the same version here
        .order_by(versions.c.last_updated_time.desc(), versions.c.version.desc())
    )
    champion = connection.execute(
        select(aliases.c.version).where(
            aliases.c.name == registered_model, aliases.c.alias == CHAMPION
        )
    ).scalar()
    return Found(
        [
            FoundRun(run_id, name, int(start), run_tags[run_id], run_metrics[run_id])
            for run_id, name, start in newest
        ],
        {run_id: str(version) for run_id, version in registered if run_id is not None},
        None if champion is None else str(champion),
    )


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def read_with_client(experiment: str, registered_model: str, limit: int) -> Found:
    """The runs through MlflowClient (opening the store as every job does)."""
    from mlflow.tracking import MlflowClient

    from leadscore.pipeline.io.registry import champion_version, filter_value, versions_of
    from leadscore.pipeline.io.tracking import configure_tracking

    configure_tracking()
    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise InputError(f"no MLflow experiment {experiment!r} here: run `leadscore train` first")
    runs = [  # filtered on the server: monitor and tune runs can be many
        run
        for job in JOBS
        for run in client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.job = {filter_value(job)} AND attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=limit,
        )
    ]
    runs = sorted(runs, key=lambda r: r.info.start_time, reverse=True)[:limit]
    return Found(
        [
            FoundRun(r.info.run_id, r.info.run_name, r.info.start_time, r.data.tags, r.data.metrics)
            for r in runs
        ],
        {v.run_id: str(v.version) for v in versions_of(registered_model)},
        champion_version(registered_model),
    )


def _table(found: Found) -> pd.DataFrame:
    rows = []
    for run in found.runs:
        m, tags = run.metrics, run.tags
        version = found.versions.get(run.run_id, "")
        row: dict[str, object] = {
            "run": run.name,
            "started": pd.Timestamp(run.start_time, unit="ms", tz="UTC").floor("s"),
            "as_of": tags.get("as_of", "")[:10],
            "version": version,
            "champion": bool(version) and version == found.champion,
            "gate": tags.get("gate_decision", ""),
            "n_holdout": int(m.get("n_holdout", m.get("n", 0))),
            "config": tags.get("config_hash", "")[:8],
            "data": tags.get("data_fingerprint", "")[:8],
        }
        for name in SHOWN:
            row[name] = m.get(name, float("nan"))
            row[f"{name}_ci"] = (
                m.get(f"{name}_ci_low", float("nan")),
                m.get(f"{name}_ci_high", float("nan")),
            )
        rows.append(row)
    return pd.DataFrame(rows)
