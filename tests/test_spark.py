"""`--engine spark`: the pandas feature builders and scoring run per lead bucket on a local
SparkSession, with identical features, models and scores; the core install needs no pyspark."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from leadscore.features.build import FeatureSpec, build_features
from leadscore.features.snapshots import open_leads
from leadscore.features.tables import clean, crm_as_of
from leadscore.pipeline.config import load_config
from leadscore.pipeline.io.sources import load_tables

pytestmark = pytest.mark.spark
MOMENT = pd.Timestamp("2026-11-01", tz="UTC")


def _need_spark() -> None:
    problem = None
    try:
        import pyspark  # noqa: F401
    except ImportError:
        problem = "pyspark is not installed (pip install -e '.[spark]')"
    if problem is None and shutil.which("java") is None:
        problem = "no java on PATH (Spark needs Java 17)"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI=true but {problem}")
        pytest.skip(problem)


@pytest.fixture(scope="module")
def spark():
    _need_spark()
    from leadscore.pipeline.io.spark import spark_session

    session = spark_session("local[2]")
    yield session
    session.stop()


@pytest.fixture
def crm_folder(small_crm, write_crm, tmp_path: Path) -> Path:
    return write_crm(small_crm, tmp_path / "crm")


@pytest.mark.parametrize("source", ["parquet", "csv", "row-groups"])
def test_spark_builds_the_training_features_of_the_default_engine(spark, crm_folder, source):
    from leadscore.pipeline.io.spark import SparkActivities, spark_features

    if source == "csv":  # text timestamps and ids: parsed by the same pandas code per bucket
        acts = pd.read_parquet(crm_folder / "activities.parquet")
        (crm_folder / "activities.parquet").unlink()
        acts.to_csv(crm_folder / "activities.csv", index=False)
    if source == "row-groups":  # a large export's Parquet: text loads as several Arrow chunks
        for name in ("leads", "accounts"):
            table = pq.read_table(crm_folder / f"{name}.parquet")
            pq.write_table(table, crm_folder / f"{name}.parquet", row_group_size=100)
    whole = clean(crm_as_of(load_tables(None, crm_folder), MOMENT))
    light = load_tables(None, crm_folder, activities=False)
    if source == "row-groups":
        text = light.leads.select_dtypes("str").columns.drop("lead_id", errors="ignore")
        assert any(light.leads[c].array._pa_array.num_chunks > 1 for c in text)
    small = clean(crm_as_of(light, MOMENT))
    cutoffs = pd.date_range("2026-03-01", "2026-10-01", freq="MS", tz="UTC", name="cutoff")
    spine = open_leads(whole, pd.DatetimeIndex(cutoffs), 365)  # a lead at several cutoffs
    assert spine["lead_id"].duplicated().any()
    on_spark = SparkActivities(
        spark, load_config(None), crm_folder, light.leads["lead_id"], bucket_size=700
    )
    assert on_spark.check() == whole.activities["occurred_at"].max()
    got = spark_features(on_spark, small, spine, FeatureSpec(), MOMENT)
    pd.testing.assert_frame_equal(got, build_features(whole, spine, FeatureSpec()))


def test_buckets_with_activities_but_no_spine_rows(spark, crm_folder):
    # leads of later buckets are not in the spine (closed, or too old at every cutoff): their
    # buckets come back empty, and must still cross Spark's Arrow hand-off
    from leadscore.pipeline.io.spark import SparkActivities, spark_features

    whole = clean(crm_as_of(load_tables(None, crm_folder), MOMENT))
    light = load_tables(None, crm_folder, activities=False)
    small = clean(crm_as_of(light, MOMENT))
    cutoffs = pd.date_range("2026-03-01", "2026-10-01", freq="MS", tz="UTC", name="cutoff")
    spine = open_leads(whole, pd.DatetimeIndex(cutoffs), 365)
    position = pd.Index(light.leads["lead_id"]).get_indexer(spine["lead_id"])
    spine = spine[position // 300 == position.max() // 300]  # the newest leads' bucket alone
    on_spark = SparkActivities(
        spark, load_config(None), crm_folder, light.leads["lead_id"], bucket_size=300
    )
    got = spark_features(on_spark, small, spine, FeatureSpec(), MOMENT)
    assert len(got) == len(spine) > 0
    pd.testing.assert_frame_equal(got, build_features(whole, spine, FeatureSpec()))


@pytest.mark.e2e
def test_train_and_score_on_spark_equal_the_default_engine(run_cli, trained_copy):
    _need_spark()
    workdir, _ = trained_copy(6000, 3, "2026-10-01")  # version 1: the default engine
    run_cli("train", "--as-of", "2026-10-01", "--engine", "spark")  # version 2
    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    client = MlflowClient()
    runs = [client.get_run(client.get_model_version("lead-scoring", v).run_id) for v in "12"]
    assert [r.data.tags["engine"] for r in runs] == ["pandas", "spark"]
    for name in ("roc_auc", "pr_auc", "log_loss", "ece", "n_train", "n_holdout", "best_iteration"):
        assert runs[0].data.metrics[name] == runs[1].data.metrics[name], name

    run_cli("score", "--as-of", "2026-10-01", "--output", "pandas.parquet")
    spark_run = run_cli(
        "score", "--as-of", "2026-10-01", "--output", "spark.parquet", "--engine", "spark"
    )
    assert "on Spark" in spark_run.stderr
    expected = pd.read_parquet(workdir / "pandas.parquet").drop(columns="scored_at")
    got = pd.read_parquet(workdir / "spark.parquet").drop(columns="scored_at")
    assert len(got) > 1000
    pd.testing.assert_frame_equal(got, expected)


def test_the_core_install_does_not_need_pyspark(tmp_path, write_crm):
    from leadscore.pipeline.synthetic_crm import generate_crm

    write_crm(generate_crm(300, seed=1), tmp_path / "data")
    code = (
        "import sys; sys.modules['pyspark'] = None\n"  # as if it were not installed
        "import leadscore.pipeline.cli, leadscore.pipeline.jobs.score\n"
        "import leadscore.pipeline.jobs.train, leadscore.pipeline.io.spark\n"
        "from leadscore.pipeline.cli import main\n"
        "sys.argv = ['leadscore', 'score', '--engine', 'spark', '--data', 'data']\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    assert "--engine spark needs pyspark: pip install -e '.[spark]'" in result.stderr


def test_bad_activity_rows_are_input_errors_on_spark_too(spark, crm_folder):
    from leadscore.pipeline.errors import InputError
    from leadscore.pipeline.io.spark import SparkActivities

    acts = pd.read_parquet(crm_folder / "activities.parquet")
    acts["occurred_at"] = acts["occurred_at"].astype(str)
    acts.loc[len(acts) // 2, "occurred_at"] = "last tuesday"
    (crm_folder / "activities.parquet").unlink()
    acts.to_csv(crm_folder / "activities.csv", index=False)
    light = load_tables(None, crm_folder, activities=False)
    on_spark = SparkActivities(spark, load_config(None), crm_folder, light.leads["lead_id"])
    with pytest.raises(InputError, match=r"activities\.csv: column 'occurred_at' has 1 value"):
        on_spark.check()


def test_activities_of_unknown_leads_are_warned_about_or_fatal_on_spark(spark, crm_folder):
    from leadscore.pipeline.errors import InputError
    from leadscore.pipeline.io.spark import SparkActivities

    acts = pd.read_parquet(crm_folder / "activities.parquet")
    acts = acts.assign(lead_id=acts["lead_id"].astype(str))
    acts.loc[:9, "lead_id"] = "L-unknown"  # not even a number, against numeric lead ids
    acts.to_parquet(crm_folder / "activities.parquet", index=False)
    light = load_tables(None, crm_folder, activities=False)
    warnings: list[str] = []
    on_spark = SparkActivities(spark, load_config(None), crm_folder, light.leads["lead_id"])
    assert on_spark.check(warnings.append) is not None
    assert len(warnings) == 1 and f"10 of {len(acts):,} rows have a lead_id not in" in warnings[0]

    acts.assign(lead_id="L-unknown").to_parquet(crm_folder / "activities.parquet", index=False)
    on_spark = SparkActivities(spark, load_config(None), crm_folder, light.leads["lead_id"])
    with pytest.raises(InputError, match=r"no value of column 'lead_id' matches leads\.lead_id"):
        on_spark.check()
