"""`retrain`, `promote`, `rollback` and `runs` through the real CLI: the champion/challenger gate,
the champion history, the registry lock under two concurrent retrains, and what each run logs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from leadscore.pipeline.io.registry import CHAMPION, HISTORY_TAG, load_bundle

pytestmark = pytest.mark.e2e
AS_OF = "2026-10-01"
MODEL = "lead-scoring"  # mlflow.registered_model in configs/demo.yaml
STARVED = ("--set", "model.n_estimators=2", "--set", "model.num_leaves=2")
# any sane challenger passes: the AUC check, and the holdout's wins (marketing's leads of a
# 6,000-lead history give about 11)
LENIENT = ("--set", "gate.auc_tolerance=0.5", "--set", "gate.min_holdout_wins=10")
PLOTS = {
    "roc",
    "precision_recall",
    "reliability",
    "gains_lift",
    "score_distribution",
    "feature_importance",
    "shap_summary",
}


@pytest.fixture
def workdir(trained_copy, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the session's trained folder (version 1 is the champion), with this process's
    MLflow pointed at its store. (set_tracking_uri also exports MLFLOW_TRACKING_URI: monkeypatch
    it so it does not outlive the test.)"""
    folder = trained_copy(6000, 3, AS_OF)[0]
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    return folder


def _champion(client: MlflowClient) -> str | None:
    aliases = client.get_registered_model(MODEL).aliases
    return str(aliases[CHAMPION]) if CHAMPION in aliases else None


def _history(client: MlflowClient) -> list[dict[str, str]]:
    return json.loads(client.get_registered_model(MODEL).tags[HISTORY_TAG])


def _version_tags(client: MlflowClient, version: str) -> tuple[dict[str, str], dict[str, str]]:
    """The tags on the model version and on the run that made it."""
    found = client.get_model_version(MODEL, version)
    return found.tags, client.get_run(found.run_id).data.tags


def test_starved_challenger_is_kept_and_can_be_promoted_by_hand(run_cli, workdir):
    client = MlflowClient()
    kept = run_cli("retrain", "--as-of", AS_OF, *STARVED)
    assert "Kept the champion (version 1); version 2 is registered but not promoted" in kept.stdout
    assert _champion(client) == "1"
    assert len(_history(client)) == 1  # keeping moves nothing
    for tags in _version_tags(client, "2"):
        assert tags["gate_decision"] == "kept"
        assert tags["gate_champion_version"] == "1"
        assert "FAIL: challenger ROC AUC" in tags["gate_reasons"]
        assert "below the champion's" in tags["gate_reasons"]
    run = client.get_run(client.get_model_version(MODEL, "2").run_id)
    assert run.data.tags["job"] == "retrain"
    assert run.data.metrics["champion_roc_auc"] > run.data.metrics["roc_auc"]
    record = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/gate_decision.json")
    assert record["decision"] == "kept" and record["champion_version"] == "1"

    required = run_cli("retrain", "--as-of", AS_OF, *STARVED, "--require-promotion", check=False)
    assert required.returncode == 3, required.stdout + required.stderr
    assert "Kept the champion (version 1); version 3" in required.stdout
    assert _champion(client) == "1"
    assert _version_tags(client, "3")[0]["gate_decision"] == "kept"

    # a person may still promote a version the gate kept
    moved = run_cli("promote", "--version", "2", "--reason", "ticket 42")
    assert "champion moved from version 1 to 2" in moved.stdout
    assert _champion(client) == "2"
    history = _history(client)
    assert len(history) == 2
    assert history[-1]["version"] == "2" and history[-1]["previous"] == "1"
    assert history[-1]["action"] == "promote (by hand)" and history[-1]["reason"] == "ticket 42"


def test_passing_challenger_is_promoted_and_rollback_returns_once(run_cli, workdir):
    client = MlflowClient()
    result = run_cli("retrain", "--as-of", AS_OF, "--set", "model.num_leaves=15", *LENIENT)
    assert "Promoted: lead-scoring version 2 is now the champion." in result.stdout
    assert "pass: challenger ROC AUC" in result.stdout and "FAIL" not in result.stdout
    assert _champion(client) == "2"
    version_tags, run_tags = _version_tags(client, "2")
    for tags in (version_tags, run_tags):
        assert tags["gate_decision"] == "promoted" and tags["gate_champion_version"] == "1"
    last = _history(client)[-1]
    assert (last["version"], last["previous"], last["action"]) == ("2", "1", "promote (gate)")

    back = run_cli("rollback")
    assert "champion rolled back from version 2 to 1" in back.stdout
    assert _champion(client) == "1"
    last = _history(client)[-1]
    assert (last["version"], last["previous"], last["action"]) == ("1", "2", "rollback")

    again = run_cli("rollback", check=False)
    assert again.returncode == 2
    assert "no earlier champion of 'lead-scoring' to roll back to" in again.stderr
    assert "leadscore promote --version N" in again.stderr
    assert _champion(client) == "1"
    assert len(_history(client)) == 3  # the refused rollback recorded nothing


def test_promote_an_unknown_version_exits_2_naming_it(run_cli, workdir):
    result = run_cli("promote", "--version", "99", check=False)
    assert result.returncode == 2
    assert "no version 99 of 'lead-scoring' in the registry" in result.stderr
    client = MlflowClient()
    assert _champion(client) == "1" and len(_history(client)) == 1


def test_promote_with_a_zero_padded_version_does_not_confuse_rollback(run_cli, workdir):
    run_cli("promote", "--version", "01")
    assert _history(MlflowClient())[-1]["version"] == "1"
    result = run_cli("rollback", check=False)
    assert result.returncode == 2, result.stdout  # version 1 is the only champion there was


def test_retrain_after_the_champion_version_was_deleted(run_cli, workdir):
    client = MlflowClient()
    client.delete_model_version(MODEL, "1")
    assert _champion(client) is None  # MLflow drops the alias with the version

    result = run_cli("retrain", "--as-of", AS_OF, *LENIENT)
    assert "Promoted: lead-scoring version 2 is now the champion." in result.stdout
    assert _champion(client) == "2"
    for tags in _version_tags(client, "2"):
        assert tags["gate_decision"] == "promoted"
        assert tags["gate_champion_version"] == "none"
        gone = "pass: no champion: the last one, version 1, no longer exists"
        assert gone in tags["gate_reasons"]
    run = client.get_run(client.get_model_version(MODEL, "2").run_id)
    assert not any(name.startswith("champion_") for name in run.data.metrics)
    last = _history(client)[-1]
    assert (last["version"], last["previous"]) == ("2", "")

    # the only earlier champion is gone: nothing to roll back to, nor to promote
    rollback = run_cli("rollback", check=False)
    assert rollback.returncode == 2 and "no earlier champion" in rollback.stderr
    promote = run_cli("promote", "--version", "1", check=False)
    assert promote.returncode == 2 and "no version 1 of 'lead-scoring'" in promote.stderr
    assert _champion(client) == "2"


def test_two_concurrent_retrains_judge_against_each_others_champion(workdir):
    exe = Path(sys.executable).with_name("leadscore")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    jobs = []
    for i in range(2):
        with (workdir / f"job{i}.out").open("w") as out, (workdir / f"job{i}.err").open("w") as err:
            jobs.append(
                subprocess.Popen(
                    [str(exe), "retrain", "--as-of", AS_OF, *LENIENT],
                    cwd=workdir,
                    env=env,
                    stdout=out,
                    stderr=err,
                )
            )
    codes = [job.wait(timeout=600) for job in jobs]
    outputs = [(workdir / f"job{i}.out").read_text() for i in range(2)]
    errors = [(workdir / f"job{i}.err").read_text() for i in range(2)]
    assert codes == [0, 0], f"{outputs}\n{errors}"
    assert all("Promoted: lead-scoring version" in text for text in outputs)

    client = MlflowClient()
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{MODEL}'"))
    assert versions == [1, 2, 3]
    for version in ("1", "2", "3"):
        assert client.get_model_version(MODEL, version).status == "READY"
        assert load_bundle(MODEL, version).estimator is not None
    judged = {v: _version_tags(client, v)[1]["gate_champion_version"] for v in ("2", "3")}
    # the lock serialises them: the first judged against version 1, the second against the first
    assert judged == {"2": "1", "3": "2"}
    assert _champion(client) == "3"
    history = _history(client)
    assert [(e["version"], e["previous"]) for e in history] == [("1", ""), ("2", "1"), ("3", "2")]
    promotions = Counter(e["previous"] for e in history if e["action"] != "rollback")
    assert max(promotions.values()) == 1


def test_runs_compares_train_runs_with_intervals_and_marks_the_champion(run_cli, workdir):
    run_cli("train", "--as-of", AS_OF, "--set", "model.num_leaves=7")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("leadscore")
    train_runs = client.search_runs([experiment.experiment_id], order_by=["start_time ASC"])
    assert [r.data.tags["job"] for r in train_runs] == ["train", "train"]
    assert train_runs[0].data.tags["config_hash"] != train_runs[1].data.tags["config_hash"]
    for run in train_runs:
        tags, metrics = run.data.tags, run.data.metrics
        assert re.fullmatch(r"[0-9a-f]{12}", tags["config_hash"])
        assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", tags["git_commit"])
        assert re.fullmatch(r"[0-9a-f]{16}", tags["data_fingerprint"])
        assert tags["as_of"] == "2026-10-01T00:00:00+00:00"
        assert metrics["roc_auc_ci_low"] <= metrics["roc_auc"] <= metrics["roc_auc_ci_high"]
        top = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"report.html", "plots", "config.yaml"} <= top
        plots = {Path(a.path) for a in client.list_artifacts(run.info.run_id, "plots")}
        assert {p.stem for p in plots} == PLOTS and {p.suffix for p in plots} == {".png"}
        html = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/report.html")
        assert html.lstrip().lower().startswith("<!doctype html")
    # the same data and split: both are judged on the same holdout
    assert len({r.data.tags["data_fingerprint"] for r in train_runs}) == 1
    assert len({r.data.metrics["n_holdout"] for r in train_runs}) == 1

    records = json.loads(run_cli("runs", "--json").stdout)
    assert [r["run"] for r in records] == [r.info.run_name for r in reversed(train_runs)]
    assert [(r["version"], r["champion"]) for r in records] == [("2", False), ("1", True)]
    for record, run in zip(records, reversed(train_runs), strict=True):
        low, high = record["roc_auc_ci"]
        assert record["roc_auc"] == pytest.approx(run.data.metrics["roc_auc"])
        assert 0.5 < low <= record["roc_auc"] <= high <= 1

    table = run_cli("runs").stdout
    assert "(* = champion)" in table
    for record in records:
        line = next(row for row in table.splitlines() if record["run"] in row)
        low, high = record["roc_auc_ci"]
        assert f"{record['roc_auc']:.3f} [{low:.3f}, {high:.3f}]" in line
        assert re.search(r"\b0\.[89]\d\d \[0\.\d{3}, 0\.9\d\d\]", line)  # AUC [95% interval]
        marked = re.search(rf"│\s+{record['version']} \*\s+│", line) is not None
        assert marked == record["champion"]
