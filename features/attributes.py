"""Who the lead is: lead and account attributes as of the cutoff, and the lead's age."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from leadscore.features.descriptions import FeatureInfo, column_label, company_label, unit_of
from leadscore.features.screening import is_pii_name
from leadscore.features.tables import CrmTables, normalise_label, snake_case, utc_datetime64


def _attribute_columns(
    frame: pd.DataFrame, skip: Collection[str], only: Collection[str] | None, prefix: str = ""
) -> list[str]:
    """Columns that may be features: not skipped (case-insensitively), not PII, not timestamps,
    and, in strict mode (`only`), vouched for by name (an account column as its own name or
    as `account_<name>`)."""
    skipped = {snake_case(s) for s in skip}
    vouched = None if only is None else {snake_case(o) for o in only}
    return [
        c
        for c in frame.columns
        if snake_case(str(c)) not in skipped
        and not is_pii_name(str(c))
        and not pd.api.types.is_datetime64_any_dtype(frame[c])
        and (
            vouched is None
            or snake_case(str(c)) in vouched
            or snake_case(f"{prefix}{c}") in vouched
        )
    ]


def _is_number(column: pd.Series) -> bool:
    """Numbers and booleans (also booleans with gaps, which pandas stores as objects)."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return True
    if column.dtype != object:
        return False
    return pd.api.types.infer_dtype(column, skipna=True) == "boolean"  # all-missing: "empty"


def _as_feature(values: pd.Series, number: bool) -> pd.Series:
    """Float64 (missing as NaN) or a normalised text category of dtype object (missing as None).

    The kind is decided from the whole column, not from the rows at hand, so a feature has the
    same dtype whichever leads are open at a cutoff.
    """
    if number:
        if values.dtype == object:  # booleans with gaps: True/False/None as objects
            values = values.map(lambda v: float(v) if isinstance(v, bool | np.bool_) else v)
        elif pd.api.types.is_bool_dtype(values):
            values = values.astype("float64")
        return pd.to_numeric(values, errors="coerce").astype("float64")
    # normalised once per distinct value, then spread to the rows
    codes, distinct = pd.factorize(values, use_na_sentinel=True)
    labels = normalise_label(pd.Series(distinct, dtype=object))
    text = np.where(labels.notna(), labels.astype(object), None)
    return pd.Series(np.append(text, None)[codes], index=values.index, dtype=object)


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


def history_fields(tables: CrmTables) -> set[tuple[str, str]]:
    """The (lead or account, column) pairs that have a field history: timed, not untimed."""
    history = tables.history
    if history.empty:
        return set()
    lead = history["lead_id"].notna()
    return {("lead", f) for f in history.loc[lead, "field"].unique()} | {
        ("account", f) for f in history.loc[~lead & history["account_id"].notna(), "field"].unique()
    }


def _values_at(
    history: pd.DataFrame, key: str, column: str, ids: pd.Series, cutoffs: pd.Series
) -> pd.Series:
    """Each (id, cutoff)'s value of `column`: its newest change strictly before the cutoff,
    missing before the first (only rows stamped before a cutoff are ever read)."""
    changes = history.loc[(history["field"] == column) & history[key].notna()]
    left = pd.DataFrame(
        {  # ids compared as values (a lead without an account has none: nothing to look up)
            "id": ids.astype(object).where(ids.notna(), None).to_numpy(),
            "cutoff": pd.DatetimeIndex(cutoffs).as_unit("ns"),
            "row": np.arange(len(ids)),
        }
    ).sort_values("cutoff", kind="stable")
    right = pd.DataFrame(
        {
            "id": changes[key].astype(object).to_numpy(),
            "changed_at": pd.DatetimeIndex(changes["changed_at"]).as_unit("ns"),
            "value": changes["value"].to_numpy(),
        }
    ).sort_values("changed_at", kind="stable")
    merged = pd.merge_asof(
        left,
        right,
        left_on="cutoff",
        right_on="changed_at",
        by="id",
        allow_exact_matches=False,  # a change at the cutoff itself is not known yet
        direction="backward",
    )
    return merged.sort_values("row")["value"].reset_index(drop=True)


def _is_flag(column: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(column):
        return True
    return column.dtype == object and pd.api.types.infer_dtype(column, skipna=True) == "boolean"


def spellings(values: pd.Series) -> dict[str, str]:
    """Each normalised label of a text column and its commonest spelling in the data, so a
    reason quotes a value as the export has it ('Olark Chat', 'a7982125'), not normalised."""
    text = values.dropna()
    if text.empty:
        return {}
    frame = pd.DataFrame(
        {"label": normalise_label(text).to_numpy(), "raw": text.astype(str).str.strip().to_numpy()}
    ).dropna()
    common = frame.value_counts(["label", "raw"]).reset_index().drop_duplicates("label")
    return dict(zip(common["label"], common["raw"], strict=True))


def _info(values: pd.Series, label: str) -> FeatureInfo:
    if _is_flag(values):
        return FeatureInfo("flag", label)
    if _is_number(values):
        return FeatureInfo("number", label, unit=unit_of(str(values.name))[1])
    return FeatureInfo("category", label, spellings=spellings(values))


def attribute_info(
    tables: CrmTables,
    skip: Collection[str],
    names: Collection[str] | None = None,
    only: Collection[str] | None = None,
) -> dict[str, FeatureInfo]:
    """How each attribute feature reads: its column as a person names it, its kind, and its
    values as the data spell them. `names` limits the work to these features."""
    leads = tables.leads.drop(columns=["lead_id", "account_id"])
    accounts = tables.accounts.drop(columns=["account_id"])
    wanted = (lambda name: True) if names is None else set(names).__contains__
    infos = {
        c: _info(leads[c], column_label(str(c)))
        for c in _attribute_columns(leads, skip, only)
        if wanted(c)
    }
    for c in _attribute_columns(accounts, skip, only, prefix="account_"):
        if wanted(f"account_{c}"):
            infos[f"account_{c}"] = _info(accounts[c], company_label(str(c)))
    infos["lead_age_days"] = FeatureInfo("lead_age")
    return infos
