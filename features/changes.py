"""Which leads' features may have changed since a time: the leads an incremental run rescores."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscore.features.tables import CrmTables

UPDATED_AT = "updated_at"  # optional column of leads and accounts: when a row was last edited


def changed_lead_ids(tables: CrmTables, since: pd.Timestamp) -> np.ndarray:
    """Leads with anything stamped at or after `since` that a feature reads.

    - the lead is new, or has new activities;
    - a deal of the lead was created or closed (opportunity features);
    - the lead's account gained a lead, or a deal of the account's closed (account history);
    - the lead's or its account's row was edited, where the table has an `updated_at` column.
      Without one, an edited attribute is not seen here; a full run picks it up.

    `tables` are the tables as of the scoring time (nothing at or after it).
    """
    leads, deals = tables.leads, tables.deals
    new_lead = leads["created_at"] >= since
    closed = deals["closed_at"] >= since
    changed = [
        leads.loc[new_lead, "lead_id"],
        pd.Series(new_activity_lead_ids(tables.activities, since)),
        deals.loc[(deals["created_at"] >= since) | closed, "lead_id"],
    ]
    if UPDATED_AT in leads.columns:
        changed.append(leads.loc[_stamped_since(leads[UPDATED_AT], since), "lead_id"])
    accounts = [
        leads.loc[new_lead, "account_id"],
        leads.loc[leads["lead_id"].isin(deals.loc[closed, "lead_id"]), "account_id"],
    ]
    if "account_id" in deals.columns:
        accounts.append(deals.loc[closed, "account_id"])
    if UPDATED_AT in tables.accounts.columns:
        edited = _stamped_since(tables.accounts[UPDATED_AT], since)
        accounts.append(tables.accounts.loc[edited, "account_id"])
    touched = pd.concat(accounts).dropna().unique()
    changed.append(leads.loc[leads["account_id"].isin(touched), "lead_id"])
    return pd.concat(changed).dropna().unique()


def new_activity_lead_ids(activities: pd.DataFrame, since: pd.Timestamp) -> np.ndarray:
    """Leads with an activity at or after `since` (for activities read a part at a time)."""
    return activities.loc[activities["occurred_at"] >= since, "lead_id"].unique()


def _stamped_since(values: pd.Series, since: pd.Timestamp) -> pd.Series:
    stamps = pd.to_datetime(values, utc=True, errors="coerce")
    return (stamps >= since).fillna(False)
