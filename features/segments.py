"""The columns a holdout is broken down by (source, industry, region, ...)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscore.features.tables import CrmTables

DEFAULT_SEGMENTS = ("source", "industry", "region", "country")


class UnknownSegment(ValueError):
    """A configured segment that is neither a leads nor an accounts column."""


def segment_columns(
    tables: CrmTables, lead_ids: pd.Series, names: tuple[str, ...] | None
) -> pd.DataFrame:
    """The segment columns of `lead_ids`: a leads column by its name, else the account's column
    as `account_<name>`. Configured names the data lack raise UnknownSegment; by default, those
    of DEFAULT_SEGMENTS the data have."""
    leads = tables.leads.set_index("lead_id")
    accounts = tables.accounts.set_index("account_id")
    account_of = leads["account_id"].reindex(lead_ids.to_numpy())
    columns: dict[str, np.ndarray] = {}
    for name in names if names is not None else DEFAULT_SEGMENTS:
        if name in leads.columns and name != "account_id":
            columns[name] = leads[name].reindex(lead_ids.to_numpy()).to_numpy()
        if name in accounts.columns:
            columns[f"account_{name}"] = accounts[name].reindex(account_of.to_numpy()).to_numpy()
        if names is not None and name not in leads.columns and name not in accounts.columns:
            raise UnknownSegment(
                f"evaluation.segments names {name!r}, which is neither a leads nor an accounts "
                f"column (leads: {', '.join(map(str, leads.columns))}; accounts: "
                f"{', '.join(map(str, accounts.columns))})"
            )
    return pd.DataFrame(columns, index=range(len(lead_ids)))
