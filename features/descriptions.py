"""Plain-words descriptions of feature values, for the reasons a sales rep reads.

Every sentence is built from what the feature spec knows about a feature (`FeatureInfo`): its
kind, the column it comes from and how a person names it, its window and unit, and how its
values are spelled in the data. Nothing here knows a dataset's column names: a lead attribute
reads "<column>: <value>" with the value quoted as the export spells it ("Landing Page Id:
a7982125", "Lead Source: Olark Chat"), a company attribute "Company <column>: <value>", and
the engineered features (activity counts, recency, the pipeline, the account's history) are
worded from their own definitions (the activity type, the window in days).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

ACTIVITY_PHRASES = {  # the canonical activity types (what exports are mapped onto)
    "web_visit": "Visited the website",
    "pricing_page_view": "Viewed the pricing page",
    "email_open": "Opened our emails",
    "email_click": "Clicked through our emails",
    "form_submit": "Submitted a form",
    "content_download": "Downloaded content",
    "webinar": "Attended webinars",
    "demo_request": "Requested a demo",
    "meeting": "Met with sales",
    "other": "Had other activity",
    "total": "Had activities",
    "high_value": "Took high-intent actions (pricing, demo, meeting, form, webinar)",
}


# Units a column's name may end with, and how its numbers then read: ("revenue_musd", 394.3)
# reads "Revenue: $394.3M". Words of the name, not of any dataset.
UNITS = {
    "musd": "${}M",
    "usd": "${}",
    "eur": "€{}",
    "gbp": "£{}",
    "pct": "{}%",
    "percent": "{}%",
    "days": "{} days",
    "k": "{}k",
}


@dataclass(frozen=True)
class FeatureInfo:
    """What a feature is, for people: enough to word any of its values."""

    kind: str  # category, number, flag, activity_count, recency, decay, trend, open_deal,
    # deal_age, lead_age, account_won, account_lost, account_win_rate, account_leads
    label: str = ""  # the source column as a person names it ("Job title", "Company industry")
    window_days: int | None = None  # activity counts: the window
    activity: str | None = None  # activity counts: the canonical type, total or high_value
    days: float | None = None  # recency: how far back it looks; decay: the half-life
    spellings: Mapping[str, str] = field(default_factory=dict)  # normalised -> as in the data
    unit: str = "{}"  # numbers: how a value reads ("${}M" for a column named ..._musd)


def _snake(name: str) -> bool:
    return re.fullmatch(r"[a-z0-9_]+", name) is not None


def unit_of(name: str) -> tuple[str, str]:
    """A snake_case name without its unit suffix, and the unit's format ('{}' without one):
    'annual_revenue_musd' -> ('annual_revenue', '${}M')."""
    if _snake(name):
        for suffix, form in UNITS.items():
            if name.endswith(f"_{suffix}") and len(name) > len(suffix) + 1:
                return name[: -len(suffix) - 1], form
    return name, "{}"


def column_label(name: str) -> str:
    """A column's name as a person reads it: snake_case words spaced, the first capitalised
    ('job_title' -> 'Job title'), a unit suffix left to the value; a name already written for
    people stays as it is ('Lead Source', 'Landing Page Id', 'Lead: Source')."""
    if _snake(name):
        words = " ".join(unit_of(name)[0].split("_")).strip()
        return words[:1].upper() + words[1:]
    return name


def company_label(name: str) -> str:
    """An account column as a person reads it: 'industry' -> 'Company industry'."""
    if _snake(name):
        return "Company " + " ".join(unit_of(name)[0].split("_")).strip()
    return f"Company {name}"


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: float) -> str:
    """Thousands separated, at most three significant decimals (394.31 -> 394.3)."""
    if float(value).is_integer():
        return f"{int(value):,}"
    digits = max(0, 2 - math.floor(math.log10(abs(value)))) if value else 0
    return f"{value:,.{min(digits, 3)}f}".rstrip("0").rstrip(".")


def _times(n: float) -> str:
    count = round(n)
    return f"{count} time{'s' * (count != 1)}"


def _window(days: int | None) -> str:
    return f"in the last {days} days"


def _ago(days: float, what: str) -> str:
    n = int(days)
    return f"{what} today" if n == 0 else f"{what} {n} day{'s' * (n != 1)} ago"


def _attribute(info: FeatureInfo, value: object) -> str:
    if _missing(value):
        return f"{info.label} unknown"
    if info.kind == "flag":
        return f"{info.label}: {'yes' if float(value) else 'no'}"  # type: ignore[arg-type]
    if info.kind == "number":
        return f"{info.label}: {info.unit.format(_number(float(value)))}"  # type: ignore[arg-type]
    return f"{info.label}: {info.spellings.get(str(value), str(value))}"


def _activity(info: FeatureInfo, value: object) -> str:
    kind = info.activity or "other"
    if _missing(value) or float(value) == 0:  # type: ignore[arg-type]
        words = kind.replace("_", " ") if kind not in ("total", "high_value") else "such"
        return f"No {words} activity {_window(info.window_days)}"
    phrase = ACTIVITY_PHRASES.get(kind, f"Had {kind.replace('_', ' ')} activity")
    return f"{phrase} {_times(float(value))} {_window(info.window_days)}"  # type: ignore[arg-type]


def _account(info: FeatureInfo, value: object) -> str:
    if info.kind == "account_win_rate":
        if _missing(value):
            return "No earlier deals at their company"
        return f"Their company won {float(value):.0%} of earlier deals"  # type: ignore[arg-type]
    if _missing(value):
        return "No known company"
    n = int(value)  # type: ignore[call-overload]
    if info.kind == "account_won":
        if n == 0:
            return "Their company has no earlier won deals"
        return f"Their company has won {n} earlier deal{'s' * (n != 1)} with us"
    if info.kind == "account_lost":
        return f"Their company lost {n} earlier deal{'s' * (n != 1)}"
    return f"{n} other lead{'s' * (n != 1)} from their company"


def describe_value(info: FeatureInfo, value: object) -> str:
    """One sentence about a feature's value."""
    kind = info.kind
    if kind in ("category", "number", "flag"):
        return _attribute(info, value)
    if kind == "activity_count":
        return _activity(info, value)
    if kind.startswith("account_"):
        return _account(info, value)
    if kind == "recency":
        if _missing(value):
            return f"No activity in the last {int(info.days or 365)} days"
        return _ago(float(value), "Last active")  # type: ignore[arg-type]
    if kind == "decay":
        return (
            f"Recent engagement score {float(value):.1f} (activities weighted by recency, "  # type: ignore[arg-type]
            f"halving every {info.days:g} days)"
        )
    if kind == "trend":
        rising = float(value) > 0  # type: ignore[arg-type]
        return f"Engagement {'rising' if rising else 'falling'} over the last 30 days"
    if kind == "open_deal":
        return "Has an open opportunity" if value == 1 else "No opportunity yet"
    if kind == "deal_age":
        return "No opportunity yet" if _missing(value) else _ago(float(value), "Opportunity opened")  # type: ignore[arg-type]
    if kind == "lead_age":
        return _ago(float(value), "Lead created")  # type: ignore[arg-type]
    return f"{info.label}: {value}"


WHOLE_DAYS = ("recency", "deal_age", "lead_age")  # worded from a number's whole days (`_ago`)


class Describer:
    """Words feature values using the features' infos; a feature without one (a bundle made
    before infos existed) reads '<name as a label>: <value>'."""

    def __init__(self, infos: Mapping[str, FeatureInfo]) -> None:
        self.infos = dict(infos)

    def many(self, feature: str, values: np.ndarray) -> np.ndarray:
        """`self(feature, value)` for each of `values` (objects), as an object array. An age
        in days reads by its whole days, so each day is worded once, not each of a chunk's
        (mostly distinct) fractional values; anything else is worded value by value."""
        info = self.infos.get(feature)
        out = np.empty(len(values), dtype=object)
        days = None
        if info is not None and info.kind in WHOLE_DAYS:
            try:
                days = np.array(values, dtype=float)
            except (TypeError, ValueError):
                days = None
        if days is None:
            out[:] = [self(feature, v) for v in values]
            return out
        finite = np.isfinite(days)
        whole, at = np.unique(np.trunc(days[finite]), return_inverse=True)
        worded = np.empty(len(whole), dtype=object)
        worded[:] = [describe_value(info, float(d)) for d in whole]
        out[finite] = worded[at]
        out[~finite] = [self(feature, v) for v in values[~finite]]  # missing (or infinite)
        return out

    def __call__(self, feature: str, value: object) -> str:
        info = self.infos.get(feature)
        if info is None:
            number = not isinstance(value, str) and not _missing(value)
            info = FeatureInfo("number" if number else "category", column_label(feature))
        return describe_value(info, value)
