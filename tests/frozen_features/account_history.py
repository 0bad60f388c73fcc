"""`account_history_features` before issue 16 (frozen reference)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscore.features.tables import CrmTables, lookup


def account_history_features(tables: CrmTables, spine: pd.DataFrame) -> pd.DataFrame:
    """Earlier deals won and lost by the lead's account, its win rate, and its other leads.

    Uses deals closed strictly before the cutoff and leads created strictly before it. A deal's
    account is its own `account_id` when the deals table has one, else its lead's, if that lead
    existed before the cutoff (a lead created later says nothing about the account then). Leads
    without an account get NaN.
    """
    # Only the columns and accounts this spine needs: scoring calls this once per chunk of a
    # table of millions of leads, and copying every column of every lead dominated.
    leads_by_id = tables.leads[["lead_id", "account_id", "created_at"]].set_index("lead_id")
    lead_account = leads_by_id["account_id"]
    accounts = pd.unique(lookup(lead_account, spine["lead_id"]).dropna().to_numpy())
    deals = tables.deals
    via_lead = lookup(lead_account, deals["lead_id"])
    own = (
        deals["account_id"]
        if "account_id" in deals.columns
        else pd.Series(None, index=deals.index, dtype=object)
    )
    deals = deals.assign(
        account_id=own.where(own.notna(), via_lead),
        via_lead=own.isna(),
        lead_created=lookup(leads_by_id["created_at"], deals["lead_id"]),
    )
    deals = deals[deals["closed_at"].notna().to_numpy() & deals["account_id"].isin(accounts)]
    leads = leads_by_id[leads_by_id["account_id"].isin(accounts).to_numpy()]
    blocks = []
    for cutoff, group in spine.groupby("cutoff", sort=True):
        account = group["lead_id"].map(lead_account)
        known = ~deals["via_lead"] | (deals["lead_created"] < cutoff)
        closed = deals[(deals["closed_at"] < cutoff) & known]
        won = closed[closed["outcome"] == "won"].groupby("account_id").size()
        lost = closed[closed["outcome"] == "lost"].groupby("account_id").size()
        earlier_leads = leads[leads["created_at"] < cutoff].groupby("account_id").size()
        has_account = account.notna().to_numpy()
        n_won = np.where(has_account, account.map(won).fillna(0).to_numpy(dtype=float), np.nan)
        n_lost = np.where(has_account, account.map(lost).fillna(0).to_numpy(dtype=float), np.nan)
        n_leads = account.map(earlier_leads).fillna(1).to_numpy(dtype=float) - 1
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(n_won + n_lost > 0, n_won / (n_won + n_lost), np.nan)
        index = pd.MultiIndex.from_frame(group[["lead_id", "cutoff"]])
        blocks.append(
            pd.DataFrame(
                {
                    "account_won_deals": n_won,
                    "account_lost_deals": n_lost,
                    "account_win_rate": rate,
                    "account_other_leads": np.where(has_account, n_leads, np.nan),
                },
                index=index,
            )
        )
    return (
        pd.concat(blocks)
        if blocks
        else pd.DataFrame(
            columns=[
                "account_won_deals",
                "account_lost_deals",
                "account_win_rate",
                "account_other_leads",
            ],
            dtype="float64",
        )
    )
