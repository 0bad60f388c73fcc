"""Scores, grades and reasons."""

import math

import numpy as np
import pandas as pd
import pytest

from leadscore.features.build import FeatureSpec, feature_info
from leadscore.features.descriptions import Describer
from leadscore.features.families import FAMILIES, feature_family
from leadscore.features.tables import CrmTables
from leadscore.models.reasons import strongest_against, top_reasons
from leadscore.models.scores import mql_flags, to_grade, to_grade_by_percentile, to_score
from leadscore.models.subscores import family_logits, reference_quantiles, to_subscore

BANDS = {"A": 0.30, "B": 0.12, "C": 0.04}


def _describer() -> Describer:
    """Descriptions as a model trained on these (tiny) tables would carry them: column names
    and values as the export spells them."""
    leads = pd.DataFrame(
        {
            "lead_id": [1, 2, 3],
            "account_id": [10, 10, 11],
            "created_at": pd.to_datetime(["2026-01-01"] * 3, utc=True),
            "seniority": ["VP", "vp ", "Student"],
            "job_title": ["VP of IT", "VP of IT", None],
            "department": ["HR", "Sales", "HR"],
            "source": ["Referral", "Paid Search", "referral"],
            "budget_k": [2.5, 1.0, None],
            "revenue_musd": [394.31, 2.0, None],
            "Landing Page Id": ["a7982125", "b1", "a7982125"],
            "Opted In": [True, False, None],
        }
    )
    accounts = pd.DataFrame(
        {
            "account_id": [10, 11],
            "industry": ["Financial Services", "Retail"],
            "employees": [1200, 15],
            "favourite_colour": ["teal", "Teal"],
            "floors": [12, 3],
        }
    )
    empty = pd.DataFrame()
    tables = CrmTables(accounts=accounts, leads=leads, activities=empty, deals=empty)
    return Describer(feature_info(tables, FeatureSpec(skip_columns=("lead_id", "account_id"))))


describe = _describer()


def test_score_is_percent_clipped_to_1_99():
    p = np.array([0.0, 0.004, 0.3, 0.305, 0.994, 1.0])
    assert to_score(p).tolist() == [1, 1, 30, 30, 99, 99]


@pytest.mark.parametrize(
    ("p", "grade"), [(0.9, "A"), (0.30, "A"), (0.2999, "B"), (0.12, "B"), (0.05, "C"), (0.01, "D")]
)
def test_grade_bands_are_minimum_probabilities(p, grade):
    assert to_grade(np.array([p]), BANDS).tolist() == [grade]


def test_reasons_follow_the_largest_positive_contributions():
    X = pd.DataFrame(
        {
            "act_pricing_page_view_7d": [4.0, 0.0],
            "seniority": ["vp", "student"],
            "has_open_deal": [0.0, 0.0],
            "lead_age_days": [10.0, 300.0],
        }
    )
    contrib = pd.DataFrame(
        {
            "act_pricing_page_view_7d": [0.9, -0.2],
            "seniority": [0.4, -1.5],
            "has_open_deal": [-0.1, -0.1],
            "lead_age_days": [0.02, 0.3],
            "bias": [-3.0, -3.0],
        }
    )
    reasons = top_reasons(X, contrib, describe, max_reasons=3, min_impact=0.05)
    assert [r["feature"] for r in reasons[0]] == ["act_pricing_page_view_7d", "seniority"]
    assert reasons[0][0]["text"] == "Viewed the pricing page 4 times in the last 7 days"
    assert reasons[0][1]["text"] == "Seniority: VP"
    assert [r["feature"] for r in reasons[1]] == ["lead_age_days"]
    assert reasons[1][0]["impact"] == pytest.approx(0.3)


def test_absences_are_not_reasons_even_when_they_push_the_score_up():
    X = pd.DataFrame(
        {"act_email_open_7d": [0.0], "days_since_last_activity": [np.nan], "act_meeting_30d": [2.0]}
    )
    contrib = pd.DataFrame(
        {
            "act_email_open_7d": [0.8],
            "days_since_last_activity": [0.6],
            "act_meeting_30d": [0.3],
            "bias": [-3.0],
        }
    )
    reasons = top_reasons(X, contrib, describe)
    assert [r["text"] for r in reasons[0]] == ["Met with sales 2 times in the last 30 days"]


def test_no_reason_when_nothing_pushes_the_score_up():
    X = pd.DataFrame({"a": [1.0]})
    contrib = pd.DataFrame({"a": [-0.5], "bias": [-2.0]})
    assert top_reasons(X, contrib, describe) == [[]]


@pytest.mark.parametrize(
    ("feature", "value", "text"),
    [
        ("act_pricing_page_view_7d", 4.0, "Viewed the pricing page 4 times in the last 7 days"),
        ("act_demo_request_30d", 1.0, "Requested a demo 1 time in the last 30 days"),
        ("act_web_visit_90d", 12.0, "Visited the website 12 times in the last 90 days"),
        ("act_meeting_30d", 0.0, "No meeting activity in the last 30 days"),
        (
            "act_high_value_7d",
            3.0,
            "Took high-intent actions (pricing, demo, meeting, form, webinar) 3 times "
            "in the last 7 days",
        ),
        ("days_since_last_activity", 1.0, "Last active 1 day ago"),
        ("days_since_last_activity", math.nan, "No activity in the last 365 days"),
        ("has_open_deal", 1.0, "Has an open opportunity"),
        ("seniority", "vp", "Seniority: VP"),
        ("seniority", None, "Seniority unknown"),
        ("source", "referral", "Source: Referral"),
        ("account_industry", "financial_services", "Company industry: Financial Services"),
        ("account_employees", 1200.0, "Company employees: 1,200"),
        ("account_won_deals", 2.0, "Their company has won 2 earlier deals with us"),
        ("lead_age_days", 12.4, "Lead created 12 days ago"),
        ("account_favourite_colour", "teal", "Company favourite colour: teal"),
        ("account_floors", 12.0, "Company floors: 12"),
        ("budget_k", 2.5, "Budget: 2.5k"),
        ("revenue_musd", 394.31, "Revenue: $394M"),
        ("Landing Page Id", "a7982125", "Landing Page Id: a7982125"),
        ("Opted In", 1.0, "Opted In: yes"),
        (
            "engagement_decay",
            2.345,
            "Recent engagement score 2.3 (activities weighted by recency, halving every 14 days)",
        ),
    ],
)
def test_descriptions_read_as_sentences(feature, value, text):
    assert describe(feature, value) == text


def test_values_are_quoted_as_the_data_spell_them():
    """Not re-cased: the commonest spelling in the data of each normalised value."""
    assert describe("job_title", "vp_of_it") == "Job title: VP of IT"
    assert describe("department", "hr") == "Department: HR"
    assert describe("source", "paid_search") == "Source: Paid Search"


def test_features_without_a_description_read_by_their_name():
    unknown = Describer({})
    assert unknown("lead_score_band", "hot") == "Lead score band: hot"
    assert unknown("Total Visits", 5.0) == "Total Visits: 5"


def test_percentile_grades_take_top_shares():
    p = np.linspace(0.01, 0.99, 100)
    grades = to_grade_by_percentile(p, {"A": 0.05, "B": 0.20, "C": 0.50})
    assert (grades == "A").sum() == 5 and (grades == "B").sum() == 15
    assert (grades == "C").sum() == 30 and (grades == "D").sum() == 50
    assert set(grades[p >= p[-5]]) == {"A"}


def test_mql_by_grade_or_score_and_capacity_keeps_the_best():
    p = np.array([0.9, 0.5, 0.35, 0.2, 0.01])
    grades = to_grade(p, BANDS)
    assert mql_flags(p, grades, ("A",)).tolist() == [True, True, True, False, False]
    assert mql_flags(p, grades, ("A",), min_score=20).tolist() == [True, True, True, True, False]
    capped = mql_flags(p, grades, ("A", "B"), capacity=2)
    assert capped.tolist() == [True, True, False, False, False]


def test_sub_scores_add_up_to_the_total_log_odds():
    rng = np.random.default_rng(0)
    contrib = pd.DataFrame(
        rng.normal(size=(50, 4)), columns=["act_meeting_7d", "seniority", "lead_age_days", "source"]
    )
    contrib["bias"] = -3.0
    logits = family_logits(contrib, feature_family, FAMILIES)
    np.testing.assert_allclose(logits.sum(axis=1), contrib.sum(axis=1))
    np.testing.assert_allclose(
        logits["engagement"], contrib[["act_meeting_7d", "lead_age_days"]].sum(axis=1)
    )
    reference = reference_quantiles(logits["fit"])
    sub = to_subscore(logits["fit"], reference)
    assert sub.min() >= 1 and sub.max() <= 99
    assert np.all(np.diff(sub[np.argsort(logits["fit"].to_numpy())]) >= 0)  # monotone


def test_the_strongest_reason_against_is_given_even_for_an_absence():
    X = pd.DataFrame({"days_since_last_activity": [np.nan], "seniority": ["vp"]})
    contrib = pd.DataFrame({"days_since_last_activity": [-0.9], "seniority": [0.4], "bias": [-2.0]})
    against = strongest_against(X, contrib, describe)
    assert against[0]["text"] == "No activity in the last 365 days"
    assert strongest_against(X, contrib.assign(days_since_last_activity=-0.01), describe) == [None]


@pytest.mark.parametrize("max_reasons", [0, 1, 3])
def test_reason_columns_equal_the_per_lead_reasons(small_tables, max_reasons):
    """The column-wise reasons scoring writes equal what top_reasons and strongest_against
    give lead by lead, for real features (counts, NaN, categories with gaps) and contributions
    of both signs."""
    import json

    from leadscore.features.build import FeatureSpec, build_features
    from leadscore.features.snapshots import open_leads
    from leadscore.features.tables import clean, crm_as_of
    from leadscore.models.reasons import _plain, reason_columns

    moment = pd.Timestamp("2026-06-01", tz="UTC")
    tables = clean(crm_as_of(small_tables, moment))
    spine = open_leads(tables, pd.DatetimeIndex([moment], name="cutoff"), None).head(600)
    X = build_features(tables, spine, FeatureSpec()).reset_index(drop=True)
    rng = np.random.default_rng(4)
    contrib = pd.DataFrame(rng.normal(0, 0.3, X.shape), columns=X.columns)
    contrib["bias"] = -3.0
    got = reason_columns(X, contrib, describe, max_reasons, 0.05)
    up = top_reasons(X, contrib, describe, max_reasons, 0.05)
    down = strongest_against(X, contrib, describe, 0.05)
    assert [("; ".join(r["text"] for r in row)) for row in up] == got.reasons.tolist()
    assert [r["text"] if r else "" for r in down] == got.against.tolist()
    expected_json = [
        json.dumps(
            [
                {
                    "feature": r["feature"],
                    "value": _plain(r["value"]),
                    "impact": round(r["impact"], 4),
                }
                for r in [*ups, *([against] if against else [])]
            ]
        )
        for ups, against in zip(up, down, strict=True)
    ]
    assert got.structured.tolist() == expected_json
    assert sum(bool(r) for r in got.reasons) > (100 if max_reasons else -1)
    assert sum(bool(a) for a in got.against) > 100


JSON_EDGES = [0.0, -0.0, 0.5, -0.5, 3.0, 0.1 + 0.2, 1e-5, 1.5e-4, 1e-4, 9999999999999998.0,
              1e16, 1.2345678901234567e17, -2.5e-300, 5e-324, 1.7976931348623157e308,
              float("nan"), float("inf"), float("-inf")]  # fmt: skip


@pytest.mark.parametrize(
    "values",
    [
        JSON_EDGES,
        [np.float64(v) for v in JSON_EDGES],
        [1, 2.5, None, "web", True, np.int64(4)],  # not all floats: value by value
    ],
)
def test_json_values_of_a_column_equal_json_dumps_value_by_value(values) -> None:
    import json

    from leadscore.models.reasons import _json_values, _plain

    got = _json_values(np.array(values, dtype=object)).tolist()
    assert got == [json.dumps(_plain(v)) for v in values]


def test_json_values_of_random_floats_equal_python_repr() -> None:
    from leadscore.models.reasons import _json_values

    rng = np.random.default_rng(5)
    floats = np.concatenate(
        [rng.normal(0, 1, 3000) * 10.0 ** rng.integers(-30, 30, 3000), rng.random(3000) * 500]
    )
    assert _json_values(floats.astype(object)).tolist() == [repr(float(v)) for v in floats]


def test_ages_worded_by_whole_days_read_as_worded_one_by_one() -> None:
    """`Describer.many` words each whole day once: the same sentences as value by value, for
    fractions, negative fractions (-0.5 reads as today), missing values and other kinds."""
    from leadscore.features.descriptions import FeatureInfo

    words = Describer(
        {
            "lead_age": FeatureInfo("lead_age"),
            "days_since_last_activity": FeatureInfo("recency", days=365),
            "deal_age": FeatureInfo("deal_age"),
            "employees": FeatureInfo("number", "Employees"),
        }
    )
    ages = np.array([0.0, 0.2, -0.5, 1.0, 1.99, 2.0, 400.7, np.nan, 3, "5.5"], dtype=object)
    for name in ("days_since_last_activity", "deal_age", "employees", "unknown"):
        assert words.many(name, ages).tolist() == [words(name, v) for v in ages]
    lead_ages = ages[ages == ages]  # a lead's age is never missing: NaN fails to word either way
    assert words.many("lead_age", lead_ages).tolist() == [words("lead_age", v) for v in lead_ages]
    assert words.many("lead_age", lead_ages)[2] == words("lead_age", 0.0) == "Lead created today"
    assert words.many("lead_age", np.array([], dtype=object)).tolist() == []


def test_an_impact_that_rounds_to_minus_zero_is_written_as_json_writes_it() -> None:
    import json

    from leadscore.models.reasons import reason_columns

    X = pd.DataFrame({"employees": [7.0, 5.0, 9.0]})
    # the first lead has no reason against: its slot is filled with 0.0, beside the -0.0
    contrib = pd.DataFrame({"employees": [0.00001, -0.00001, -0.2], "bias": [-1.0] * 3})
    got = reason_columns(X, contrib, describe, 3, 0.000001).structured.tolist()
    impacts = [[r["impact"] for r in json.loads(row)] for row in got]
    assert [json.dumps(i) for i in impacts] == ["[0.0]", "[-0.0]", "[-0.2]"]
    assert '"impact": -0.0}' in got[1]
