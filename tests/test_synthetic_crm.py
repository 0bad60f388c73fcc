import numpy as np
import pandas as pd
import pandas.testing as pdt

from leadscore.features.tables import normalise_label
from leadscore.pipeline.synthetic_crm import HISTORY_DAYS, generate_crm


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = generate_crm(500, seed=1), generate_crm(500, seed=1), generate_crm(500, seed=2)
    for name in ("accounts", "leads", "activities", "deals", "truth"):
        pdt.assert_frame_equal(a.tables()[name], b.tables()[name])
    assert not a.leads["created_at"].equals(c.leads["created_at"])


def test_history_shape(small_crm):
    leads, acts, deals = small_crm.leads, small_crm.activities, small_crm.deals
    span = (leads["created_at"].max() - leads["created_at"].min()).days
    assert HISTORY_DAYS - 30 <= span <= HISTORY_DAYS
    # leads arrive at a growing rate: the second year has more than the first
    midpoint = leads["created_at"].min() + pd.Timedelta(days=HISTORY_DAYS / 2)
    assert (leads["created_at"] >= midpoint).sum() > (leads["created_at"] < midpoint).sum()
    assert 10 <= len(acts) / len(leads) <= 30
    outcomes = deals["outcome"].value_counts(dropna=False)
    assert outcomes["won"] > 0 and outcomes["lost"] > 0 and deals["outcome"].isna().sum() > 0
    assert (deals["closed_at"].dropna() > deals.loc[deals["closed_at"].notna(), "created_at"]).all()
    assert leads["lead_id"].is_unique and deals["deal_id"].is_unique
    assert set(leads["account_id"].dropna()) <= set(small_crm.accounts["account_id"])
    assert (
        acts["occurred_at"] >= acts["lead_id"].map(leads.set_index("lead_id")["created_at"])
    ).all()


def test_planted_mess(small_crm):
    leads, acts, accounts = small_crm.leads, small_crm.activities, small_crm.accounts
    assert acts.duplicated().sum() > 0
    assert leads["seniority"].isna().mean() > 0.03
    assert accounts["employees"].isna().mean() > 0.05
    raw = accounts["industry"].dropna()
    assert raw.nunique() > normalise_label(raw).nunique()  # inconsistent capitalisation
    assert (accounts["industry"].value_counts() < 5).any()  # rare categories


def test_leak_is_only_filled_after_a_loss(small_crm):
    deals = small_crm.deals
    lost = set(deals.loc[deals["outcome"] == "lost", "lead_id"])
    filled = set(small_crm.leads.loc[small_crm.leads["disqualify_reason"].notna(), "lead_id"])
    assert filled == lost


def test_truth_is_a_probability_that_predicts_outcomes(small_crm):
    truth = small_crm.truth.set_index("lead_id")["p_won"]
    assert truth.between(0, 1).all()
    won = set(small_crm.deals.loc[small_crm.deals["outcome"] == "won", "lead_id"])
    is_won = truth.index.isin(won)
    assert truth[is_won].mean() > 2 * truth[~is_won].mean()


def test_drift_moves_channel_mix_towards_paid_search():
    crm = generate_crm(20_000, seed=5)
    leads = crm.leads.assign(source=normalise_label(crm.leads["source"]))
    first = leads["created_at"] < leads["created_at"].quantile(0.25)
    last = leads["created_at"] > leads["created_at"].quantile(0.75)
    share = lambda m: (leads.loc[m, "source"] == "paid_search").mean()  # noqa: E731
    assert share(last) > share(first) + 0.05
    assert np.isfinite(crm.truth["p_won"]).all()
