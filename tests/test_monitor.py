"""`leadscore monitor`: PSI against the training population, a backtest of the score history,
and exit codes a scheduler can alert on."""

from __future__ import annotations

import json
import sqlite3

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from leadscore.models.drift import fit_binning, psi
from leadscore.pipeline.errors import EXIT_ALERT

AS_OF = "2026-10-01"


def test_psi_is_zero_for_the_same_shares_and_matches_a_hand_computed_shift():
    same = np.array([0.2, 0.3, 0.5])
    assert psi(same, same) == 0.0
    expected, actual = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    by_hand = (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.75 - 0.5) * np.log(0.75 / 0.5)
    assert psi(expected, actual) == pytest.approx(by_hand)
    assert psi(expected, actual) == pytest.approx(0.2747, abs=1e-4)


def test_bins_cover_missing_values_and_unseen_categories():
    numbers = pd.Series([1.0, 2.0, 2.0, 2.0, 3.0, np.nan, 4.0, 5.0, 6.0, 7.0])
    binning = fit_binning(numbers, bins=4)
    assert binning.reference.sum() == pytest.approx(1.0)
    assert binning.reference[-1] == pytest.approx(0.1)  # the missing bin
    assert binning.shares(pd.Series([np.nan, np.nan]))[-1] == 1.0
    assert psi(binning.reference, binning.shares(numbers)) == pytest.approx(0.0)

    labels = pd.Series(["a"] * 6 + ["b"] * 3 + [None])
    categories = fit_binning(labels, top=1)
    assert categories.categories == ("a",)
    np.testing.assert_allclose(categories.reference, [0.6, 0.3, 0.1])  # a, other, missing
    np.testing.assert_allclose(categories.shares(pd.Series(["z", "a"])), [0.5, 0.5, 0.0])


@pytest.fixture
def workdir(trained_copy):
    return trained_copy(6000, 3, AS_OF)[0]


@pytest.mark.e2e
def test_monitor_alerts_on_drifted_data_and_not_without(run_cli, workdir):
    calm = run_cli("monitor", "--as-of", AS_OF, "--report", "calm.json", check=False)
    assert calm.returncode == 0, calm.stdout + calm.stderr
    assert "No alert" in calm.stdout
    report = json.loads((workdir / "calm.json").read_text())
    assert report["alerts"] == []
    score_psi = next(r["psi"] for r in report["drift"] if r["feature"] == "score")
    assert score_psi < 0.1

    run_cli(
        "demo-data", "--out", "drifted", "--leads", "6000", "--seed", "3", "--drift-days", "120"
    )
    drifted = run_cli(
        "monitor", "--as-of", AS_OF, "--data", "drifted", "--report", "drifted.json", check=False
    )
    assert drifted.returncode == EXIT_ALERT, drifted.stdout + drifted.stderr
    assert "ALERT PSI of feature source" in drifted.stdout
    report = json.loads((workdir / "drifted.json").read_text())
    assert any("source" in a for a in report["alerts"])

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("leadscore").experiment_id],
        filter_string="tags.job = 'monitor'",
    )
    assert sorted(r.data.tags["alert"] for r in runs) == ["false", "true"]
    assert all("psi_score" in r.data.metrics for r in runs)


@pytest.mark.e2e
def test_backtest_reads_the_history_and_alerts_when_past_scores_missed(run_cli, workdir):
    # an early as-of: too few of marketing's leads win to train on them alone
    run_cli("train", "--as-of", "2026-07-01", "--set", "lifecycle.sql_from=none")
    run_cli("score", "--as-of", "2026-07-01", "--output", "scores.db")  # the July model: v2
    ok = run_cli("monitor", "--as-of", AS_OF, "--report", "ok.json", check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    report = json.loads((workdir / "ok.json").read_text())
    [batch] = report["backtest"]
    assert batch["as_of"].startswith("2026-07-01")
    assert batch["wins"] >= 10 and batch["realized_auc"] > 0.8
    assert {b["grade"] for b in report["bands"]} >= {"A", "D"}

    # a nightly incremental batch holds only the rescored leads; the backtest judges the scores
    # in force then (the kept rows too), which is the current table the run left
    run_cli("score", "--as-of", "2026-07-15", "--output", "scores.db", "--changed-since", "last")
    with sqlite3.connect(workdir / "scores.db") as conn:
        in_force = conn.execute("SELECT COUNT(*) FROM lead_scores").fetchone()[0]
        rescored = conn.execute(
            "SELECT COUNT(*) FROM lead_score_history WHERE as_of LIKE '2026-07-15%'"
        ).fetchone()[0]
    assert 0 < rescored < in_force
    later = run_cli("monitor", "--as-of", "2026-10-20", "--report", "later.json", check=False)
    assert later.returncode == 0, later.stdout + later.stderr
    batches = {
        b["as_of"][:10]: b for b in json.loads((workdir / "later.json").read_text())["backtest"]
    }
    assert batches["2026-07-15"]["leads"] == in_force
    assert batches["2026-07-01"]["leads"] == batch["leads"]

    # the same history with its probabilities turned upside down: the scores ranked backwards
    with sqlite3.connect(workdir / "scores.db") as conn:
        conn.execute("UPDATE lead_score_history SET probability = 1.0 - probability")
    bad = run_cli("monitor", "--as-of", AS_OF, "--report", "bad.json", check=False)
    assert bad.returncode == EXIT_ALERT, bad.stdout + bad.stderr
    assert "realized AUC" in bad.stdout
    [batch] = json.loads((workdir / "bad.json").read_text())["backtest"]
    assert batch["realized_auc"] == pytest.approx(1 - report["backtest"][0]["realized_auc"])


@pytest.mark.e2e
def test_monitor_without_history_or_with_a_bad_threshold_says_so(run_cli, workdir):
    result = run_cli("monitor", "--as-of", AS_OF, "--output", "nowhere.db", check=False)
    assert result.returncode == 0
    assert "no score history" in result.stdout
    bad = run_cli("monitor", "--set", "monitor.psi_warn=0.5", "--set", "monitor.psi_alert=0.2",
                  check=False)  # fmt: skip
    assert bad.returncode == 2
    assert "psi_warn must not exceed psi_alert" in bad.stderr
