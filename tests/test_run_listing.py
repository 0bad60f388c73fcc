"""`leadscore runs` reads a database store's tables directly: held equal to MlflowClient's answer on
real stores (SQLite and PostgreSQL), and handed to the client wherever that read cannot answer."""

from __future__ import annotations

import math
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import sqlalchemy as sa
from mlflow.tracking import MlflowClient

from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io import registry
from leadscore.pipeline.io.run_comparison import (
    CHAMPION,
    read_from_database,
    read_with_client,
    recent_runs,
)

MODEL = "lead-scoring"


def _fill(uri: str, artifacts: Path) -> list[str]:
    """A store with what a listing must sort out: train and retrain runs, a score and a tune run,
    a failed and a deleted train run, a NaN metric, a metric logged at two steps, five model
    versions (one deleted, one the champion, two of one run), and a second experiment. The run
    ids, oldest first, of the runs the listing should show."""
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    experiment = client.create_experiment("leadscore", artifact_location=artifacts.as_uri())
    other = client.create_experiment("elsewhere", artifact_location=artifacts.as_uri())
    shown, start = [], 1_700_000_000_000
    plan = [
        ("train", "FINISHED", experiment),
        ("score", "FINISHED", experiment),
        ("retrain", "FINISHED", experiment),
        ("train", "FAILED", experiment),
        ("train", "FINISHED", other),
        ("tune", "FINISHED", experiment),
        ("train", "FINISHED", experiment),  # deleted below
        ("retrain", "FINISHED", experiment),
        ("train", "FINISHED", experiment),
    ]
    client.create_registered_model(MODEL)
    for i, (job, status, in_experiment) in enumerate(plan):
        run = client.create_run(in_experiment, start_time=start + i * 1000, run_name=f"{job}-{i}")
        run_id = run.info.run_id
        tags = {"job": job, "as_of": f"2026-0{i + 1}-01T00:00:00+00:00"}
        for key, value in (tags | {"config_hash": f"{i:012d}", "gate_decision": "keep"}).items():
            client.set_tag(run_id, key, value)
        for name in ("roc_auc", "pr_auc", "ece", "lift_at_10", "capture_at_20"):
            value = 0.5 + i / 100
            client.log_metric(run_id, name, value)
            client.log_metric(run_id, f"{name}_ci_low", value - 0.05)
            client.log_metric(run_id, f"{name}_ci_high", value + 0.05)
        client.log_metric(run_id, "n_holdout", 100 + i)
        client.log_metric(run_id, "lift_at_10", 1.0 + i, step=3)  # the latest step is shown
        if i == 2:
            client.log_metric(run_id, "ece", math.nan)
        client.set_terminated(run_id, status, end_time=start + i * 1000 + 500)
        if i in (2, 6, 7, 8):
            client.create_model_version(MODEL, str(artifacts), run_id=run_id)
        if i == 8:  # registered twice: each listing must map the run to the same version
            client.create_model_version(MODEL, str(artifacts), run_id=run_id)
        if i == 6:
            client.delete_run(run_id)
        elif (job, status, in_experiment) in {("train", "FINISHED", experiment),
                                              ("retrain", "FINISHED", experiment)}:  # fmt: skip
            shown.append(run_id)
    client.delete_model_version(MODEL, "2")  # the deleted run's version
    registry.set_champion(MODEL, "3", "test")
    return shown


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    shown = _fill(uri, tmp_path / "artifacts")
    yield uri, shown
    mlflow.set_tracking_uri(None)


@pytest.fixture
def postgres_store(postgres_url: str, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    name = f"runs_listing_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    uri = sa.engine.make_url(postgres_url).set(database=name).render_as_string(False)
    try:
        yield uri, _fill(uri, tmp_path / "artifacts")
    finally:
        mlflow.set_tracking_uri(None)
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _same_listing(uri: str, shown: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for limit in (1, 3, 100):
        direct = read_from_database(uri, "leadscore", MODEL, limit)
        assert direct is not None, "the direct read handed a plain store to the client"
        through_client = read_with_client("leadscore", MODEL, limit)
        assert [r.run_id for r in direct.runs] == list(reversed(shown))[:limit]
        assert [r.run_id for r in through_client.runs] == [r.run_id for r in direct.runs]
        for ours, theirs in zip(direct.runs, through_client.runs, strict=True):
            assert (ours.name, ours.start_time, ours.tags) == (
                theirs.name,
                theirs.start_time,
                theirs.tags,
            )
            assert ours.metrics.keys() == theirs.metrics.keys()
            for key, value in ours.metrics.items():
                assert value == theirs.metrics[key] or (
                    math.isnan(value) and math.isnan(theirs.metrics[key])
                )
        assert direct.versions == through_client.versions
        assert direct.champion == through_client.champion == "3"
    table = recent_runs(uri, "leadscore", MODEL, 100)
    assert table["run"].tolist() == ["train-8", "retrain-7", "retrain-2", "train-0"]
    assert table["version"].tolist() == ["4", "3", "1", ""]
    assert table["champion"].tolist() == [False, True, False, False]
    assert table.loc[0, "lift_at_10"] == 9.0  # the value at the latest step
    assert math.isnan(table.loc[2, "ece"])
    assert table["n_holdout"].tolist() == [108, 107, 102, 100]


def test_the_direct_read_equals_mlflow_client_on_sqlite(sqlite_store, monkeypatch):
    _same_listing(*sqlite_store, monkeypatch)


@pytest.mark.postgres
def test_the_direct_read_equals_mlflow_client_on_postgresql(postgres_store, monkeypatch):
    _same_listing(*postgres_store, monkeypatch)


def test_the_champion_alias_is_the_registrys():
    assert CHAMPION == registry.CHAMPION


def test_what_the_direct_read_leaves_to_the_client(tmp_path, sqlite_store):
    uri, _ = sqlite_store
    missing = tmp_path / "nowhere" / "mlflow.db"
    assert read_from_database(f"sqlite:///{missing}", "leadscore", MODEL, 5) is None
    assert not missing.parent.exists()  # not created by the attempt
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not sqlite" * 100)
    assert read_from_database(f"sqlite:///{garbage}", "leadscore", MODEL, 5) is None
    assert read_from_database("http://127.0.0.1:5000", "leadscore", MODEL, 5) is None
    bad_port = "postgresql+psycopg://u@127.0.0.1:port/db"  # SQLAlchemy: ValueError
    assert read_from_database(bad_port, "leadscore", MODEL, 5) is None
    with pytest.MonkeyPatch.context() as patch:  # a workspace narrows every query
        patch.setenv("MLFLOW_WORKSPACE", "marketing")
        assert read_from_database(uri, "leadscore", MODEL, 5) is None
    assert read_from_database(uri, "no such experiment", MODEL, 5) is None
    assert read_from_database(uri, "leadscore", "no such model", 5) is not None  # no versions
    with pytest.raises(InputError, match="no MLflow experiment 'no such experiment'"):
        recent_runs(uri, "no such experiment", MODEL, 5)


def test_listing_a_database_store_does_not_import_mlflow(sqlite_store):
    uri, _ = sqlite_store
    code = (
        "import sys; from leadscore.pipeline.io.run_comparison import recent_runs; "
        f"frame = recent_runs({uri!r}, 'leadscore', {MODEL!r}, 10); "
        "print(len(frame), 'mlflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["4", "False"]
