"""The real CLI end to end: demo-data -> train -> score, with a real MLflow store and SQLite."""

import json
import sqlite3
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from leadscore.features.snapshots import open_leads
from leadscore.features.tables import CrmTables, crm_as_of

pytestmark = pytest.mark.e2e
T = "2026-11-01"


def _scores(db: Path) -> pd.DataFrame:
    with sqlite3.connect(db) as conn:
        return pd.read_sql("SELECT * FROM lead_scores", conn)


@pytest.fixture
def trained(trained_copy):
    return trained_copy(10_000, 1, T)


def test_demo_data_train_score(trained, run_cli):
    folder, train = trained
    assert "roc_auc" in train.stdout and "now the champion" in train.stdout
    score = run_cli("score", "--as-of", T)
    assert "Wrote" in score.stdout

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    client = MlflowClient()
    champion = client.get_model_version_by_alias("lead-scoring", "champion")
    assert str(champion.version) == "1"
    run = client.get_run(champion.run_id)
    for metric in ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "lift_at_10"):
        assert metric in run.data.metrics
    assert run.data.tags["data_fingerprint"] and run.data.tags["as_of"].startswith(T)

    # the registered pyfunc returns calibrated probabilities, not labels
    model = mlflow.pyfunc.load_model("models:/lead-scoring@champion")
    leads = pd.read_parquet(folder / "demo_data" / "leads.parquet")
    scores = _scores(folder / "scores.db")
    crm = CrmTables(
        *(
            pd.read_parquet(folder / "demo_data" / f"{n}.parquet")
            for n in ("accounts", "leads", "activities", "deals")
        )
    )
    moment = pd.Timestamp(T, tz="UTC")
    expected = open_leads(crm_as_of(crm, moment), pd.DatetimeIndex([moment]), None)
    assert sorted(scores["lead_id"]) == sorted(expected["lead_id"])
    assert scores["lead_id"].is_unique
    assert scores["score"].between(1, 99).all()
    assert set(scores["grade"]) <= {"A", "B", "C", "D"} and len(set(scores["grade"])) >= 3
    assert (scores["reasons"].str.len() > 10).all()
    assert (scores["model_version"] == "1").all()
    assert not set(leads["email"]) & set(scores.astype(str).to_numpy().ravel())

    # the model takes raw records: the canonical columns it reads, never contact details,
    # identifiers or excluded leaks
    input_cols = [c.name for c in model.metadata.get_input_schema().inputs]
    assert {"lead_id", "created_at", "activities", "deal_created_at"} <= set(input_cols)
    assert not {"email", "name", "disqualify_reason"} & set(input_cols)
    bundle = model.unwrap_python_model().bundle
    assert set(bundle.input_schema.columns()) == set(input_cols)


def test_registered_model_scores_its_own_input_example(trained):
    """The logged example (raw records, no contact details) scores through the pyfunc."""
    folder, _ = trained
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/lead-scoring@champion")
    artifact = Path(mlflow.artifacts.download_artifacts("models:/lead-scoring@champion"))
    example = json.loads((artifact / "input_example.json").read_text())["inputs"]
    frame = pd.DataFrame(example["data"], columns=example["columns"])
    frame.loc[0, "seniority"] = None  # missing values are allowed by the signature
    out = model.predict(frame, params={"as_of": "2026-11-01"})
    assert {"probability", "score", "grade", "stage", "reasons", "model_version"} <= set(out)
    assert ((out["probability"] > 0) & (out["probability"] < 1)).all()
    assert not np.isin(out["probability"], [0.0, 1.0]).any()
    assert "@example.com" not in json.dumps(example) and "email" not in example["columns"]


def test_scores_at_t_ignore_everything_after_t(trained, run_cli):
    folder, _ = trained
    t = "2026-06-01"
    run_cli("train", "--as-of", t)  # version 2; the champion (version 1) has seen past t
    first = run_cli("score", "--as-of", t, "--output", "before.parquet")
    assert "version 2 (trained as of 2026-06-01)" in first.stderr
    data = folder / "demo_data"
    moment = pd.Timestamp(t, tz="UTC")
    acts = pd.read_parquet(data / "activities.parquet")
    later = acts.sample(3000, random_state=0, replace=True).assign(
        occurred_at=moment + pd.to_timedelta(np.arange(3000) % 500, unit="h"),
        activity_type="demo_request",
    )
    pd.concat([acts, later]).to_parquet(data / "activities.parquet", index=False)
    deals = pd.read_parquet(data / "deals.parquet")
    still_open = deals["closed_at"].isna() | (deals["closed_at"] >= moment)
    deals.loc[still_open, "closed_at"] = deals.loc[still_open, "created_at"].clip(
        lower=moment
    ) + pd.Timedelta(days=3)
    deals.loc[still_open, "outcome"] = "won"
    deals.to_parquet(data / "deals.parquet", index=False)
    leads = pd.read_parquet(data / "leads.parquet")
    late = leads.head(50).assign(
        lead_id=leads["lead_id"].max() + 1 + np.arange(50), created_at=moment + pd.Timedelta(days=1)
    )
    pd.concat([leads, late]).to_parquet(data / "leads.parquet", index=False)

    run_cli("score", "--as-of", t, "--output", "after.parquet")
    before = pd.read_parquet(folder / "before.parquet").drop(columns="scored_at")
    after = pd.read_parquet(folder / "after.parquet").drop(columns="scored_at")
    pd.testing.assert_frame_equal(before, after)


def test_train_as_of_sees_nothing_after_t(run_cli, demo_config, tmp_path):
    run_cli("demo-data", "--out", "a", "--leads", "10000", "--seed", "2")
    run_cli("demo-data", "--out", "b", "--leads", "10000", "--seed", "2")
    t = pd.Timestamp("2026-07-01", tz="UTC")
    deals = pd.read_parquet(tmp_path / "b" / "deals.parquet")
    later = deals["closed_at"] >= t
    deals.loc[later, "outcome"] = np.where(deals.loc[later, "outcome"] == "won", "lost", "won")
    deals.to_parquet(tmp_path / "b" / "deals.parquet", index=False)
    acts = pd.read_parquet(tmp_path / "b" / "activities.parquet")
    acts[acts["occurred_at"] < t].to_parquet(tmp_path / "b" / "activities.parquet", index=False)

    outputs = [run_cli("train", "--data", d, "--as-of", "2026-07-01").stdout for d in ("a", "b")]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["leadscore"], order_by=["start_time ASC"])
    metrics = runs.filter(like="metrics.").iloc[:, :].astype(float)
    pd.testing.assert_series_equal(metrics.iloc[0], metrics.iloc[1], check_names=False)
    assert runs["tags.data_fingerprint"].nunique() == 2  # the files did differ
    assert "roc_auc" in outputs[0]


def test_scoring_never_uses_a_model_trained_after_as_of(trained, run_cli):
    result = run_cli("score", "--as-of", "2026-06-01", check=False)
    assert result.returncode == 2
    assert "trained as of 2026-11-01, after --as-of 2026-06-01" in result.stderr
    assert "leadscore train --as-of 2026-06-01" in result.stderr
    explicit = run_cli("score", "--as-of", "2026-06-01", "--model-version", "1")
    assert "not what could have been known then" in explicit.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["train", "--set", "model.nope=1"], "model.nope: unknown key"),
        (["train", "--data", "missing_folder"], "missing_folder does not exist"),
        (["train", "--as-of", "yesterday-ish"], "--as-of 'yesterday-ish'"),
        (["score", "--data", "demo_data"], "no model 'lead-scoring@champion'"),
        (["train", "--config", "nope.yaml"], "nope.yaml does not exist"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(run_cli, demo_config, args, fragment):
    run_cli("demo-data", "--out", "demo_data", "--leads", "300")
    result = run_cli(*args, check=False)
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr


def test_bad_timestamp_in_data_exits_2_and_writes_nothing(run_cli, demo_config, tmp_path):
    run_cli("demo-data", "--out", "demo_data", "--leads", "300")
    leads = pd.read_parquet(tmp_path / "demo_data" / "leads.parquet")
    leads["created_at"] = leads["created_at"].astype(str)
    leads.loc[3, "created_at"] = "31/31/2025"
    (tmp_path / "demo_data" / "leads.parquet").unlink()
    leads.to_csv(tmp_path / "demo_data" / "leads.csv", index=False)
    result = run_cli("train", check=False)
    assert result.returncode == 2
    assert "leads.csv" in result.stderr and "'created_at'" in result.stderr
    assert not (tmp_path / "mlruns").exists()


@pytest.mark.parametrize("command", [[], ["demo-data"], ["train"], ["score"]])
def test_every_command_has_help(run_cli, command):
    result = run_cli(*command, "--help")
    assert "Usage:" in result.stdout and len(result.stdout) > 200


def test_scoring_twice_keeps_current_scores_and_adds_one_history_batch(trained, run_cli):
    folder, _ = trained
    run_cli("score", "--as-of", T)
    first = _scores(folder / "scores.db")
    run_cli("score", "--as-of", T)
    pd.testing.assert_frame_equal(_scores(folder / "scores.db"), first)
    with sqlite3.connect(folder / "scores.db") as conn:
        history = pd.read_sql("SELECT * FROM lead_score_history", conn)
    assert history["batch_id"].nunique() == 2
    assert len(history) == 2 * len(first)
    assert {"fit_score", "engagement_score", "mql", "model_version", "as_of"} <= set(history)
    # the split adds up: sub-scores and MQL flags are there for every lead
    assert (
        first["fit_score"].between(1, 99).all() and first["engagement_score"].between(1, 99).all()
    )
    assert set(first["mql"]) <= {0, 1}
    assert (first["reasons_json"].str.startswith("[")).all()


def test_scoring_in_small_chunks_gives_the_same_scores(trained, run_cli):
    folder, _ = trained
    run_cli("score", "--as-of", T, "--output", "whole.parquet")
    run_cli("score", "--as-of", T, "--output", "chunked.parquet", "--set", "scoring.chunk_size=700")
    whole = pd.read_parquet(folder / "whole.parquet").drop(columns="scored_at")
    chunked = pd.read_parquet(folder / "chunked.parquet").drop(columns="scored_at")
    assert len(whole) > 700 * 3
    pd.testing.assert_frame_equal(whole, chunked)
