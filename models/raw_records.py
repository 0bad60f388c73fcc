"""Lead records as a CRM or a web form holds them, turned into the tables the feature builders
read, so that a registered model scores raw records with the same code as a batch.

A record is one lead in the canonical leads columns (`lead_id`, `created_at`, its attributes,
`account_id`), optionally with:
- its account's attributes, as `account_<column>`;
- its activities, as a list of `{occurred_at, activity_type}` in the column `activities`;
- its deal state: `deal_created_at`, when an opportunity was opened for it;
- its account's history with us, as a CRM rolls it up: `account_won_deals`,
  `account_lost_deals`, `account_other_leads`. Without them they are counted from the
  records passed (a batch computes them from the whole CRM).

`InputSchema` is what the model was trained with; `to_tables` refuses a record that does not
fit it, naming the column.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from leadscore.features.screening import is_pii_name
from leadscore.features.tables import CrmTables, clean, crm_as_of, empty_history, snake_case

ROLLUPS = ("account_won_deals", "account_lost_deals", "account_other_leads")
REQUIRED = ("lead_id", "created_at")
ACTIVITIES = "activities"
DEAL_CREATED = "deal_created_at"


class BadRecords(ValueError):
    """Records that do not fit the model's input, with the column named."""


@dataclass(frozen=True)
class InputSchema:
    """The canonical columns the model was trained on and their kinds (number, text, time)."""

    leads: dict[str, str]
    accounts: dict[str, str] = field(default_factory=dict)
    lead_id_kind: str = "text"
    account_id_kind: str = "text"

    @classmethod
    def of(cls, tables: CrmTables, pii: Collection[str] = ()) -> InputSchema:
        """The columns of `tables`, less contact details (`pii` and names that say so): the
        model never reads them, and its signature and example must not hold them."""
        private = {snake_case(p) for p in pii}

        def kinds(frame: pd.DataFrame, skip: tuple[str, ...]) -> dict[str, str]:
            return {
                str(c): _kind(frame[c])
                for c in frame.columns
                if c not in skip and snake_case(str(c)) not in private and not is_pii_name(str(c))
            }

        accounts = {
            c: k
            for c, k in kinds(tables.accounts, ("account_id",)).items()
            if snake_case(f"account_{c}") not in private
        }
        return cls(
            leads=kinds(tables.leads, ("lead_id", "created_at", "account_id")),
            accounts=accounts,
            lead_id_kind=_kind(tables.leads["lead_id"]),
            account_id_kind=_kind(tables.leads["account_id"]),
        )

    def columns(self) -> dict[str, str]:
        """Every input column a record may have, and its kind."""
        return {
            "lead_id": self.lead_id_kind,
            "created_at": "time",
            "account_id": self.account_id_kind,
            **self.leads,
            **{f"account_{c}": k for c, k in self.accounts.items()},
            ACTIVITIES: "activities",
            DEAL_CREATED: "time",
            **dict.fromkeys(ROLLUPS, "number"),
        }


def _kind(values: pd.Series) -> str:
    if pd.api.types.is_datetime64_any_dtype(values):
        return "time"
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return "number"
    return "text"


def _times(values: pd.Series, column: str) -> pd.Series:
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
    bad = parsed.isna() & values.notna() & (values.astype(str).str.strip() != "")
    if bad.any():
        raise BadRecords(
            f"column {column!r}: {values[bad].iloc[0]!r} is not a timestamp (expected ISO "
            "8601, e.g. 2026-11-01T09:30:00Z)"
        )
    return parsed


def _numbers(values: pd.Series, column: str) -> pd.Series:
    as_float = values.map(lambda v: float(v) if isinstance(v, bool | np.bool_) else v)
    parsed = pd.to_numeric(as_float, errors="coerce")
    bad = parsed.isna() & values.notna()
    if bad.any():
        raise BadRecords(f"column {column!r}: {values[bad].iloc[0]!r} is not a number")
    return parsed.astype("float64")


def check(records: pd.DataFrame, schema: InputSchema) -> None:
    """Refuse records missing a required column or holding one the model does not know."""
    known = schema.columns()
    missing = [c for c in REQUIRED if c not in records.columns]
    if missing:
        raise BadRecords(f"missing required column(s) {missing}; expected lead_id, created_at")
    unknown = [str(c) for c in records.columns if c not in known]
    if unknown:
        raise BadRecords(
            f"unknown column(s) {unknown}: the model takes {', '.join(known)} (see its signature)"
        )
    if records["lead_id"].isna().any() or records["lead_id"].duplicated().any():
        raise BadRecords("column 'lead_id': every record needs its own, non-empty lead_id")


def to_tables(records: pd.DataFrame, schema: InputSchema, as_of: pd.Timestamp) -> CrmTables:
    """The CRM as the records describe it, viewed as of `as_of` like a batch."""
    check(records, schema)
    records = records.reset_index(drop=True)
    ids = records["lead_id"]
    if schema.lead_id_kind == "number":
        ids = _numbers(ids, "lead_id").astype("int64")
    created = _times(records["created_at"], "created_at")
    leads = pd.DataFrame({"lead_id": ids, "created_at": created})
    if leads["created_at"].isna().any():
        raise BadRecords("column 'created_at': every record needs one")
    account = records.get("account_id", pd.Series(None, index=records.index, dtype=object))
    if schema.account_id_kind == "number":
        account = _numbers(account, "account_id").astype("Int64")
    leads["account_id"] = account
    for column, kind in schema.leads.items():
        values = records[column] if column in records else pd.Series(None, index=records.index)
        leads[column] = _typed(values, kind, column)
    accounts = _accounts(records, leads, schema)
    activities = _activities(records, leads)
    deals = pd.DataFrame(
        {
            "deal_id": np.arange(len(leads)),
            "lead_id": leads["lead_id"],
            "created_at": _times(records[DEAL_CREATED], DEAL_CREATED)
            if DEAL_CREATED in records
            else pd.Series(pd.NaT, index=leads.index, dtype="datetime64[ns, UTC]"),
            "closed_at": pd.Series(pd.NaT, index=leads.index, dtype="datetime64[ns, UTC]"),
            "outcome": pd.Series(None, index=leads.index, dtype=object),
        }
    ).dropna(subset=["created_at"])
    tables = CrmTables(accounts, leads, activities, deals, empty_history())
    return clean(crm_as_of(tables, as_of))


def _typed(values: pd.Series, kind: str, column: str) -> pd.Series:
    if kind == "number":
        return _numbers(values, column)
    if kind == "time":
        return _times(values, column)
    return values.astype(object).where(values.notna(), None)


def _accounts(records: pd.DataFrame, leads: pd.DataFrame, schema: InputSchema) -> pd.DataFrame:
    frame = pd.DataFrame({"account_id": leads["account_id"]})
    for column, kind in schema.accounts.items():
        name = f"account_{column}"
        values = records[name] if name in records else pd.Series(None, index=records.index)
        frame[column] = _typed(values, kind, name)
    return frame.dropna(subset=["account_id"]).drop_duplicates("account_id")


def _activities(records: pd.DataFrame, leads: pd.DataFrame) -> pd.DataFrame:
    rows: list[tuple[object, object, object]] = []
    if ACTIVITIES in records:
        for lead, items in zip(leads["lead_id"], records[ACTIVITIES], strict=True):
            if items is None or (isinstance(items, float) and np.isnan(items)):
                continue
            for item in items:
                if not isinstance(item, dict) or not {"occurred_at", "activity_type"} <= set(item):
                    raise BadRecords(
                        "column 'activities': each activity is {occurred_at, activity_type}, "
                        f"got {item!r}"
                    )
                rows.append((lead, item["occurred_at"], item["activity_type"]))
    frame = pd.DataFrame(rows, columns=["lead_id", "occurred_at", "activity_type"])
    frame["lead_id"] = frame["lead_id"].astype(leads["lead_id"].dtype)
    frame["occurred_at"] = _times(frame["occurred_at"], "activities.occurred_at").astype(
        "datetime64[ns, UTC]"
    )
    return frame


def rollups(records: pd.DataFrame) -> pd.DataFrame:
    """The account rollups the records carry (NaN where a record has none), and the win rate
    they imply."""
    out = pd.DataFrame(
        {c: _numbers(records[c], c) if c in records else np.nan for c in ROLLUPS},
        index=records.index,
    )
    closed = out["account_won_deals"] + out["account_lost_deals"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["account_win_rate"] = np.where(closed > 0, out["account_won_deals"] / closed, np.nan)
    return out


def example_records(
    tables: CrmTables, as_of: pd.Timestamp, n: int = 2, schema: InputSchema | None = None
) -> pd.DataFrame:
    """The first `n` leads open at `as_of` as raw records (times as ISO text), with their
    account's attributes, activities and deal state: the model's input example. With a
    `schema`, only its columns (no contact details)."""
    leads = tables.leads[tables.leads["created_at"] < as_of].head(n).reset_index(drop=True)
    if schema is not None:
        keep = ["lead_id", "created_at", "account_id", *schema.leads]
        leads = leads[[c for c in leads.columns if c in keep]]
        tables = replace(tables, accounts=tables.accounts[["account_id", *schema.accounts]])
    out = leads.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].map(lambda t: None if pd.isna(t) else t.isoformat())
        elif pd.api.types.is_numeric_dtype(out[column]) or pd.api.types.is_bool_dtype(out[column]):
            if column != "lead_id":  # as JSON carries them: floats, missing as NaN
                out[column] = pd.to_numeric(out[column]).astype("float64")
        else:
            out[column] = out[column].astype(object).where(out[column].notna(), None)
    accounts = tables.accounts.set_index("account_id")
    for column in accounts.columns:
        values = accounts[column].reindex(leads["account_id"].to_numpy()).to_numpy()
        kind = _kind(accounts[column])
        out[f"account_{column}"] = (
            pd.to_numeric(pd.Series(values)).astype("float64").to_numpy()
            if kind == "number"
            else [None if pd.isna(v) else v for v in values]
        )
    acts = tables.activities[tables.activities["lead_id"].isin(leads["lead_id"])]
    acts = acts[acts["occurred_at"] < as_of]
    out[ACTIVITIES] = [
        [
            {"occurred_at": t.isoformat(), "activity_type": str(a)}
            for t, a in zip(group["occurred_at"], group["activity_type"], strict=True)
        ]
        for _, group in ((lead, acts[acts["lead_id"] == lead].tail(5)) for lead in leads["lead_id"])
    ]
    first_deal = tables.deals[tables.deals["created_at"] < as_of].groupby("lead_id")["created_at"]
    deal = first_deal.min().reindex(leads["lead_id"].to_numpy())
    out[DEAL_CREATED] = [None if pd.isna(t) else t.isoformat() for t in deal]
    return out
