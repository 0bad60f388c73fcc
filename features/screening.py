"""Columns that must not become features whatever the config says: PII and identifiers."""

from __future__ import annotations

import re

import pandas as pd

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", re.IGNORECASE)
PII_NAME_PARTS = ("email", "e_mail", "phone", "mobile")


def is_pii_name(column: str) -> bool:
    """Column names that say they hold contact details (`Email`, `work_phone`, ...)."""
    name = re.sub(r"[^0-9a-z]+", "_", column.lower())
    return any(part in name for part in PII_NAME_PARTS)


def screen_columns(
    X: pd.DataFrame, max_unique_share: float = 0.5, min_unique: int = 50
) -> dict[str, str]:
    """Text columns that look like e-mail addresses or identifiers, with the evidence.

    `X` should hold one row per lead: a column whose values are (nearly) all distinct across
    leads identifies them rather than describing them, and a tree model would only memorise it.
    """
    flagged: dict[str, str] = {}
    for column in X.columns:
        if pd.api.types.is_numeric_dtype(X[column]):
            continue
        present = X[column].dropna().astype(str)
        if present.empty:
            continue
        sample = present.head(2000)
        email_share = sample.str.match(EMAIL).mean()
        if email_share > 0.5:
            flagged[column] = f"{email_share:.0%} of values look like e-mail addresses (PII)"
            continue
        distinct = present.nunique()
        if distinct >= min_unique and distinct / len(present) > max_unique_share:
            flagged[column] = (
                f"identifier-like: {distinct:,} distinct values for {len(present):,} leads"
            )
    return flagged
