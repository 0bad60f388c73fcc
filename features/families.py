"""Which features say who the lead is (fit) and which say what the lead has done (engagement)."""

from __future__ import annotations

ENGAGEMENT_FEATURES = frozenset(
    {
        "days_since_last_activity",
        "engagement_decay",
        "engagement_trend",
        "has_open_deal",
        "days_since_deal_created",
        "lead_age_days",
    }
)
FAMILIES = ("fit", "engagement")


def feature_family(name: str) -> str:
    """'engagement' for activity, opportunity and timing features; 'fit' for the rest
    (lead and account attributes, lookups, the account's history with us)."""
    if name.startswith("act_") or name in ENGAGEMENT_FEATURES:
        return "engagement"
    return "fit"
