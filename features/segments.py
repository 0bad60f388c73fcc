"""The columns a holdout is broken down by (source, industry, region, ...)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscore.features.tables import CrmTables, snake_case

DEFAULT_SEGMENTS = ("source", "industry", "region", "country")


class UnknownSegment(ValueError):
    """A configured segment that is neither a leads nor an accounts column."""


def segment_columns(
    tables: CrmTables, lead_ids: pd.Series, names: tuple[str, ...] | None
) -> pd.DataFrame:
    """The segment columns of `lead_ids`: a leads column by its name, else the account's column
    as `account_<name>`. Names match as the config's mapping does, ignoring case, spaces and
    punctuation (`Region` finds `region`). Configured names the data lack raise
    UnknownSegment; by default, those of DEFAULT_SEGMENTS the data have."""
    leads = tables.leads.set_index("lead_id")
    accounts = tables.accounts.set_index("account_id")
    account_of = leads["account_id"].reindex(lead_ids.to_numpy())
    lead_names = {snake_case(str(c)): c for c in leads.columns if c != "account_id"}
    account_names = {snake_case(str(c)): c for c in accounts.columns}
    columns: dict[str, np.ndarray] = {}
    for wanted in names if names is not None else DEFAULT_SEGMENTS:
        key = snake_case(wanted)
        lead_column, account_column = lead_names.get(key), account_names.get(key)
        if lead_column is not None:
            columns[str(lead_column)] = leads[lead_column].reindex(lead_ids.to_numpy()).to_numpy()
        if account_column is not None:
            values = accounts[account_column].reindex(account_of.to_numpy()).to_numpy()
            columns[f"account_{account_column}"] = values
        if names is not None and lead_column is None and account_column is None:
            raise UnknownSegment(
                f"evaluation.segments names {wanted!r}, which is neither a leads nor an accounts "
                f"column (leads: {', '.join(map(str, leads.columns))}; accounts: "
                f"{', '.join(map(str, accounts.columns))})"
            )
    return pd.DataFrame(columns, index=range(len(lead_ids)))
