"""Plain-words descriptions of feature values, for the reasons a sales rep reads."""

from __future__ import annotations

import math
import re

ACTIVITY_PHRASES = {
    "web_visit": ("Visited the website", "time", "times"),
    "pricing_page_view": ("Viewed the pricing page", "time", "times"),
    "email_open": ("Opened our emails", "time", "times"),
    "email_click": ("Clicked through our emails", "time", "times"),
    "form_submit": ("Submitted a form", "time", "times"),
    "content_download": ("Downloaded content", "time", "times"),
    "webinar": ("Attended webinars", "time", "times"),
    "demo_request": ("Requested a demo", "time", "times"),
    "meeting": ("Met with sales", "time", "times"),
    "other": ("Had other activity", "time", "times"),
    "total": ("Had activities", "time", "times"),
    "high_value": (
        "Took high-intent actions (pricing, demo, meeting, form, webinar)",
        "time",
        "times",
    ),
}
SENIORITY_PHRASES = {
    "c_level": "C-level title",
    "vp": "VP-level title",
    "director": "Director-level title",
    "manager": "Manager-level title",
    "individual_contributor": "Individual-contributor title",
    "student": "Student",
}
_ACTIVITY = re.compile(r"^act_(?P<kind>.+)_(?P<days>\d+)d$")


ACRONYMS = {
    "vp": "VP",
    "it": "IT",
    "hr": "HR",
    "ceo": "CEO",
    "cto": "CTO",
    "cfo": "CFO",
    "us": "US",
    "uk": "UK",
    "b2b": "B2B",
    "of": "of",
    "and": "and",
    "the": "the",
}


def _pretty(value: object) -> str:
    """'vp_of_it' -> 'VP of IT'; 'united_states' -> 'United States'."""
    if value is None:
        return "unknown"
    words = str(value).replace("_", " ").split()
    pretty = [ACRONYMS.get(w.lower(), w.capitalize()) for w in words]
    if pretty:
        pretty[0] = pretty[0][0].upper() + pretty[0][1:]
    return " ".join(pretty)


def _window(days: int) -> str:
    return "in the last 7 days" if days == 7 else f"in the last {days} days"


def _count(value: float, one: str, many: str) -> str:
    n = round(value)
    return f"{n} {one if n == 1 else many}"


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def describe(feature: str, value: object) -> str:
    """One sentence about a feature's value, e.g. 'Viewed the pricing page 4 times ...'."""
    match = _ACTIVITY.match(feature)
    if match:
        verb, one, many = ACTIVITY_PHRASES.get(
            match["kind"], (f"Had {_pretty(match['kind']).lower()} activity", "time", "times")
        )
        days = int(match["days"])
        if _is_missing(value) or float(value) == 0:  # type: ignore[arg-type]
            return f"No {_pretty(match['kind']).lower()} activity {_window(days)}"
        return f"{verb} {_count(float(value), one, many)} {_window(days)}"  # type: ignore[arg-type]
    missing = _is_missing(value)
    if feature == "days_since_last_activity":
        if missing:
            return "No activity in the last year"
        days = int(value)  # type: ignore[call-overload]
        return "Active today" if days == 0 else f"Last active {days} day{'s' * (days != 1)} ago"
    if feature == "engagement_decay":
        return f"Recent engagement score {float(value):.1f} (weighted towards the last two weeks)"  # type: ignore[arg-type]
    if feature == "engagement_trend":
        return (
            "Engagement rising over the last 30 days"
            if float(value) > 0  # type: ignore[arg-type]
            else "Engagement falling over the last 30 days"
        )
    if feature == "has_open_deal":
        return "Has an open opportunity" if value == 1 else "No opportunity yet"
    if feature == "days_since_deal_created":
        return "No opportunity yet" if missing else f"Opportunity opened {int(value)} days ago"  # type: ignore[call-overload]
    if feature == "lead_age_days":
        return f"Lead created {int(value)} days ago"  # type: ignore[call-overload]
    if feature == "seniority":
        return (
            "Seniority unknown"
            if missing
            else SENIORITY_PHRASES.get(str(value), f"{_pretty(value)} title")
        )
    if feature == "job_title":
        return "Job title unknown" if missing else f"Job title: {_pretty(value)}"
    if feature == "department":
        return "Department unknown" if missing else f"Works in {_pretty(value)}"
    if feature == "source":
        return "Source unknown" if missing else f"Came in through {_pretty(value)}"
    if feature == "country":
        return "Country unknown" if missing else f"Based in {_pretty(value)}"
    if feature == "account_industry":
        return "Industry unknown" if missing else f"{_pretty(value)} industry"
    if feature == "account_employees":
        return "Company size unknown" if missing else f"Company of about {int(value):,} employees"  # type: ignore[call-overload]
    if feature == "account_annual_revenue_musd":
        return (
            "Company revenue unknown" if missing else f"Company revenue about ${float(value):,.0f}M"
        )  # type: ignore[arg-type]
    if feature == "account_country":
        return "Company country unknown" if missing else f"Company based in {_pretty(value)}"
    if feature == "account_won_deals":
        if missing:
            return "No known company"
        n = int(value)  # type: ignore[call-overload]
        return (
            f"Their company has won {n} earlier deal{'s' * (n != 1)} with us"
            if n
            else ("Their company has no earlier won deals")
        )
    if feature == "account_lost_deals":
        return "No known company" if missing else f"Their company lost {int(value)} earlier deals"  # type: ignore[call-overload]
    if feature == "account_win_rate":
        return (
            "No earlier deals at their company"
            if missing
            else (f"Their company won {float(value):.0%} of earlier deals")
        )  # type: ignore[arg-type]
    if feature == "account_other_leads":
        return "No known company" if missing else f"{int(value)} other leads from their company"  # type: ignore[call-overload]
    label = _pretty(feature)
    if feature.startswith("account_"):
        label = "Company " + _pretty(feature.removeprefix("account_")).lower()
    if missing:
        return f"{label} unknown"
    if isinstance(value, str):
        return f"{label}: {_pretty(value)}"
    number = float(value)  # type: ignore[arg-type]
    return f"{label}: {int(number):,}" if number.is_integer() else f"{label}: {number:,.2f}"
