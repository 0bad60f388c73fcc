"""`attribute_features` before issue 16 (frozen reference)."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from leadscore.features.attributes import (
    _attribute_columns,
    _is_number,
    _values_at,
    history_fields,
)
from leadscore.features.tables import CrmTables, normalise_label, utc_datetime64


def _as_feature(values: pd.Series, number: bool) -> pd.Series:
    """Float64 (missing as NaN) or a normalised text category of dtype object (missing as None).

    The kind is decided from the whole column, not from the rows at hand, so a feature has the
    same dtype whichever leads are open at a cutoff.
    """
    if number:
        as_float = values.map(lambda v: float(v) if isinstance(v, bool | np.bool_) else v)
        return pd.to_numeric(as_float, errors="coerce").astype("float64")
    labels = normalise_label(values)
    return pd.Series(
        np.where(labels.notna(), labels.astype(object), None), index=values.index, dtype=object
    )


def attribute_features(
    tables: CrmTables,
    spine: pd.DataFrame,
    skip: Collection[str],
    only: Collection[str] | None = None,
) -> pd.DataFrame:
    """Lead columns by their own names, account columns as `account_<name>`, plus lead age.

    Columns named in `skip` (identifiers, PII, excluded leaks; case-insensitive), columns whose
    names say they hold contact details (email, phone) and timestamp columns are never features.
    A column with a field history (`tables.history`) takes, at each cutoff, the value of its
    newest change strictly before the cutoff (missing before the first); the others have no
    timestamp of their own and are taken as known from creation.
    """
    leads = tables.leads.set_index("lead_id")
    lead_cols = _attribute_columns(leads.drop(columns=["account_id"]), skip, only)
    rows = leads.reindex(spine["lead_id"].to_numpy())
    timed = history_fields(tables)
    cutoffs = spine["cutoff"]
    out = {}
    for c in lead_cols:
        values = rows[c]
        if ("lead", c) in timed:
            values = _values_at(tables.history, "lead_id", c, spine["lead_id"], cutoffs)
        out[c] = _as_feature(values, _is_number(leads[c])).to_numpy()

    accounts = tables.accounts.set_index("account_id")
    account_cols = _attribute_columns(accounts, skip, only, prefix="account_")
    account_ids = rows["account_id"].reset_index(drop=True)
    account_rows = accounts.reindex(account_ids.to_numpy())
    for c in account_cols:
        values = account_rows[c]
        if ("account", c) in timed:
            values = _values_at(tables.history, "account_id", c, account_ids, cutoffs)
        out[f"account_{c}"] = _as_feature(values, _is_number(accounts[c])).to_numpy()

    age = (utc_datetime64(spine["cutoff"]) - utc_datetime64(rows["created_at"])) / np.timedelta64(
        1, "D"
    )
    out["lead_age_days"] = age.astype("float64")
    index = pd.MultiIndex.from_frame(spine[["lead_id", "cutoff"]])
    return pd.DataFrame(
        {c: pd.Series(v, index=index, dtype=v.dtype) for c, v in out.items()}, index=index
    )
