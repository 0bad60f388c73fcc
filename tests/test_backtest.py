"""Acceptance: scores at T recover most of the hidden propensity's ranking of what happened
next, for the leads marketing holds (no opportunity yet) that the lead model is for; and
nothing already with sales is handed over."""

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
    with_deal = set(deals.loc[deals["created_at"] < moment, "lead_id"])
    assert set(scores.loc[scores["stage"] == "sales", "lead_id"]) == with_deal & set(
        scores["lead_id"]
    )
    assert not scores.loc[scores["stage"] == "sales", "mql"].any()
    marketing = scores[scores["stage"] == "marketing"]
    assert set(marketing["grade"]) == {"A", "B", "C", "D"}
    assert marketing["mql"].sum() > 0

    won_after = deals.loc[(deals["outcome"] == "won") & (deals["closed_at"] >= moment), "lead_id"]
    for name, leads in (("all open leads", scores), ("no opportunity yet", marketing)):
        y = leads["lead_id"].isin(won_after)
        assert y.sum() > 50, name
        ours = roc_auc_score(y, leads["probability"])
        hidden = roc_auc_score(y, leads["lead_id"].map(truth["p_won"]))
        assert (ours - 0.5) / (hidden - 0.5) >= 0.85, (name, ours, hidden)
