"""Where a lead is in its lifecycle at a moment: with marketing until sales accepts it (SQL),
then with sales.

By default sales accepts a lead when its first opportunity (deal) is created. An export that
records the hand-over itself can say so instead: a leads column holding the time the lead
became SQL (HubSpot's lifecycle-stage dates), or the first change of a status field to an
accepting value in the attribute history (Salesforce lead status history). Either way only
what happened strictly before a moment decides the stage at it, as for every feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from leadscore.features.tables import CrmTables, lookup, snake_case, utc_datetime64

MARKETING = "marketing"  # not yet accepted by sales: the lead score's population
SALES = "sales"  # accepted (SQL): an opportunity's business, never an MQL
STAGES = (MARKETING, SALES)


@dataclass(frozen=True)
class LifecycleRule:
    """How to tell when sales accepted a lead (see `LifecycleConfig`)."""

    sql_from: str = "opportunity"  # opportunity, column, status_history or none
    sql_column: str | None = None
    status_field: str | None = None
    sql_values: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.sql_from != "none"


def leads_column(leads: pd.DataFrame, name: str) -> str | None:
    """The leads column `name` means, matched as names are everywhere (case, spaces,
    punctuation ignored), or None."""
    wanted = snake_case(name)
    return next((str(c) for c in leads.columns if snake_case(str(c)) == wanted), None)


def accepted_at(tables: CrmTables, rule: LifecycleRule) -> pd.Series:
    """Per lead id, when sales accepted the lead (UTC; NaT while it has not been)."""
    ids = tables.leads["lead_id"]
    if rule.sql_from == "none":
        return pd.Series(pd.NaT, index=ids.to_numpy(), dtype="datetime64[ns, UTC]")
    if rule.sql_from == "column":
        column = leads_column(tables.leads, rule.sql_column or "")
        if column is None:
            raise ValueError(f"lifecycle.sql_column {rule.sql_column!r} is not a leads column")
        moments = pd.to_datetime(tables.leads[column], utc=True, errors="coerce", format="mixed")
        return _utc(moments, ids)
    if rule.sql_from == "status_history":
        first = _first_status(tables.history, rule)
    else:
        deals = tables.deals[["lead_id", "created_at"]].dropna()
        first = deals.groupby("lead_id")["created_at"].min()
    return _utc(pd.to_datetime(lookup(first, ids), utc=True), ids)


def _utc(moments: pd.Series, ids: pd.Series) -> pd.Series:
    """Times (tz-aware UTC, nanoseconds) indexed by lead id."""
    index = pd.DatetimeIndex(moments).as_unit("ns")
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return pd.Series(index, index=ids.to_numpy())


def stages_at(accepted: pd.Series, spine: pd.DataFrame) -> np.ndarray:
    """Each (lead_id, cutoff) row's stage: sales once accepted strictly before the cutoff."""
    when = utc_datetime64(lookup(accepted, spine["lead_id"]))
    with_sales = when < utc_datetime64(spine["cutoff"])  # NaT compares False
    return np.where(with_sales, SALES, MARKETING).astype(object)


def lead_stages(tables: CrmTables, spine: pd.DataFrame, rule: LifecycleRule | None) -> np.ndarray:
    """`stages_at` for a spine, every row marketing's when there is no lifecycle."""
    if rule is None or not rule.active:
        return np.full(len(spine), MARKETING, dtype=object)
    return stages_at(accepted_at(tables, rule), spine)


def _first_status(history: pd.DataFrame, rule: LifecycleRule) -> pd.Series:
    """Per lead, the first change of the status field to an accepting value."""
    if history.empty:
        return pd.Series([], dtype="datetime64[ns, UTC]")
    wanted = {snake_case(v) for v in rule.sql_values}
    field = history["field"].astype(str).map(snake_case) == snake_case(rule.status_field or "")
    value = history["value"].astype(str).map(snake_case).isin(wanted)
    rows = history.loc[history["lead_id"].notna() & field & value]
    return rows.groupby("lead_id")["changed_at"].min()
