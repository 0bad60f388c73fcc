"""The leakage audit finds post-outcome columns with evidence, and leaves honest ones alone."""

import numpy as np
import pandas as pd
import pytest

from leadscore.features.build import build_features
from leadscore.features.leakage import (
    AuditRules,
    audit_columns,
    flagged_columns,
    single_feature_auc,
)
from leadscore.features.tables import CrmTables, clean, crm_as_of
from leadscore.features.training_set import timed_training_set
from leadscore.pipeline.config import load_config
from leadscore.pipeline.steps.examples import feature_spec
from leadscore.pipeline.steps.leakage import run_audit as audit
from leadscore.pipeline.synthetic_crm import generate_crm

AS_OF = pd.Timestamp("2026-11-01", tz="UTC")
HONEST = {
    "source",
    "job_title",
    "seniority",
    "department",
    "country",
    "account_industry",
    "account_employees",
    "account_annual_revenue_musd",
    "account_country",
}


@pytest.fixture(scope="module")
def synthetic_audit():
    crm = generate_crm(12_000, seed=21)
    leads = crm.leads.copy()
    # An honest but strong attribute: the hidden propensity itself, known at creation.
    leads["fit_hint"] = leads["lead_id"].map(crm.truth.set_index("lead_id")["p_won"])
    tables = clean(crm_as_of(CrmTables(crm.accounts, leads, crm.activities, crm.deals), AS_OF))
    config = load_config(None, ("features.identifiers=[lead_id, account_id, deal_id, name]",))
    ts = timed_training_set(
        tables, config.snapshots, config.split, feature_spec(config), AS_OF, build_features
    )
    return audit(ts, tables, config), ts


def test_the_planted_leak_is_flagged_with_evidence(synthetic_audit):
    result, _ = synthetic_audit
    assert flagged_columns(result.findings) == ["disqualify_reason"]
    assert result.dropped == ["disqualify_reason"]
    evidence = {f.check: f.evidence for f in result.findings if f.column == "disqualify_reason"}
    assert "filled_in_one_class" in evidence
    assert "where it is filled in all ended not won" in evidence["filled_in_one_class"]


def test_honest_drivers_are_not_flagged_even_when_strong(synthetic_audit):
    result, ts = synthetic_audit
    assert set(ts.attributes) >= HONEST
    flagged = {f.column for f in result.findings}
    assert not flagged & (HONEST | {"fit_hint"})
    # the honest hint is strong, and so are the time-aware engagement features: not a reason
    assert result.aucs["fit_hint"] > 0.7
    assert result.aucs.drop(index="disqualify_reason").max() > 0.8


def test_policy_records_say_what_happened(synthetic_audit):
    result, _ = synthetic_audit
    records = result.records()
    assert {r["verdict"] for r in records} == {"dropped"}
    assert set(records[0]) == {"column", "check", "evidence", "verdict", "price"}
    assert records[0]["price"].startswith("AUC ")  # what dropping it costs, out of fold


def _rng_frame(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    return rng, y


def test_single_feature_auc_is_direction_free_and_does_not_memorise_ids():
    rng, y = _rng_frame()
    strong = pd.Series(y + rng.normal(0, 0.5, y.size))
    assert single_feature_auc(strong, y) == pytest.approx(single_feature_auc(-strong, y))
    ids = pd.Series([f"id{i}" for i in range(y.size)])
    assert single_feature_auc(ids, y) < 0.6


def test_each_check_fires_on_its_own_pattern():
    rng, y = _rng_frame()
    n = y.size
    X = pd.DataFrame(
        {
            "close_amount": np.where(y == 1, rng.integers(100, 900, n), 0).astype(float),
            "loss_note": np.where((y == 0) & (rng.random(n) < 0.5), "budget", None),
            "status_label": np.where(
                y == 1, "Closed Won", rng.choice(["Working", "Closed Lost"], n)
            ),
            "region": rng.choice(["emea", "amer", "apac"], n),
            "status_of_form": rng.choice(["a", "b"], n),
        }
    )
    findings = audit_columns(X, y, list(X.columns)).findings
    checks = {(f.column, f.check) for f in findings if f.verdict == "flagged"}
    assert ("close_amount", "single_feature_auc") in checks
    assert ("close_amount", "value_in_one_class") in checks
    assert ("loss_note", "filled_in_one_class") in checks
    assert ("status_label", "spells_outcome") in checks
    assert not {c for c, _ in checks} & {"region", "status_of_form"}
    review = {f.column for f in findings if f.verdict == "review"}
    assert review == {"status_of_form"}  # a name alone is only a question


def test_timestamps_on_or_after_the_close_are_flagged():
    rng, y = _rng_frame(500)
    closed = pd.Series(
        pd.Timestamp("2025-01-01", tz="UTC")
        + pd.to_timedelta(rng.integers(0, 300, y.size), unit="D")
    )
    stamps = pd.DataFrame(
        {
            "last_modified": closed + pd.Timedelta(hours=3),
            "form_filled": closed - pd.Timedelta(days=60),
        }
    )
    X = pd.DataFrame({"region": rng.choice(["a", "b"], y.size)})
    findings = audit_columns(X, y, ["region"], closed_at=closed, timestamps=stamps).findings
    assert [(f.column, f.check) for f in findings] == [("last_modified", "timestamp_after_outcome")]


def test_allowed_columns_are_reported_but_never_flagged():
    _, y = _rng_frame()
    X = pd.DataFrame({"close_amount": np.where(y == 1, 500.0, 0.0)})
    rules = AuditRules(allow=["Close Amount"])
    findings = audit_columns(X, y, ["close_amount"], rules).findings
    assert findings and {f.verdict for f in findings} == {"allowed"}
    assert flagged_columns(findings) == []


def test_a_key_filled_in_only_for_closed_units_is_a_leak():
    rng, y = _rng_frame()
    keys = pd.DataFrame(
        {"account_id": np.where(y == 1, "acme", np.where(rng.random(y.size) < 0.4, None, "globex"))}
    )
    X = pd.DataFrame({"region": rng.choice(["a", "b"], y.size)})
    findings = audit_columns(X, y, ["region"], keys=keys).findings
    assert [(f.column, f.check) for f in findings] == [("account_id", "missing_in_one_class")]
