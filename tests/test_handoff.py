"""The hand-off's parts, on small frames: lifecycle stages, grades and MQLs per population
within a weekly capacity, score changes as the difference of two batches, the agreement
table's arithmetic, and the closed loop's outcomes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadscore.features.lifecycle import MARKETING, SALES, LifecycleRule, accepted_at, stages_at
from leadscore.features.tables import CrmTables
from leadscore.models.agreement import Policy, policy_rows, within_interval
from leadscore.models.handoff_outcomes import (
    LOST,
    MISSED_SLA,
    OPEN_WITH_SALES,
    WAITING,
    WON,
    hand_off_outcomes,
)
from leadscore.models.score_changes import INTO_MQL, OUT_OF_MQL, score_changes
from leadscore.models.scores import assign_grades, mql_flags
from leadscore.models.scoring import HandOffRules, HandOffState, ScoringRules, regrade
from leadscore.pipeline.config import load_config
from leadscore.pipeline.errors import InputError

T = pd.Timestamp("2026-03-01", tz="UTC")
DAY = pd.Timedelta(days=1)


def _tables(**leads_columns: object) -> CrmTables:
    leads = pd.DataFrame(
        {"lead_id": [1, 2, 3], "account_id": None, "created_at": [T - 30 * DAY] * 3} | leads_columns
    )
    deals = pd.DataFrame(
        {
            "deal_id": [10, 11],
            "lead_id": [1, 2],
            "created_at": [T - DAY, T],  # lead 2's deal opens exactly at the cutoff
            "closed_at": pd.Series([pd.NaT, pd.NaT], dtype="datetime64[ns, UTC]"),
            "outcome": [None, None],
        }
    )
    return CrmTables(pd.DataFrame({"account_id": []}), leads, pd.DataFrame(), deals)


def test_a_lead_is_with_sales_once_its_first_deal_opened_strictly_before_the_cutoff():
    spine = pd.DataFrame({"lead_id": [1, 2, 3], "cutoff": [T] * 3})
    stages = stages_at(accepted_at(_tables(), LifecycleRule()), spine)
    assert stages.tolist() == [SALES, MARKETING, MARKETING]


def test_a_date_column_or_a_status_history_can_say_when_sales_accepted():
    tables = _tables(**{"Became SQL": ["2026-02-01", None, "2026-03-05"]})
    spine = pd.DataFrame({"lead_id": [1, 2, 3], "cutoff": [T] * 3})
    rule = LifecycleRule("column", sql_column="became_sql")
    assert stages_at(accepted_at(tables, rule), spine).tolist() == [SALES, MARKETING, MARKETING]
    history = pd.DataFrame(
        {
            "lead_id": [1, 2, 3],
            "account_id": None,
            "field": ["Status", "Status", "Status"],
            "value": ["Working", "Sales Accepted", "Sales Accepted"],
            "changed_at": [T - 5 * DAY, T - 2 * DAY, T + DAY],
        }
    )
    tables = CrmTables(tables.accounts, tables.leads, tables.activities, tables.deals, history)
    rule = LifecycleRule("status_history", status_field="status", sql_values=("sales accepted",))
    assert stages_at(accepted_at(tables, rule), spine).tolist() == [MARKETING, SALES, MARKETING]


def test_lifecycle_settings_are_checked():
    with pytest.raises(InputError, match="sql_column"):
        load_config(None, ("lifecycle.sql_from=column",))
    with pytest.raises(InputError, match=r"moved to agreement\.capacity_per_week"):
        load_config(None, ("scoring.mql_capacity=10",))
    with pytest.raises(InputError, match=r"agreement\.mql_grades"):
        load_config(None, ("agreement.mql_grades=[Z]",))


def _scores(n_marketing: int, n_sales: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "lead_id": np.arange(n_marketing + n_sales),
            "probability": rng.random(n_marketing + n_sales) * 0.5,
            "stage": [MARKETING] * n_marketing + [SALES] * n_sales,
        }
    )


def test_only_marketing_leads_are_mqls_and_each_population_is_graded_apart():
    config = load_config(
        None, ("scoring.grade_by=percentile", "scoring.grades={A: 0.1, B: 0.3, C: 0.6}")
    )
    scores = _scores(1000, 300)
    scores.loc[scores["stage"] == SALES, "probability"] += 0.5  # sales' leads score higher
    out = regrade(scores, config.scoring, config.agreement)
    assert not out.loc[out["stage"] == SALES, "mql"].any()
    for stage in (MARKETING, SALES):
        grades = out.loc[out["stage"] == stage, "grade"].value_counts(normalize=True)
        assert set(grades.index) == {"A", "B", "C", "D"}
        assert grades["A"] == pytest.approx(0.1, abs=0.01)
    assert out["mql"].sum() == (out.loc[out["stage"] == MARKETING, "grade"].isin(["A", "B"])).sum()


def _regraded_as_before(
    scores: pd.DataFrame, rules: ScoringRules, policy: HandOffRules
) -> tuple[list, list]:
    """Grades and MQL flags as `regrade` drew them before it used integer codes (one
    object array of stages, np.unique over it), without a weekly capacity's standing MQLs."""
    proba = scores["probability"].to_numpy(dtype=float)
    stage = (
        scores["stage"].astype(object).where(scores["stage"].notna(), MARKETING).to_numpy()
        if "stage" in scores
        else np.full(len(scores), MARKETING, dtype=object)
    )
    grades = np.full(len(scores), None, dtype=object)
    for name in np.unique(stage):
        mask = stage == name
        grades[mask] = assign_grades(proba[mask], rules.grades, rules.grade_by).to_numpy()
    marketing = stage == MARKETING
    flags = np.zeros(len(scores), dtype=bool)
    flags[marketing] = mql_flags(
        proba[marketing],
        pd.Series(grades[marketing]),
        policy.mql_grades,
        policy.mql_min_score,
        policy.capacity_per_week,
        np.zeros(int(marketing.sum()), dtype=bool),
    )
    return list(grades), flags.tolist()


@pytest.mark.parametrize(
    "stages",
    [
        "no stage column",
        [MARKETING, SALES, None, SALES, None, MARKETING] * 50,  # missing: marketing's
        [None, SALES, None, SALES] * 50,  # marketing only through missing stages
        [SALES] * 200,  # no marketing lead at all
        pd.Categorical([MARKETING, SALES, "partner"] * 70),  # categorical, a third stage
        pd.array([MARKETING, SALES, None] * 70, dtype="str"),
        [],
    ],
)
@pytest.mark.parametrize("grade_by", ["probability", "percentile"])
def test_grades_and_mqls_by_stage_codes_are_those_drawn_before(stages, grade_by: str) -> None:
    config = load_config(
        None,
        (
            f"scoring.grade_by={grade_by}",
            "scoring.grades={A: 0.1, B: 0.3, C: 0.6}"
            if grade_by == "percentile"
            else "scoring.grades={A: 0.4, B: 0.2, C: 0.1}",
            "agreement.capacity_per_week=15",
        ),
    )
    n = 200 if isinstance(stages, str) else len(stages)
    scores = pd.DataFrame(
        {"lead_id": np.arange(n), "probability": np.random.default_rng(n).random(n) * 0.6}
    )
    if not isinstance(stages, str):
        scores["stage"] = stages
    out = regrade(scores, config.scoring, config.agreement)
    grades, flags = _regraded_as_before(scores, config.scoring, config.agreement)
    assert out["grade"].astype(object).tolist() == grades
    assert out["mql"].tolist() == flags


def test_a_weekly_capacity_keeps_standing_mqls_and_spends_what_is_left_on_the_best_new_ones():
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    grades = pd.Series(["A"] * 5)
    standing = np.array([False, False, False, True, False])
    flags = mql_flags(p, grades, ("A",), capacity=2, standing=standing)
    assert flags.tolist() == [True, True, False, True, False]
    config = load_config(
        None, ("agreement.capacity_per_week=3", "agreement.mql_grades=[A, B, C, D]")
    )
    scores = _scores(10, 0)
    state = HandOffState(standing=frozenset({"0"}), handed_this_week=2)
    out = regrade(scores, config.scoring, config.agreement, state)
    best_new = scores[scores["lead_id"] != 0].nlargest(1, "probability")["lead_id"]
    assert set(out.loc[out["mql"], "lead_id"]) == {0, *best_new}


@settings(max_examples=60, deadline=None)
@given(
    old=st.dictionaries(st.integers(0, 30), st.tuples(st.sampled_from("ABCD"), st.booleans())),
    new=st.dictionaries(st.integers(0, 30), st.tuples(st.sampled_from("ABCD"), st.booleans())),
)
def test_score_changes_are_exactly_the_difference_of_two_batches(old, new):
    def frame(batch: dict[int, tuple[str, bool]]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "lead_id": list(batch),
                "grade": [g for g, _ in batch.values()],
                "mql": [m for _, m in batch.values()],
                "score": 50,
                "stage": MARKETING,
                "as_of": T,
                "scored_at": T,
            }
        )

    changes = score_changes(frame(old) if old else None, frame(new), "b1", T, T)
    expected = {}
    for lead in set(old) | set(new):
        before, after = old.get(lead, (None, False)), new.get(lead, (None, False))
        if before != after:
            kind = {(False, True): INTO_MQL, (True, False): OUT_OF_MQL}.get(
                (before[1], after[1]), "grade"
            )
            expected[lead] = (kind, before[0], after[0])

    def text(value: object) -> object:
        return None if pd.isna(value) else value

    got = {
        int(r.lead_id): (r.change, text(r.old_grade), text(r.new_grade))
        for r in changes.itertuples()
    }
    assert got == expected


def test_the_agreement_table_scales_the_holdout_to_leads_a_week_and_its_expectation_holds():
    rng = np.random.default_rng(3)
    cutoffs = pd.date_range("2026-01-01", periods=3, freq="7D", tz="UTC")
    n = 4000
    p = rng.beta(0.5, 8, n * 3)
    holdout = pd.DataFrame(
        {
            "lead_id": np.tile(np.arange(n), 3),
            "cutoff": np.repeat(cutoffs, n),
            "probability": p,
            "label": (rng.random(n * 3) < p).astype(int),  # calibrated by construction
        }
    )
    policies = [
        Policy("all", lambda q: np.ones(len(q), bool), None),
        Policy("top 100 a week", lambda q: q > 0.05, 100),
        Policy("score >= 20", lambda q: q >= 0.2, None),
    ]
    rows = policy_rows(holdout, policies, holdout_fraction=0.5)
    # 4,000 sampled leads a week at a 50% sample: 8,000 leads a week
    assert rows.loc[0, "mqls_per_week"] == pytest.approx(8000)
    assert rows.loc[0, "realized_share_of_wins"] == pytest.approx(1.0)
    assert rows.loc[1, "mqls_per_week"] == pytest.approx(100, abs=1)
    assert rows.loc[1, "expected_win_rate"] > rows.loc[0, "expected_win_rate"]
    assert within_interval(rows).all(), rows
    left = rows.loc[2, "wins_left_with_marketing_per_week"] + rows.loc[2, "realized_wins_per_week"]
    assert left == pytest.approx(rows.loc[0, "realized_wins_per_week"])


def test_each_hand_off_gets_what_happened_next():
    handoffs = pd.DataFrame({"lead_id": [1, 2, 3, 4, 5], "as_of": [T] * 5, "grade": "A"})
    accepted = pd.Series([T + DAY, T + 2 * DAY, T + 3 * DAY, pd.NaT, pd.NaT], index=[1, 2, 3, 4, 5])
    outcomes = pd.DataFrame(
        {
            "closed_at": [T + 20 * DAY, T + 30 * DAY, pd.NaT, pd.NaT, pd.NaT],
            "won_at": [T + 20 * DAY, pd.NaT, pd.NaT, pd.NaT, pd.NaT],
        },
        index=[1, 2, 3, 4, 5],
    )
    later = hand_off_outcomes(handoffs, accepted, outcomes, T + 40 * DAY, sla_days=7)
    assert later["outcome"].tolist() == [WON, LOST, OPEN_WITH_SALES, MISSED_SLA, MISSED_SLA]
    soon = hand_off_outcomes(handoffs, accepted.iloc[:0], outcomes.iloc[:0], T + 2 * DAY, 7)
    assert set(soon["outcome"]) == {WAITING}
    assert later["accepted_within_sla"].tolist() == [True, True, True, False, False]


def test_percentile_grades_never_exceed_their_share_even_with_ties():
    from leadscore.models.scores import grade_thresholds, to_grade, to_grade_by_percentile

    p = np.array([0.9] * 5 + [0.5] * 30 + [0.1] * 65)  # isotonic steps: big blocks of ties
    grades = to_grade_by_percentile(p, {"A": 0.10, "B": 0.30})
    shares = grades.value_counts(normalize=True)
    assert shares["A"] <= 0.10 and shares.get("B", 0) <= 0.30
    assert set(grades[p == 0.5]) == {"D"}  # a block straddling B's boundary falls below it
    cut = grade_thresholds(np.linspace(0, 1, 1001), {"A": 0.1, "B": 0.3}, "percentile")
    assert cut["A"] == pytest.approx(0.9, abs=0.002) and cut["B"] == pytest.approx(0.7, abs=0.002)
    assert to_grade(np.array([0.95, 0.8, 0.2]), cut).tolist() == ["A", "B", "D"]
    # one lead at a time grades the holdout as the batch did, ties included
    tied = grade_thresholds(p, {"A": 0.10, "B": 0.30}, "percentile")
    assert to_grade(p, tied).tolist() == grades.tolist()
