"""Acceptance: scores at T recover most of the hidden propensity's ranking of what happened next."""

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

pytestmark = pytest.mark.e2e


def test_scores_at_t_reach_85_percent_of_the_hidden_propensity(run_cli, demo_config, tmp_path):
    t = "2026-05-01"
    run_cli("demo-data", "--out", "demo_data", "--leads", "20000", "--seed", "11")
    run_cli("train", "--as-of", t)
    run_cli("score", "--as-of", t, "--output", "scores.parquet")

    moment = pd.Timestamp(t, tz="UTC")
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    deals = pd.read_parquet(tmp_path / "demo_data" / "deals.parquet")
    truth = pd.read_parquet(tmp_path / "demo_data" / "truth.parquet").set_index("lead_id")
    won_after = deals.loc[(deals["outcome"] == "won") & (deals["closed_at"] >= moment), "lead_id"]
    y = scores["lead_id"].isin(won_after)
    assert y.sum() > 50

    ours = roc_auc_score(y, scores["probability"])
    hidden = roc_auc_score(y, scores["lead_id"].map(truth["p_won"]))
    assert (ours - 0.5) / (hidden - 0.5) >= 0.85, (ours, hidden)
