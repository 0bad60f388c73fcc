"""`leadscore tune`: trials as nested MLflow runs, the best settings written into a config that
`train` then uses."""

from __future__ import annotations

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from leadscore.pipeline.config import load_config

pytestmark = pytest.mark.e2e
AS_OF = "2026-10-01"


def test_tune_writes_a_config_train_uses_and_logs_each_trial(run_cli, trained_copy):
    workdir, _ = trained_copy(6000, 3, AS_OF)
    result = run_cli("tune", "--as-of", AS_OF, "--trials", "3", "--out", "tuned.yaml")
    assert "Best AUC" in result.stdout and "tuned.yaml" in result.stdout
    written = load_config(workdir / "tuned.yaml")  # a valid config, loaded as train loads it
    base = load_config(workdir / "configs" / "demo.yaml")
    assert written.features == base.features and written.split == base.split

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("leadscore").experiment_id
    [parent] = client.search_runs([experiment], filter_string="tags.job = 'tune'")
    trials = client.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(trials) == 3
    aucs = {r.data.tags["trial"]: r.data.metrics["calibration_slice_roc_auc"] for r in trials}
    best = parent.data.metrics["best_calibration_slice_roc_auc"]
    assert best == max(aucs.values())
    # trial 0 is the config's own settings; the written ones are the best trial's
    first = next(r for r in trials if r.data.tags["trial"] == "0")
    assert float(first.data.params["num_leaves"]) == base.model.num_leaves
    best_trial = next(r for r in trials if r.data.metrics["calibration_slice_roc_auc"] == best)
    assert written.model.num_leaves == int(best_trial.data.params["num_leaves"])
    assert written.model.learning_rate == pytest.approx(
        float(best_trial.data.params["learning_rate"])
    )
    header = (workdir / "tuned.yaml").read_text().splitlines()[0]
    assert parent.info.run_id in header

    trained = run_cli("train", "--as-of", AS_OF, "--config", "tuned.yaml")
    assert "version 2" in trained.stdout
    params = client.get_run(client.get_model_version("lead-scoring", "2").run_id).data.params
    assert int(params["model.num_leaves"]) == written.model.num_leaves
    assert yaml.safe_load((workdir / "tuned.yaml").read_text())["model"]["n_estimators"] == 2000


def test_tune_rejects_a_bad_setting_as_input(run_cli, trained_copy):
    trained_copy(6000, 3, AS_OF)
    result = run_cli("tune", "--trials", "0", check=False)
    assert result.returncode == 2
    assert "--trials" in result.stderr
