"""Edge cases of the point-in-time feature builders, snapshots and table views on tiny frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from leadscore.features.account_history import account_history_features
from leadscore.features.attributes import attribute_features
from leadscore.features.engagement import ACTIVITY_TYPES, HIGH_VALUE_TYPES, engagement_features
from leadscore.features.opportunity import opportunity_features
from leadscore.features.snapshots import assign_splits, label_snapshots, open_leads
from leadscore.features.tables import CrmTables, clean, crm_as_of, normalise_label

CUTOFF = pd.Timestamp("2025-03-01", tz="UTC")
DAY = pd.Timedelta(days=1)
SECOND = pd.Timedelta(seconds=1)
NAT = pd.NaT


def times(*values) -> pd.Series:
    """A tz-aware UTC timestamp column (None becomes NaT)."""
    return pd.Series(list(values), dtype="datetime64[ns, UTC]")


def accounts_frame(ids=(), **columns) -> pd.DataFrame:
    return pd.DataFrame({"account_id": pd.Series(list(ids), dtype="int64"), **columns})


def leads_frame(ids=(), accounts=(), created=(), **columns) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": pd.Series(list(ids), dtype="int64"),
            "account_id": pd.Series(list(accounts), dtype="Int64"),
            "created_at": times(*created),
            **columns,
        }
    )


def activities_frame(rows=()) -> pd.DataFrame:
    """Rows of (lead_id, occurred_at, activity_type)."""
    rows = list(rows)
    return pd.DataFrame(
        {
            "lead_id": pd.Series([r[0] for r in rows], dtype="int64"),
            "occurred_at": times(*(r[1] for r in rows)),
            "activity_type": pd.Series([r[2] for r in rows], dtype=object),
        }
    )


def deals_frame(rows=()) -> pd.DataFrame:
    """Rows of (lead_id, account_id, created_at, closed_at, outcome); deal ids are numbered."""
    rows = list(rows)
    return pd.DataFrame(
        {
            "deal_id": pd.Series(range(1, len(rows) + 1), dtype="int64"),
            "lead_id": pd.Series([r[0] for r in rows], dtype="int64"),
            "account_id": pd.Series([r[1] for r in rows], dtype="Int64"),
            "created_at": times(*(r[2] for r in rows)),
            "closed_at": times(*(r[3] for r in rows)),
            "outcome": pd.Series([r[4] for r in rows], dtype=object),
        }
    )


def make_tables(accounts=None, leads=None, activities=None, deals=None) -> CrmTables:
    return CrmTables(
        accounts=accounts_frame() if accounts is None else accounts,
        leads=leads_frame() if leads is None else leads,
        activities=activities_frame() if activities is None else activities,
        deals=deals_frame() if deals is None else deals,
    )


# A long-closed won deal of a lead outside every spine, so most cases run with some deal history;
# the *_without_any_closed_deal tests cover none.
BACKGROUND_DEAL = (99, None, CUTOFF - 400 * DAY, CUTOFF - 399 * DAY, "won")


def spine_of(lead_ids, cutoffs=(CUTOFF,)) -> pd.DataFrame:
    pairs = [(lead, cutoff) for cutoff in cutoffs for lead in lead_ids]
    return pd.DataFrame(
        {
            "lead_id": pd.Series([p[0] for p in pairs], dtype="int64"),
            "cutoff": times(*(p[1] for p in pairs)),
        }
    )


# --- engagement ---------------------------------------------------------------------------------


def engagement(
    activity_rows,
    lead_ids=(1,),
    cutoffs=(CUTOFF,),
    windows=(7, 30, 90),
    half_life=14.0,
    recency_cap=365,
) -> pd.DataFrame:
    tables = make_tables(activities=activities_frame(activity_rows))
    return engagement_features(tables, spine_of(lead_ids, cutoffs), windows, half_life, recency_cap)


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (pd.Timedelta(0), 0),  # exactly at the cutoff: not yet known
        (-SECOND, 1),
        (SECOND, 0),
        (3 * DAY, 0),
    ],
)
def test_engagement_counts_only_activities_strictly_before_the_cutoff(offset, expected):
    out = engagement([(1, CUTOFF + offset, "web_visit")])

    row = out.loc[(1, CUTOFF)]
    assert row["act_web_visit_7d"] == expected
    assert row["act_total_7d"] == expected
    assert (row["engagement_decay"] > 0) == bool(expected)


@pytest.mark.parametrize(
    ("age", "window", "expected"),
    [
        (7 * DAY, 7, 0),  # exactly 7 days old: outside the 7-day window
        (7 * DAY, 30, 1),
        (7 * DAY - SECOND, 7, 1),
        (30 * DAY, 30, 0),
        (30 * DAY, 90, 1),
        (90 * DAY - SECOND, 90, 1),
        (90 * DAY, 90, 0),
    ],
)
def test_engagement_window_is_half_open(age, window, expected):
    out = engagement([(1, CUTOFF - age, "email_open")])

    assert out.loc[(1, CUTOFF), f"act_email_open_{window}d"] == expected
    assert out.loc[(1, CUTOFF), f"act_total_{window}d"] == expected


@pytest.mark.parametrize("unknown", ["carrier_pigeon", "Web Visit", None])
def test_engagement_counts_per_type_and_unknown_types_as_other(unknown):
    rows = [
        (1, CUTOFF - 1 * DAY, "web_visit"),
        (1, CUTOFF - 2 * DAY, "web_visit"),
        (1, CUTOFF - 3 * DAY, "demo_request"),
        (1, CUTOFF - 4 * DAY, "meeting"),
        (1, CUTOFF - 5 * DAY, unknown),
        (1, CUTOFF - 20 * DAY, "email_click"),
    ]

    row = engagement(rows, windows=(7, 30)).loc[(1, CUTOFF)]

    assert row["act_web_visit_7d"] == 2
    assert row["act_demo_request_7d"] == 1
    assert row["act_meeting_7d"] == 1
    assert row["act_other_7d"] == 1
    assert row["act_email_click_7d"] == 0
    assert row["act_email_click_30d"] == 1
    assert row["act_total_7d"] == 5
    assert row["act_total_30d"] == 6
    assert row["act_high_value_7d"] == 2  # demo_request and meeting
    assert row["act_high_value_30d"] == 2
    expected_columns = {f"act_{t}_{w}d" for t in (*ACTIVITY_TYPES, "other") for w in (7, 30)}
    assert expected_columns <= set(row.index)


def test_engagement_high_value_covers_exactly_the_high_value_types():
    rows = [(1, CUTOFF - DAY, t) for t in ACTIVITY_TYPES]

    row = engagement(rows, windows=(7,)).loc[(1, CUTOFF)]

    assert row["act_high_value_7d"] == len(HIGH_VALUE_TYPES)
    assert row["act_total_7d"] == len(ACTIVITY_TYPES)


@pytest.mark.parametrize(
    ("ages", "recency_cap", "expected"),
    [
        ([DAY * 3, DAY * 1.5, DAY * 40], 365, 1.5),
        ([SECOND], 365, 1 / 86_400),
        ([DAY * 200], 365, 200.0),
        ([DAY * 400], 365, math.nan),  # nothing within the recency cap
        ([], 365, math.nan),
    ],
)
def test_days_since_last_activity(ages, recency_cap, expected):
    rows = [(1, CUTOFF - age, "web_visit") for age in ages]
    rows.append((1, CUTOFF, "web_visit"))  # at the cutoff: must not make it 0

    value = engagement(rows, recency_cap=recency_cap).loc[(1, CUTOFF), "days_since_last_activity"]

    if math.isnan(expected):
        assert math.isnan(value)
    else:
        assert value == pytest.approx(expected)


def test_days_since_last_activity_is_nan_beyond_a_short_recency_cap():
    value = engagement([(1, CUTOFF - 60 * DAY, "web_visit")], recency_cap=30).loc[
        (1, CUTOFF), "days_since_last_activity"
    ]

    assert math.isnan(value)


@pytest.mark.parametrize("half_life", [7.0, 14.0])
def test_engagement_decay_is_the_sum_of_half_life_weights(half_life):
    ages_days = [0.5, 3.25, 14.0, 60.0, 200.0]
    rows = [(1, CUTOFF - pd.Timedelta(days=a), "email_open") for a in ages_days]
    rows.append((1, CUTOFF + DAY, "meeting"))

    value = engagement(rows, half_life=half_life).loc[(1, CUTOFF), "engagement_decay"]

    assert value == pytest.approx(sum(0.5 ** (a / half_life) for a in ages_days), rel=1e-12)


@pytest.mark.parametrize(
    ("recent_days", "prior_days", "sign"),
    [
        ([1, 5, 10], [], 1),
        ([], [40, 50, 80], -1),
        ([2], [35, 70], 0),  # 1 in the last 30 days vs 2 in the 60 before: the same rate
        ([], [], 0),
        ([29.9], [95, 120], 1),  # older than 90 days is in neither half
    ],
)
def test_engagement_trend_compares_last_30_days_to_the_60_before(recent_days, prior_days, sign):
    rows = [(1, CUTOFF - pd.Timedelta(days=d), "web_visit") for d in recent_days + prior_days]

    value = engagement(rows).loc[(1, CUTOFF), "engagement_trend"]

    recent = len(recent_days)
    prior = sum(30 <= d < 90 for d in prior_days)
    assert value == pytest.approx(math.log((recent + 1) / (prior / 2 + 1)))
    assert np.sign(round(value, 12)) == sign


def test_lead_without_activities_gets_zeros_and_no_recency():
    rows = [(1, CUTOFF - DAY, "meeting"), (3, CUTOFF - DAY, "meeting")]  # lead 3 not in spine

    out = engagement(rows, lead_ids=(1, 2))

    quiet = out.loc[(2, CUTOFF)]
    counts = quiet.drop(["days_since_last_activity"])
    assert (counts == 0).all()
    assert math.isnan(quiet["days_since_last_activity"])
    assert out.loc[(1, CUTOFF), "act_meeting_7d"] == 1
    assert list(out.index) == [(1, CUTOFF), (2, CUTOFF)]


def test_engagement_is_computed_per_cutoff():
    later = CUTOFF + 10 * DAY
    rows = [(1, CUTOFF - DAY, "web_visit"), (1, CUTOFF + DAY, "web_visit")]

    out = engagement(rows, cutoffs=(CUTOFF, later))

    assert out.loc[(1, CUTOFF), "act_total_30d"] == 1
    assert out.loc[(1, later), "act_total_30d"] == 2
    assert out.loc[(1, CUTOFF), "days_since_last_activity"] == pytest.approx(1.0)
    assert out.loc[(1, later), "days_since_last_activity"] == pytest.approx(9.0)


# --- attributes ---------------------------------------------------------------------------------


def attribute_tables(**lead_columns) -> CrmTables:
    accounts = accounts_frame(
        [10, 20],
        name=["Acme", "Globex"],
        industry=["Software", "RETAIL "],
        employees=[120, None],
        founded_at=times("2001-01-01", "1999-05-01"),
    )
    leads = leads_frame(
        [1, 2, 3],
        [10, 20, None],
        ["2025-02-27 12:00", "2024-03-01", "2025-01-01"],
        email=["a@x.com", "b@x.com", "c@x.com"],
        country=["DE", "us", "FR"],
        last_contacted_at=times("2025-02-28", None, "2025-05-01"),
        **lead_columns,
    )
    return make_tables(accounts=accounts, leads=leads)


@pytest.mark.parametrize(
    ("skip", "absent", "present"),
    [
        ((), {"email"}, {"account_name"}),  # a column named like contact details is never one
        ({"EMAIL", "Name"}, {"email", "account_name"}, set()),  # skip names are case-insensitive
        (
            {"email", "industry", "country"},
            {"email", "account_industry", "country", "account_country"},
            {"account_name"},
        ),
    ],
)
def test_skip_columns_never_appear_as_features(skip, absent, present):
    out = attribute_features(attribute_tables(), spine_of([1, 2, 3]), skip)

    columns = set(out.columns)
    assert not columns & absent
    assert present <= columns
    assert not columns & {"lead_id", "account_id", "created_at", "account_account_id"}


def test_account_columns_are_prefixed_and_datetimes_are_not_features():
    out = attribute_features(attribute_tables(), spine_of([1, 2, 3]), {"email", "name"})

    assert set(out.columns) == {
        "country",
        "account_industry",
        "account_employees",
        "lead_age_days",
    }
    assert out.loc[(1, CUTOFF), "account_industry"] == "software"
    assert out.loc[(2, CUTOFF), "account_industry"] == "retail"
    assert out.loc[(1, CUTOFF), "account_employees"] == 120.0
    assert out.loc[(1, CUTOFF), "country"] == "de"


def test_leads_without_a_known_account_get_missing_account_features():
    tables = attribute_tables()
    tables = make_tables(
        accounts=tables.accounts,
        leads=pd.concat(
            [
                tables.leads,
                leads_frame([4], [99], ["2025-01-01"], email=["d@x.com"], country=["FR"]),
            ],
            ignore_index=True,
        ),
    )

    out = attribute_features(tables, spine_of([1, 3, 4]), {"email", "name"})

    for lead in (3, 4):  # no account, and an account id missing from accounts
        assert math.isnan(out.loc[(lead, CUTOFF), "account_employees"])
        assert pd.isna(out.loc[(lead, CUTOFF), "account_industry"])
    assert out.loc[(1, CUTOFF), "account_industry"] == "software"


@pytest.mark.parametrize(
    "variants",
    [
        ["Paid Search", "paid search ", "PAID-SEARCH"],
        ["Web / Organic", "web-organic", " WEB organic"],
    ],
)
def test_categorical_values_are_normalised(variants):
    out = attribute_features(attribute_tables(source=variants), spine_of([1, 2, 3]), ())

    values = out["source"].tolist()
    assert values[0] == values[1] == values[2]
    assert values[0] == normalise_label(pd.Series(variants[:1])).iloc[0]
    assert " " not in values[0] and values[0] == values[0].lower()


def test_numbers_and_booleans_become_floats_and_missing_text_stays_missing():
    tables = attribute_tables(
        score=[3, 7, 11], partner=[True, False, True], title=["CTO", None, "  "]
    )

    out = attribute_features(tables, spine_of([1, 2, 3]), ())

    assert out["score"].tolist() == [3.0, 7.0, 11.0]
    assert out["score"].dtype == "float64"
    assert out["partner"].tolist() == [1.0, 0.0, 1.0]
    assert out.loc[(1, CUTOFF), "title"] == "cto"
    assert pd.isna(out.loc[(2, CUTOFF), "title"])
    assert pd.isna(out.loc[(3, CUTOFF), "title"])


@pytest.mark.parametrize(
    ("lead", "cutoff", "expected"),
    [
        (1, CUTOFF, 1.5),
        (2, CUTOFF, 365.0),
        (1, CUTOFF + 10 * DAY, 11.5),
    ],
)
def test_lead_age_days(lead, cutoff, expected):
    out = attribute_features(attribute_tables(), spine_of([lead], [cutoff]), ())

    assert out.loc[(lead, cutoff), "lead_age_days"] == pytest.approx(expected)


# --- opportunity --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("created", "has_deal", "days"),
    [
        (CUTOFF - 10 * DAY, 1.0, 10.0),
        (CUTOFF - SECOND, 1.0, 1 / 86_400),
        (CUTOFF, 0.0, math.nan),  # created at the cutoff: not known yet
        (CUTOFF + DAY, 0.0, math.nan),
        (None, 0.0, math.nan),  # no deal at all
    ],
)
def test_opportunity_features(created, has_deal, days):
    deals = [BACKGROUND_DEAL] + ([] if created is None else [(1, None, created, None, None)])

    out = opportunity_features(make_tables(deals=deals_frame(deals)), spine_of([1]))

    row = out.loc[(1, CUTOFF)]
    assert row["has_open_deal"] == has_deal
    if math.isnan(days):
        assert math.isnan(row["days_since_deal_created"])
    else:
        assert row["days_since_deal_created"] == pytest.approx(days)


def test_opportunity_uses_the_first_deal():
    deals = deals_frame(
        [
            (1, None, CUTOFF - 3 * DAY, None, None),
            (1, None, CUTOFF - 8 * DAY, None, None),
            (1, None, CUTOFF + 8 * DAY, None, None),
        ]
    )

    row = opportunity_features(make_tables(deals=deals), spine_of([1])).loc[(1, CUTOFF)]

    assert row["days_since_deal_created"] == pytest.approx(8.0)


# --- account history ----------------------------------------------------------------------------


def history(deal_rows, lead_rows=None, lead_ids=(1,)) -> pd.DataFrame:
    """Account 10 holds lead 1 unless `lead_rows` says otherwise."""
    ids, accounts, created = zip(*(lead_rows or [(1, 10, CUTOFF - 100 * DAY)]), strict=True)
    tables = make_tables(leads=leads_frame(ids, accounts, created), deals=deals_frame(deal_rows))
    return account_history_features(tables, spine_of(lead_ids))


@pytest.mark.parametrize(
    ("closed", "counted"),
    [
        (CUTOFF - DAY, True),
        (CUTOFF - SECOND, True),
        (CUTOFF, False),  # closed exactly at the cutoff: not known yet
        (CUTOFF + DAY, False),
    ],
)
def test_account_history_counts_deals_closed_strictly_before_the_cutoff(closed, counted):
    deals = [
        (7, 10, CUTOFF - 50 * DAY, closed, "won"),
        (8, 10, CUTOFF - 50 * DAY, closed, "lost"),
        (9, 10, CUTOFF - 50 * DAY, None, None),  # still open: neither won nor lost
        (6, 20, CUTOFF - 50 * DAY, CUTOFF - DAY, "won"),  # another account
    ]

    row = history(deals).loc[(1, CUTOFF)]

    assert row["account_won_deals"] == int(counted)
    assert row["account_lost_deals"] == int(counted)
    if counted:
        assert row["account_win_rate"] == 0.5
    else:
        assert math.isnan(row["account_win_rate"])


@pytest.mark.parametrize(
    ("won", "lost", "rate"),
    [(0, 0, math.nan), (3, 1, 0.75), (0, 2, 0.0), (4, 0, 1.0)],
)
def test_account_win_rate(won, lost, rate):
    deals = [(7, 10, CUTOFF - 9 * DAY, CUTOFF - 2 * DAY, "won")] * won
    deals += [(7, 10, CUTOFF - 9 * DAY, CUTOFF - 2 * DAY, "lost")] * lost

    row = history(deals).loc[(1, CUTOFF)]

    assert (row["account_won_deals"], row["account_lost_deals"]) == (won, lost)
    if math.isnan(rate):
        assert math.isnan(row["account_win_rate"])
    else:
        assert row["account_win_rate"] == pytest.approx(rate)


def test_account_history_is_missing_for_leads_without_an_account():
    leads = [(1, None, CUTOFF - 10 * DAY), (2, None, CUTOFF - 10 * DAY), (3, 10, CUTOFF - DAY)]
    deals = [(3, 10, CUTOFF - DAY, CUTOFF - SECOND, "won")]

    out = history(deals, leads, lead_ids=(1, 2, 3))

    assert out.loc[[(1, CUTOFF), (2, CUTOFF)]].isna().all().all()
    assert out.loc[(3, CUTOFF), "account_won_deals"] == 1


def test_account_other_leads_excludes_the_lead_and_later_leads():
    leads = [
        (1, 10, CUTOFF - 100 * DAY),
        (2, 10, CUTOFF - 5 * DAY),
        (3, 10, CUTOFF - SECOND),
        (4, 10, CUTOFF),  # created at the cutoff: not known yet
        (5, 10, CUTOFF + DAY),
        (6, 20, CUTOFF - DAY),
        (7, None, CUTOFF - DAY),
    ]

    out = history([], leads, lead_ids=(1, 2, 6, 7))

    assert out.loc[(1, CUTOFF), "account_other_leads"] == 2
    assert out.loc[(2, CUTOFF), "account_other_leads"] == 2
    assert out.loc[(6, CUTOFF), "account_other_leads"] == 0
    assert math.isnan(out.loc[(7, CUTOFF), "account_other_leads"])


def test_account_history_works_without_an_account_id_on_deals():
    tables = make_tables(
        leads=leads_frame([1, 2], [10, 10], [CUTOFF - 9 * DAY, CUTOFF - 9 * DAY]),
        deals=deals_frame([(2, 10, CUTOFF - 5 * DAY, CUTOFF - DAY, "won")]).drop(
            columns="account_id"
        ),
    )

    out = account_history_features(tables, spine_of([1]))

    assert out.loc[(1, CUTOFF), "account_won_deals"] == 1


# --- snapshots ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("created", "closed", "is_open"),
    [
        (CUTOFF - DAY, None, True),
        (CUTOFF - SECOND, None, True),
        (CUTOFF, None, False),  # created at the cutoff: not open yet
        (CUTOFF + DAY, None, False),
        (CUTOFF - 9 * DAY, CUTOFF - DAY, False),  # closed before the cutoff
        (CUTOFF - 9 * DAY, CUTOFF - SECOND, False),
        (CUTOFF - 9 * DAY, CUTOFF, True),  # closed exactly at the cutoff: still open then
        (CUTOFF - 9 * DAY, CUTOFF + DAY, True),
    ],
)
@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_open_leads(created, closed, is_open, outcome):
    deals = [BACKGROUND_DEAL] + ([] if closed is None else [(1, None, created, closed, outcome)])
    tables = make_tables(leads=leads_frame([1], [None], [created]), deals=deals_frame(deals))

    spine = open_leads(tables, pd.DatetimeIndex([CUTOFF]), None)

    assert spine["lead_id"].tolist() == ([1] if is_open else [])


def test_open_leads_closes_on_the_first_deal_to_close():
    deals = [
        (1, None, CUTOFF - 9 * DAY, CUTOFF - DAY, "lost"),
        (1, None, CUTOFF - 3 * DAY, None, None),
        (2, None, CUTOFF - 9 * DAY, CUTOFF + DAY, "won"),
        (2, None, CUTOFF - 9 * DAY, CUTOFF + 2 * DAY, "lost"),
    ]
    leads = leads_frame([1, 2, 3], [None] * 3, [CUTOFF - 20 * DAY] * 3)
    tables = make_tables(leads=leads, deals=deals_frame(deals))

    spine = open_leads(tables, pd.DatetimeIndex([CUTOFF, CUTOFF + 5 * DAY]), None)

    assert list(zip(spine["lead_id"], spine["cutoff"], strict=True)) == [
        (2, CUTOFF),
        (3, CUTOFF),
        (3, CUTOFF + 5 * DAY),
    ]


@pytest.mark.parametrize(
    ("age", "max_age_days", "is_open"),
    [
        (30 * DAY, 30, True),  # exactly at the maximum age: still kept
        (30 * DAY + SECOND, 30, False),
        (29 * DAY, 30, True),
        (5000 * DAY, None, True),
    ],
)
def test_open_leads_max_lead_age_days(age, max_age_days, is_open):
    tables = make_tables(
        leads=leads_frame([1], [None], [CUTOFF - age]), deals=deals_frame([BACKGROUND_DEAL])
    )

    spine = open_leads(tables, pd.DatetimeIndex([CUTOFF]), max_age_days)

    assert len(spine) == int(is_open)


def test_open_leads_with_no_cutoffs_is_empty():
    tables = make_tables(
        leads=leads_frame([1], [None], [CUTOFF - DAY]), deals=deals_frame([BACKGROUND_DEAL])
    )

    spine = open_leads(tables, pd.DatetimeIndex([], tz="UTC"), None)

    assert spine.empty
    assert list(spine.columns) == ["lead_id", "cutoff"]


@pytest.mark.parametrize("deals", [[], [(1, None, CUTOFF - 9 * DAY, None, None)]])
def test_open_leads_without_any_closed_deal(deals):
    tables = make_tables(leads=leads_frame([1], [None], [CUTOFF - DAY]), deals=deals_frame(deals))

    spine = open_leads(tables, pd.DatetimeIndex([CUTOFF]), None)

    assert spine["lead_id"].tolist() == [1]


def test_opportunity_features_without_any_deal():
    out = opportunity_features(make_tables(), spine_of([1]))

    assert out.loc[(1, CUTOFF), "has_open_deal"] == 0


def test_label_snapshots_without_any_closed_deal():
    deals = deals_frame([(1, None, CUTOFF - 9 * DAY, None, None)])

    out = label_snapshots(spine_of([1]), deals, 30, CUTOFF + 100 * DAY)

    assert out["label"].tolist() == [0]


WINDOW_DAYS = 30
WINDOW = pd.Timedelta(days=WINDOW_DAYS)


@pytest.mark.parametrize(
    ("closes", "label"),
    [
        ([(CUTOFF, "won")], 1),  # won exactly at the cutoff: inside [cutoff, cutoff + window)
        ([(CUTOFF + DAY, "won")], 1),
        ([(CUTOFF + WINDOW - SECOND, "won")], 1),
        ([(CUTOFF + WINDOW, "won")], 0),  # the window is half-open
        ([(CUTOFF + DAY, "lost")], 0),
        ([(None, None)], 0),  # still open after the window
        ([], 0),
        ([(CUTOFF + 2 * DAY, "lost"), (CUTOFF + 5 * DAY, "won")], 1),
    ],
)
def test_label_snapshots(closes, label):
    deals = [BACKGROUND_DEAL] + [(1, None, CUTOFF - 5 * DAY, c, o) for c, o in closes]

    out = label_snapshots(spine_of([1]), deals_frame(deals), WINDOW_DAYS, CUTOFF + 100 * DAY)

    assert out["label"].tolist() == [label]
    assert out["label"].dtype == np.int8


@pytest.mark.parametrize(
    ("as_of_offset", "kept"),
    [
        (WINDOW, True),  # the window has just fully passed
        (WINDOW - SECOND, False),
        (WINDOW + DAY, True),
        (pd.Timedelta(0), False),
    ],
)
def test_label_snapshots_drops_rows_whose_window_has_not_passed(as_of_offset, kept):
    later = CUTOFF + 10 * DAY
    spine = spine_of([1, 2], [CUTOFF, later])

    out = label_snapshots(spine, deals_frame([BACKGROUND_DEAL]), WINDOW_DAYS, CUTOFF + as_of_offset)

    expected = [(1, CUTOFF), (2, CUTOFF)] if kept else []
    assert list(zip(out["lead_id"], out["cutoff"], strict=True)) == expected


def split_spine(n_cutoffs=8, n_leads=400, seed=3) -> pd.DataFrame:
    """Leads entering and leaving the open set at random cutoffs."""
    rng = np.random.default_rng(seed)
    cutoffs = pd.date_range("2024-01-01", periods=n_cutoffs, freq="MS", tz="UTC")
    rows = []
    for lead in range(n_leads):
        start = int(rng.integers(0, n_cutoffs))
        stop = int(rng.integers(start, n_cutoffs)) + 1
        rows += [(lead, cutoffs[i]) for i in range(start, stop)]
    return pd.DataFrame(rows, columns=["lead_id", "cutoff"])


@pytest.mark.parametrize(("valid_cutoffs", "holdout_cutoffs"), [(2, 2), (1, 3), (3, 1)])
def test_assign_splits_keeps_leads_apart_and_slices_in_time(valid_cutoffs, holdout_cutoffs):
    spine = split_spine()
    cutoffs = sorted(spine["cutoff"].unique())

    split = assign_splits(spine, valid_cutoffs, holdout_cutoffs, 0.15, 0.15, 0.2, seed=1)

    rows = spine.assign(split=split)
    assigned = rows.dropna(subset=["split"])
    assert (assigned.groupby("lead_id")["split"].nunique() == 1).all()
    holdout_start = cutoffs[-holdout_cutoffs]
    valid_start = cutoffs[-(holdout_cutoffs + valid_cutoffs)]
    by_split = {
        name: assigned.loc[assigned["split"] == name, "cutoff"]
        for name in ("train", "valid", "calibration", "holdout")
    }
    assert all(len(v) > 0 for v in by_split.values())
    assert (by_split["holdout"] >= holdout_start).all()
    for name in ("valid", "calibration"):
        assert ((by_split[name] >= valid_start) & (by_split[name] < holdout_start)).all()
    assert (by_split["train"] < valid_start).all()
    assert by_split["train"].max() < by_split["valid"].min()
    assert by_split["valid"].max() < by_split["holdout"].min()


def test_assign_splits_is_stable_under_row_order():
    spine = split_spine()
    shuffled = spine.sample(frac=1.0, random_state=0)

    split = assign_splits(spine, 2, 2, 0.15, 0.15, 0.2, seed=5)
    split_shuffled = assign_splits(shuffled, 2, 2, 0.15, 0.15, 0.2, seed=5)

    pd.testing.assert_series_equal(split, split_shuffled.loc[spine.index])


@pytest.mark.parametrize(
    ("n_cutoffs", "valid_cutoffs", "holdout_cutoffs", "raises"),
    [(4, 2, 2, True), (5, 2, 2, False), (1, 1, 1, True), (3, 1, 1, False)],
)
def test_assign_splits_needs_a_training_cutoff(n_cutoffs, valid_cutoffs, holdout_cutoffs, raises):
    spine = split_spine(n_cutoffs=n_cutoffs, n_leads=50)

    if raises:
        with pytest.raises(ValueError, match="labelled cutoffs"):
            assign_splits(spine, valid_cutoffs, holdout_cutoffs, 0.15, 0.15, 0.2)
    else:
        assert assign_splits(spine, valid_cutoffs, holdout_cutoffs, 0.15, 0.15, 0.2).notna().any()


def test_assign_splits_membership_never_depends_on_outcomes():
    """Which rows train must not depend on whether the lead later closed (won or lost)."""
    spine = split_spine()
    split = assign_splits(spine, 2, 2, 0.15, 0.15, 0.2, seed=3)
    # a lead that closes early (disappears from later cutoffs) keeps its group
    early_closers = spine["lead_id"] % 2 == 0
    truncated = spine[~early_closers | (spine["cutoff"] < sorted(spine["cutoff"].unique())[3])]
    split_truncated = assign_splits(truncated, 2, 2, 0.15, 0.15, 0.2, seed=3)
    pd.testing.assert_series_equal(split.loc[truncated.index], split_truncated, check_names=False)


def test_old_leads_train_whatever_their_group():
    spine = split_spine(n_cutoffs=8, n_leads=400)
    first = spine["cutoff"].min()
    created = pd.Series(first - pd.Timedelta(days=400), index=spine.index)  # all very old
    split = assign_splits(
        spine, 2, 2, 0.15, 0.15, 0.2, seed=0, created_at=created, max_age_days=365
    )
    train_cutoffs = sorted(spine["cutoff"].unique())[:4]
    on_train_cutoffs = spine["cutoff"].isin(train_cutoffs)
    assert (split[on_train_cutoffs] == "train").all()


# --- tables -------------------------------------------------------------------------------------


def history_tables() -> CrmTables:
    leads = leads_frame([1, 2, 3], [None] * 3, [CUTOFF - DAY, CUTOFF - SECOND, CUTOFF])
    activities = activities_frame(
        [(1, CUTOFF - SECOND, "web_visit"), (1, CUTOFF, "meeting"), (1, CUTOFF + DAY, "meeting")]
    )
    deals = deals_frame(
        [
            (1, None, CUTOFF - 9 * DAY, CUTOFF - SECOND, "won"),
            (2, None, CUTOFF - 9 * DAY, CUTOFF, "lost"),
            (2, None, CUTOFF - 9 * DAY, CUTOFF + DAY, "won"),
            (1, None, CUTOFF - 9 * DAY, None, None),
            (3, None, CUTOFF, CUTOFF + DAY, "won"),
        ]
    )
    return make_tables(leads=leads, activities=activities, deals=deals)


def test_as_of_hides_rows_and_closes_at_or_after_the_moment():
    tables = history_tables()
    before = {name: getattr(tables, name).copy() for name in ("leads", "activities", "deals")}

    view = crm_as_of(tables, CUTOFF)

    assert view.leads["lead_id"].tolist() == [1, 2]
    assert view.activities["occurred_at"].tolist() == [CUTOFF - SECOND]
    assert view.deals["deal_id"].tolist() == [1, 2, 3, 4]
    assert view.deals["closed_at"].tolist()[0] == CUTOFF - SECOND
    assert view.deals["closed_at"].iloc[1:].isna().all()
    assert view.deals["outcome"].tolist()[0] == "won"
    assert view.deals["outcome"].iloc[1:].isna().all()
    for name, frame in before.items():  # the input is not mutated
        pd.testing.assert_frame_equal(getattr(tables, name), frame)


def test_clean_drops_duplicate_activities_and_normalises_labels():
    activities = activities_frame(
        [
            (1, CUTOFF - DAY, "Web Visit"),
            (1, CUTOFF - DAY, "Web Visit"),  # exact duplicate
            (1, CUTOFF - 2 * DAY, "Web Visit"),  # same type, another time: kept
            (2, CUTOFF - DAY, "Web Visit"),  # another lead: kept
            (1, CUTOFF - DAY, "PRICING-PAGE-VIEW"),
            (1, CUTOFF - DAY, " demo request "),
        ]
    )
    deals = deals_frame(
        [(1, None, CUTOFF - 9 * DAY, CUTOFF - DAY, " Won"), (2, None, CUTOFF - 9 * DAY, None, None)]
    )
    tables = make_tables(activities=activities, deals=deals)
    raw = activities.copy()

    cleaned = clean(tables)

    assert cleaned.activities["activity_type"].tolist() == [
        "web_visit",
        "web_visit",
        "web_visit",
        "pricing_page_view",
        "demo_request",
    ]
    assert cleaned.activities["lead_id"].tolist() == [1, 1, 2, 1, 1]
    assert cleaned.deals["outcome"].iloc[0] == "won"
    assert pd.isna(cleaned.deals["outcome"].iloc[1])
    pd.testing.assert_frame_equal(tables.activities, raw)


def test_engagement_columns_are_float_even_with_no_activity_at_all():
    tables = make_tables(leads=leads_frame([1], [None], [CUTOFF - 3 * DAY]))
    out = engagement_features(tables, spine_of([1]), (7, 30), 14.0, 365)
    assert (out.dtypes == "float64").all(), out.dtypes[out.dtypes != "float64"]
