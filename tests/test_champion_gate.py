"""The champion/challenger gate: every decision, with one plain reason line per check."""

import pandas as pd
import pytest

from leadscore.models.champion_gate import GateDecision, decide
from leadscore.models.evaluation import Evaluation
from leadscore.pipeline.config import GateConfig

GATE = GateConfig()  # tolerance 0.005, ECE at most 0.05, 300 examples and 20 wins, clean audit


def evaluation(auc: float, ece: float = 0.02, n: int = 1000, wins: int = 100) -> Evaluation:
    return Evaluation(
        metrics={
            "roc_auc": auc,
            "ece": ece,
            "n": float(n),
            "wins": float(wins),
            "positive_rate": wins / n,
        },
        intervals={},
        grades=pd.DataFrame(),
        segments=pd.DataFrame(),
    )


def assert_well_formed(decision: GateDecision, checks: int) -> None:
    assert len(decision.reasons) == checks
    assert all(r.startswith(("pass: ", "FAIL: ")) for r in decision.reasons)
    assert decision.promote == all(r.startswith("pass: ") for r in decision.reasons)
    assert decision.verdict == ("promoted" if decision.promote else "kept")
    assert decision.summary() == "; ".join(decision.reasons)


def test_better_auc_is_promoted():
    decision = decide(evaluation(0.80), evaluation(0.78), [], GATE)
    assert decision.promote is True
    assert decision.verdict == "promoted"
    assert_well_formed(decision, 4)
    assert decision.reasons == [
        "pass: holdout 1,000 examples with 100 wins (gate: at least 300 and 20)",
        "pass: challenger ECE 0.0200 (gate: at most 0.05)",
        "pass: leakage audit clean",
        "pass: challenger ROC AUC 0.8000 above the champion's 0.7800 on the same holdout "
        "(gate: at least 0.7750, tolerance 0.005)",
    ]


def test_auc_below_the_tolerance_keeps_the_champion_and_names_both_aucs():
    decision = decide(evaluation(0.77), evaluation(0.78), [], GATE)
    assert decision.promote is False
    assert decision.verdict == "kept"
    assert_well_formed(decision, 4)
    assert decision.reasons[:3] == [
        "pass: holdout 1,000 examples with 100 wins (gate: at least 300 and 20)",
        "pass: challenger ECE 0.0200 (gate: at most 0.05)",
        "pass: leakage audit clean",
    ]
    assert decision.reasons[3] == (
        "FAIL: challenger ROC AUC 0.7700 below the champion's 0.7800 on the same holdout "
        "(gate: at least 0.7750, tolerance 0.005)"
    )


def test_auc_within_the_tolerance_is_promoted():
    decision = decide(evaluation(0.777), evaluation(0.78), [], GATE)
    assert decision.verdict == "promoted"
    assert_well_formed(decision, 4)
    assert decision.reasons[3].startswith("pass: challenger ROC AUC 0.7770 below the champion's")


@pytest.mark.parametrize(
    ("challenger_auc", "tolerance", "promote"),
    [
        (0.775, 0.005, True),  # exactly the tolerance below
        (0.7749, 0.005, False),
        (0.70, 0.08, True),  # 0.78 - 0.08 is 0.70000000000000001 in floats: still a pass
        (0.6999, 0.08, False),
        (0.7799, 0.0, False),  # no tolerance: any drop keeps the champion
    ],
)
def test_the_tolerance_boundary(challenger_auc, tolerance, promote):
    gate = GateConfig(auc_tolerance=tolerance)
    decision = decide(evaluation(challenger_auc), evaluation(0.78), [], gate)
    assert decision.promote is promote
    assert_well_formed(decision, 4)


def test_an_exact_tie_is_promoted_and_says_ties():
    decision = decide(evaluation(0.78), evaluation(0.78), [], GateConfig(auc_tolerance=0.0))
    assert decision.promote is True
    assert_well_formed(decision, 4)
    assert decision.reasons[3] == (
        "pass: challenger ROC AUC 0.7800 ties the champion's 0.7800 on the same holdout "
        "(gate: at least 0.7800, tolerance 0.0)"
    )


def test_no_champion_promotes_when_the_absolute_checks_pass_and_says_why():
    note = "no champion: the last one, version 3, no longer exists"
    decision = decide(evaluation(0.70), None, [], GATE, note)
    assert decision.promote is True
    assert_well_formed(decision, 4)
    assert decision.reasons[3] == f"pass: {note}"
    assert not any("ROC AUC" in r for r in decision.reasons)


def test_no_champion_without_a_note_says_none_yet():
    decision = decide(evaluation(0.70), None, [], GATE)
    assert decision.reasons[-1] == "pass: no champion yet"
    assert decision.promote is True


def test_no_champion_still_keeps_a_challenger_that_fails_an_absolute_check():
    note = "no champion: the last one, version 3, no longer exists"
    decision = decide(evaluation(0.90, ece=0.08), None, [], GATE, note)
    assert decision.promote is False
    assert decision.verdict == "kept"
    assert_well_formed(decision, 4)
    assert decision.reasons[1] == "FAIL: challenger ECE 0.0800 (gate: at most 0.05)"
    assert decision.reasons[3] == f"pass: {note}"


def test_ece_above_the_ceiling_keeps_the_champion_even_with_a_better_auc():
    decision = decide(evaluation(0.85, ece=0.0501), evaluation(0.78), [], GATE)
    assert decision.promote is False
    assert_well_formed(decision, 4)
    assert decision.reasons[1] == "FAIL: challenger ECE 0.0501 (gate: at most 0.05)"
    assert [r.split(":")[0] for r in decision.reasons] == ["pass", "FAIL", "pass", "pass"]


def test_ece_at_the_ceiling_passes():
    decision = decide(evaluation(0.85, ece=0.05), evaluation(0.78), [], GATE)
    assert decision.promote is True
    assert decision.reasons[1] == "pass: challenger ECE 0.0500 (gate: at most 0.05)"


def test_undefined_ece_keeps_the_champion():
    decision = decide(evaluation(0.85, ece=float("nan")), evaluation(0.78), [], GATE)
    assert decision.promote is False
    assert decision.reasons[1].startswith("FAIL: challenger ECE nan")


@pytest.mark.parametrize(
    ("n", "wins", "promote", "text"),
    [
        (299, 100, False, "FAIL: holdout 299 examples with 100 wins (gate: at least 300 and 20)"),
        (5000, 19, False, "FAIL: holdout 5,000 examples with 19 wins (gate: at least 300 and 20)"),
        (300, 20, True, "pass: holdout 300 examples with 20 wins (gate: at least 300 and 20)"),
    ],
)
def test_too_small_a_holdout_keeps_the_champion(n, wins, promote, text):
    decision = decide(evaluation(0.85, n=n, wins=wins), evaluation(0.78), [], GATE)
    assert decision.promote is promote
    assert_well_formed(decision, 4)
    assert decision.reasons[0] == text


def test_small_holdout_limits_come_from_the_config():
    gate = GateConfig(min_holdout=2000, min_holdout_wins=150)
    decision = decide(evaluation(0.85, n=1500, wins=200), evaluation(0.78), [], gate)
    assert decision.promote is False
    assert decision.reasons[0] == (
        "FAIL: holdout 1,500 examples with 200 wins (gate: at least 2,000 and 150)"
    )


def test_flagged_leakage_features_keep_the_champion_when_a_clean_audit_is_required():
    flagged = ["stage_at_close", "days_to_close"]
    decision = decide(evaluation(0.85), evaluation(0.78), flagged, GATE)
    assert decision.promote is False
    assert_well_formed(decision, 4)
    assert decision.reasons[2] == (
        "FAIL: leakage audit flagged feature(s) kept in the model: stage_at_close, days_to_close"
    )


def test_flagged_leakage_features_do_not_matter_without_a_clean_audit_requirement():
    gate = GateConfig(require_clean_audit=False)
    decision = decide(evaluation(0.85), evaluation(0.78), ["stage_at_close"], gate)
    assert decision.promote is True
    assert_well_formed(decision, 3)
    assert not any("leakage" in r for r in decision.reasons)


def test_undefined_challenger_auc_keeps_the_champion():
    decision = decide(evaluation(float("nan")), evaluation(0.78), [], GATE)
    assert decision.promote is False
    assert_well_formed(decision, 4)
    assert decision.reasons[3] == "FAIL: ROC AUC undefined on this holdout (one class only)"


def test_undefined_champion_auc_keeps_the_champion():
    decision = decide(evaluation(0.85), evaluation(float("nan")), [], GATE)
    assert decision.promote is False
    assert decision.reasons[3] == "FAIL: ROC AUC undefined on this holdout (one class only)"


def test_every_failed_check_is_reported_not_just_the_first():
    decision = decide(
        evaluation(0.70, ece=0.2, n=100, wins=5), evaluation(0.78), ["leaky_column"], GATE
    )
    assert decision.promote is False
    assert_well_formed(decision, 4)
    assert all(r.startswith("FAIL: ") for r in decision.reasons)
