"""A training run becomes a registered version only once its record is whole: a figure that
fails to draw leaves a failed run and no version (so no champion)."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from leadscore.pipeline.catalog import Catalog
from leadscore.pipeline.config import load_config
from leadscore.pipeline.progress import Steps
from leadscore.pipeline.synthetic_crm import generate_crm

pytestmark = pytest.mark.slow


def test_a_failing_figure_leaves_a_failed_run_and_no_version(
    tmp_path, write_crm, demo_config, monkeypatch
):
    from leadscore.pipeline.jobs.train import train
    from leadscore.pipeline.steps import recording

    data = write_crm(generate_crm(n_leads=6000, seed=3), tmp_path / "data")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    drawn = recording.plots

    def one_broken(*args, **kwargs):
        figures = drawn(*args, **kwargs)

        def broken():
            raise ValueError("the ROC curve could not be drawn")

        return figures | {"roc": broken}

    monkeypatch.setattr(recording, "plots", one_broken)
    config = load_config(demo_config)
    try:
        with (
            Catalog.open(config, data, steps=Steps(quiet=True)) as catalog,
            pytest.raises(ValueError, match="could not be drawn"),
        ):
            train(catalog, pd.Timestamp("2026-10-01", tz="UTC"))
        client = MlflowClient()
        [run] = client.search_runs(
            [client.get_experiment_by_name(config.mlflow.experiment).experiment_id]
        )
        assert run.info.status == "FAILED"
        assert client.search_model_versions(f"name='{config.mlflow.registered_model}'") == []
    finally:
        mlflow.set_tracking_uri(None)
