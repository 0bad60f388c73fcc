"""Training from PostgreSQL tables gives the same model as from the same data in Parquet."""

import uuid

import mlflow
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]
TABLES = ("accounts", "leads", "activities", "deals")


def test_postgres_and_parquet_train_the_same_model(
    postgres_url, run_cli, demo_config, tmp_path, monkeypatch
):
    run_cli("demo-data", "--out", "parquet", "--leads", "5000", "--seed", "4")
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            for name in TABLES:
                frame = pd.read_parquet(tmp_path / "parquet" / f"{name}.parquet")
                frame.to_sql(prefix + name, conn, index=False)
        # the password-free URL goes through the environment, as a real one would
        monkeypatch.setenv("LEADSCORE_PG_URL", postgres_url)
        config = yaml.safe_load(demo_config.read_text())
        config["data"] = {
            name: {"url": "${LEADSCORE_PG_URL}", "table": prefix + name} for name in TABLES
        }
        config["mlflow"]["experiment"] = "from-postgres"
        (tmp_path / "pg.yaml").write_text(yaml.safe_dump(config))

        few = ("--set", "split.min_wins=5")  # a small history: its slices win seldom
        run_cli("train", "--data", "parquet", "--as-of", "2026-11-01", *few)
        run_cli("train", "--config", "pg.yaml", "--data", ".", "--as-of", "2026-11-01", *few)
    finally:
        with engine.begin() as conn:
            for name in TABLES:
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{prefix}{name}"'))
        engine.dispose()

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["leadscore", "from-postgres"])
    assert len(runs) == 2
    assert runs["tags.data_fingerprint"].nunique() == 1
    metrics = runs.filter(like="metrics.").astype(float)
    pd.testing.assert_series_equal(metrics.iloc[0], metrics.iloc[1], check_names=False)

    models = [mlflow.pyfunc.load_model(f"models:/lead-scoring/{v}") for v in (1, 2)]
    estimators = [m.unwrap_python_model().bundle.estimator for m in models]
    assert list(estimators[0].feature_names_in_) == list(estimators[1].feature_names_in_)
    dumps = [e.booster_.booster_.model_to_string() for e in estimators]
    assert dumps[0].split("feature_infos")[1] == dumps[1].split("feature_infos")[1]
    assert np.isclose(estimators[0].best_iteration_, estimators[1].best_iteration_)
