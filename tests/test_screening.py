"""PII and identifier columns never become features, whatever the config says."""

import numpy as np
import pandas as pd
import pytest

from leadscore.features.screening import is_pii_name, screen_columns


@pytest.mark.parametrize(
    ("name", "pii"),
    [
        ("email", True),
        ("Email", True),
        ("work_email_address", True),
        ("Phone Number", True),
        ("mobile", True),
        ("seniority", False),
        ("source", False),
    ],
)
def test_pii_names(name, pii):
    assert is_pii_name(name) is pii


def test_screen_flags_emails_and_identifiers_but_not_honest_columns():
    n = 500
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "contact": [f"person{i}@corp.example.com" for i in range(n)],
            "crm_ref": [f"REF-{i:05d}" for i in range(n)],
            "industry": rng.choice(["tech", "retail", "health"], n),
            "job_title": rng.choice([f"title_{i}" for i in range(60)], n),
            "employees": rng.integers(1, 1000, n).astype(float),
        }
    )
    flagged = screen_columns(X)
    assert set(flagged) == {"contact", "crm_ref"}
    assert "e-mail" in flagged["contact"] and "identifier-like" in flagged["crm_ref"]


def test_small_tables_are_not_flagged_for_being_small():
    X = pd.DataFrame({"source": ["web", "event", "referral"]})
    assert screen_columns(X) == {}
