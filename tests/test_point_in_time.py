"""Point-in-time correctness: nothing stamped at or after a cutoff changes the spine or a feature.

Random small CRMs are built, features are computed at one to three cutoffs, then only rows stamped
at or after the latest of them are added, removed, retimed, reopened or reclosed, and the spine and
every feature value at every cutoff must stay exactly the same.
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadscore.features.build import FeatureSpec, build_features
from leadscore.features.engagement import ACTIVITY_TYPES
from leadscore.features.snapshots import open_leads
from leadscore.features.tables import CrmTables, clean, crm_as_of

T0 = pd.Timestamp("2025-01-01", tz="UTC")
DAY_S = 86_400
RANGE_DAYS = 200
END_S = RANGE_DAYS * DAY_S
UNKNOWN_LEAD = 999  # activities of a lead that is not in the leads table
UNKNOWN_ACCOUNT = 99  # leads of an account that is not in the accounts table

RAW_TYPES = (*ACTIVITY_TYPES, "carrier_pigeon", "Web Visit", "DEMO-REQUEST")
SOURCES = ("Paid Search", "paid search ", "PAID-SEARCH", "Referral", "events", None)
INDUSTRIES = ("Software", " software", "RETAIL", None)

COLUMNS = {
    "accounts": {"account_id": "int64", "industry": object, "employees": "float64"},
    "leads": {
        "lead_id": "int64",
        "account_id": "Int64",
        "created_at": "datetime64[ns, UTC]",
        "email": object,
        "source": object,
        "score": "int64",
        "is_partner": "bool",
    },
    "activities": {
        "lead_id": "int64",
        "occurred_at": "datetime64[ns, UTC]",
        "activity_type": object,
    },
    "deals": {
        "deal_id": "int64",
        "lead_id": "int64",
        "account_id": "Int64",
        "created_at": "datetime64[ns, UTC]",
        "closed_at": "datetime64[ns, UTC]",
        "outcome": object,
    },
}
# A long-closed deal of a lead outside the data. Half of the generated CRMs carry it, so both
# "no deal ever closed" (which once crashed under pandas 3) and "some history" are covered.
BACKGROUND_DEAL = {
    "deal_id": 0,
    "lead_id": 0,
    "account_id": None,
    "created_at": T0 - pd.Timedelta(days=30),
    "closed_at": T0 - pd.Timedelta(days=20),
    "outcome": "lost",
}


def at(seconds: int | None) -> pd.Timestamp | None:
    return None if seconds is None else T0 + pd.Timedelta(seconds=seconds)


def to_tables(rows: dict[str, list[dict]]) -> CrmTables:
    frames = {
        name: pd.DataFrame(
            {c: pd.Series([r[c] for r in rows[name]], dtype=dtype) for c, dtype in cols.items()}
        )
        for name, cols in COLUMNS.items()
    }
    return CrmTables(**frames)


def seconds_from(start_s: int) -> st.SearchStrategy[int]:
    """Seconds since T0 at or after `start_s`, often exactly on a day (so on a cutoff)."""
    first_day = -(-start_s // DAY_S)
    return st.one_of(
        st.just(start_s),
        st.integers(start_s, END_S - 1),
        st.integers(min(first_day, RANGE_DAYS - 1), RANGE_DAYS - 1).map(
            lambda d: max(d * DAY_S, start_s)
        ),
    )


def lead_row(draw, lead_id: int, account_ids: list[int], created_s: int) -> dict:
    account = draw(st.sampled_from([None, UNKNOWN_ACCOUNT, *account_ids]))
    return {
        "lead_id": lead_id,
        "account_id": account,
        "created_at": at(created_s),
        "email": f"lead{lead_id}@example.com",
        "source": draw(st.sampled_from(SOURCES)),
        "score": draw(st.integers(0, 100)),
        "is_partner": draw(st.booleans()),
    }


def activity_row(draw, lead_ids: list[int], start_s: int) -> dict:
    return {
        "lead_id": draw(st.sampled_from([*lead_ids, UNKNOWN_LEAD])),
        "occurred_at": at(draw(seconds_from(start_s))),
        "activity_type": draw(st.sampled_from(RAW_TYPES)),
    }


def closing(draw, after_s: int) -> tuple[pd.Timestamp | None, str | None]:
    """An open deal, or a close at or after `after_s` with an outcome."""
    if after_s >= END_S or draw(st.booleans()):
        return None, None
    return at(draw(seconds_from(after_s))), draw(st.sampled_from(["won", "lost", "Won "]))


def deal_row(draw, deal_id: int, leads: list[dict], start_s: int) -> dict:
    lead = draw(st.sampled_from(leads))
    created_s = draw(seconds_from(start_s))
    closed_at, outcome = closing(draw, created_s)
    return {
        "deal_id": deal_id,
        "lead_id": lead["lead_id"],
        "account_id": lead["account_id"],
        "created_at": at(created_s),
        "closed_at": closed_at,
        "outcome": outcome,
    }


def seconds_of(value: pd.Timestamp) -> int:
    return int((value - T0).total_seconds())


@st.composite
def crm_with_future_edits(draw):
    """A small random CRM, cutoffs, and the same CRM edited only at or after one of the cutoffs.

    Features are built for every cutoff at once, as training does; those at the edited cutoff
    and before it must not change.
    """
    account_ids = list(range(1, draw(st.integers(0, 3)) + 1))
    accounts = [
        {
            "account_id": a,
            "industry": draw(st.sampled_from(INDUSTRIES)),
            "employees": draw(st.one_of(st.none(), st.floats(1, 5000))),
        }
        for a in account_ids
    ]
    leads = [
        lead_row(draw, lead_id, account_ids, draw(seconds_from(0)))
        for lead_id in range(1, draw(st.integers(1, 6)) + 1)
    ]
    lead_ids = [lead["lead_id"] for lead in leads]
    activities = [activity_row(draw, lead_ids, 0) for _ in range(draw(st.integers(0, 15)))]
    deals = ([BACKGROUND_DEAL] if draw(st.booleans()) else []) + [
        deal_row(draw, deal_id, leads, 0) for deal_id in range(1, draw(st.integers(0, 4)) + 1)
    ]
    cutoff_days = sorted(draw(st.sets(st.integers(1, RANGE_DAYS - 1), min_size=1, max_size=3)))
    cutoffs = pd.DatetimeIndex([T0 + pd.Timedelta(days=d) for d in cutoff_days], name="cutoff")
    before = {"accounts": accounts, "leads": leads, "activities": activities, "deals": deals}

    edit_index = draw(st.integers(0, len(cutoff_days) - 1))
    edit_s = cutoff_days[edit_index] * DAY_S

    def future(value: pd.Timestamp | None) -> bool:
        return value is not None and seconds_of(value) >= edit_s

    new_leads = [
        lead_row(draw, lead_id, account_ids, draw(seconds_from(edit_s)))
        for lead_id in range(len(leads) + 1, len(leads) + draw(st.integers(0, 2)) + 1)
    ]
    # Attributes carry no timestamp of their own: a lead created later may look like anything.
    edited_leads = [
        lead_row(draw, lead["lead_id"], account_ids, seconds_of(lead["created_at"]))
        if future(lead["created_at"]) and draw(st.booleans())
        else lead
        for lead in leads
    ]
    all_leads = edited_leads + new_leads
    all_lead_ids = [lead["lead_id"] for lead in all_leads]

    edited_activities = []
    for row in activities:
        action = (
            draw(st.sampled_from(["keep", "drop", "retime"]))
            if future(row["occurred_at"])
            else "keep"
        )
        if action == "retime":
            row = {**row, "occurred_at": at(draw(seconds_from(edit_s)))}
        if action != "drop":
            edited_activities.append(row)
    edited_activities += [
        activity_row(draw, all_lead_ids, edit_s) for _ in range(draw(st.integers(0, 4)))
    ]

    edited_deals = []
    for row in deals:
        action = (
            draw(st.sampled_from(["keep", "reopen", "reclose"]))
            if future(row["closed_at"])
            else "keep"
        )
        if action == "reopen":
            row = {**row, "closed_at": None, "outcome": None}
        elif action == "reclose":
            created_s = seconds_of(row["created_at"])
            closed_at = at(draw(seconds_from(max(edit_s, created_s))))
            row = {**row, "closed_at": closed_at, "outcome": draw(st.sampled_from(["won", "lost"]))}
        edited_deals.append(row)
    # Deals left open may close at or after the cutoff, too.
    edited_deals = [
        {
            **row,
            **dict(
                zip(
                    ("closed_at", "outcome"),
                    closing(draw, max(edit_s, seconds_of(row["created_at"]))),
                    strict=True,
                )
            ),
        }
        if row["closed_at"] is None and draw(st.booleans())
        else row
        for row in edited_deals
    ]
    edited_deals += [
        deal_row(draw, deal_id, all_leads, edit_s)
        for deal_id in range(len(deals), len(deals) + draw(st.integers(0, 2)))
    ]
    after = {
        "accounts": accounts,
        "leads": all_leads,
        "activities": edited_activities,
        "deals": edited_deals,
    }
    spec = FeatureSpec(
        windows_days=draw(st.sampled_from([(7, 30, 90), (1, 14)])),
        half_life_days=draw(st.sampled_from([3.0, 14.0])),
        recency_cap_days=draw(st.sampled_from([30, 365])),
        skip_columns=frozenset({"email"}),
    )
    max_age_days = draw(st.sampled_from([None, 30, 120]))
    return to_tables(before), to_tables(after), cutoffs, spec, max_age_days, cutoffs[edit_index]


def at_cutoffs(
    tables: CrmTables, cutoffs: pd.DatetimeIndex, spec: FeatureSpec, max_age_days: int | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The spine and features at `cutoffs`, as the pipeline builds them from raw tables."""
    tables = clean(tables)
    spine = open_leads(tables, cutoffs, max_age_days)
    return spine, build_features(tables, spine, spec)


def assert_same_at_cutoffs(
    before: CrmTables,
    after: CrmTables,
    cutoffs: pd.DatetimeIndex,
    spec: FeatureSpec,
    max_age_days: int | None,
    up_to: pd.Timestamp | None = None,
) -> None:
    """Spine and features agree at every cutoff up to `up_to` (default: all of them)."""
    spine_before, x_before = at_cutoffs(before, cutoffs, spec, max_age_days)
    spine_after, x_after = at_cutoffs(after, cutoffs, spec, max_age_days)
    if up_to is not None:
        spine_before = spine_before[spine_before["cutoff"] <= up_to].reset_index(drop=True)
        spine_after = spine_after[spine_after["cutoff"] <= up_to].reset_index(drop=True)
        x_before = x_before[x_before.index.get_level_values("cutoff") <= up_to]
        x_after = x_after[x_after.index.get_level_values("cutoff") <= up_to]
    pd.testing.assert_frame_equal(spine_after, spine_before, check_exact=True)
    pd.testing.assert_frame_equal(x_after, x_before, check_exact=True)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=crm_with_future_edits())
def test_rows_at_or_after_the_cutoff_change_no_spine_row_and_no_feature(case):
    before, after, cutoffs, spec, max_age_days, edited_at = case

    assert_same_at_cutoffs(before, after, cutoffs, spec, max_age_days, up_to=edited_at)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=crm_with_future_edits())
def test_features_from_the_as_of_view_equal_features_from_everything(case):
    tables, _, cutoffs, spec, max_age_days, moment = case
    earlier = cutoffs[cutoffs <= moment]

    assert_same_at_cutoffs(tables, crm_as_of(tables, moment), earlier, spec, max_age_days)


# The comparison above must be able to fail: the same edits a moment before the cutoff do show.
CUTOFF = T0 + pd.Timedelta(days=100)
SECOND = pd.Timedelta(seconds=1)


def sanity_rows() -> dict[str, list[dict]]:
    def lead(lead_id, account, days_before):
        return {
            "lead_id": lead_id,
            "account_id": account,
            "created_at": CUTOFF - pd.Timedelta(days=days_before),
            "email": "x@example.com",
            "source": "Referral",
            "score": 5,
            "is_partner": False,
        }

    return {
        "accounts": [{"account_id": 1, "industry": "Software", "employees": 50.0}],
        "leads": [lead(1, 1, 40), lead(2, 1, 30), lead(3, None, 20)],
        "activities": [
            {
                "lead_id": 1,
                "occurred_at": CUTOFF - pd.Timedelta(days=3),
                "activity_type": "web_visit",
            },
            {
                "lead_id": 1,
                "occurred_at": CUTOFF + pd.Timedelta(days=2),
                "activity_type": "meeting",
            },
        ],
        "deals": [
            BACKGROUND_DEAL,
            {
                "deal_id": 1,
                "lead_id": 2,
                "account_id": 1,
                "created_at": CUTOFF - pd.Timedelta(days=10),
                "closed_at": CUTOFF,
                "outcome": "won",
            },
        ],
    }


def add_activity(rows, moment):
    rows["activities"].append({"lead_id": 3, "occurred_at": moment, "activity_type": "meeting"})


def add_deal(rows, moment):
    rows["deals"].append(
        {
            "deal_id": 2,
            "lead_id": 1,
            "account_id": 1,
            "created_at": moment,
            "closed_at": None,
            "outcome": None,
        }
    )


def add_lead(rows, moment):
    rows["leads"].append({**rows["leads"][0], "lead_id": 4, "created_at": moment})


def move_close(rows, moment):
    rows["deals"][1] = {**rows["deals"][1], "closed_at": moment}


def retime_later_activity(rows, moment):
    rows["activities"][1] = {**rows["activities"][1], "occurred_at": moment}


@pytest.mark.parametrize(
    "edit",
    [add_activity, add_deal, add_lead, move_close, retime_later_activity],
)
@pytest.mark.parametrize(
    ("moment", "changes"),
    [(CUTOFF - SECOND, True), (CUTOFF, False), (CUTOFF + SECOND, False)],
)
def test_the_same_edit_before_the_cutoff_is_seen(edit, moment, changes):
    rows = sanity_rows()
    edited = {name: list(table) for name, table in rows.items()}
    edit(edited, moment)
    args = (to_tables(rows), to_tables(edited), pd.DatetimeIndex([CUTOFF]), FeatureSpec(), None)

    if changes:
        with pytest.raises(AssertionError):
            assert_same_at_cutoffs(*args)
    else:
        assert_same_at_cutoffs(*args)


def test_a_later_lead_with_a_missing_boolean_changes_no_feature():
    rows = sanity_rows()
    later = {name: list(table) for name, table in rows.items()}
    add_lead(later, CUTOFF + pd.Timedelta(days=5))
    later["leads"][-1] = {**later["leads"][-1], "is_partner": None}
    after = to_tables(later)
    after = CrmTables(
        accounts=after.accounts,
        leads=after.leads.assign(is_partner=[r["is_partner"] for r in later["leads"]]),
        activities=after.activities,
        deals=after.deals,
    )

    assert_same_at_cutoffs(to_tables(rows), after, pd.DatetimeIndex([CUTOFF]), FeatureSpec(), None)
