"""Today's feature builders give the same values, bit for bit, as the builders before issue 16's
rewrite (frozen in `tests/frozen_features`), on random messy CRM data.

Each seed draws a different CRM: keys as integers or as text, activity rows in time order, in
lead order or shuffled (with exact ties), types in odd spellings, unknown and missing, leads
without activities, booleans with gaps, text with case and spacing variants, accounts with and
without deals, an attribute history, and a spine of several cutoffs (training) or one (scoring).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from frozen_features.build import build_features as frozen_build_features

from leadscore.features.build import FeatureSpec, build_features
from leadscore.features.tables import CrmTables, _repeated, clean
from leadscore.models.reasons import _json_value, _plain

START = pd.Timestamp("2024-01-01", tz="UTC")
SOURCES = ["Paid Search", "paid search ", "PAID-SEARCH", "Referral", ""]
TYPES = [
    "web_visit", "Pricing Page View", "email_open", "EMAIL-CLICK", "form_submit",
    "content_download", "webinar", "demo request", "meeting", "podcast", "", None,
]  # fmt: skip


def _keys(rng: np.random.Generator, n: int, text: bool) -> np.ndarray:
    ids = rng.choice(10 * n, size=n, replace=False) + 1
    return np.array([f"L-{i:07d}" for i in ids], dtype=object) if text else ids.astype("int64")


def random_crm(seed: int) -> tuple[CrmTables, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n_leads, n_accounts = int(rng.integers(50, 400)), int(rng.integers(5, 60))
    text_keys = bool(seed % 2)
    lead_ids = _keys(rng, n_leads, text_keys)
    account_ids = np.arange(1, n_accounts + 1, dtype="int64")
    days = 600
    created = START + pd.to_timedelta(rng.integers(0, days * 86_400, n_leads), unit="s")
    has_account = rng.random(n_leads) < 0.8
    gaps = rng.random(n_leads) < 0.2
    leads = pd.DataFrame(
        {
            "lead_id": lead_ids,
            "account_id": pd.array(
                np.where(has_account, rng.choice(account_ids, n_leads), 0), dtype="Int64"
            ),
            "created_at": created,
            "source": rng.choice(SOURCES, n_leads),
            "employees_band": rng.choice([1.0, 10.0, 100.0, np.nan], n_leads),
            "opted_in": pd.Series(
                np.where(gaps, None, rng.random(n_leads) < 0.5), dtype=object
            ),
            "is_partner": rng.random(n_leads) < 0.1,
            "score_hint": rng.integers(0, 100, n_leads),
            "region": pd.Series(rng.choice(["EMEA", "emea", "Americas", None], n_leads)),
        }
    )  # fmt: skip
    leads.loc[~has_account, "account_id"] = pd.NA
    accounts = pd.DataFrame(
        {
            "account_id": account_ids,
            "industry": rng.choice(["Software", "software ", "Retail", None], n_accounts),
            "employees": rng.choice([5.0, 50.0, 500.0, np.nan], n_accounts),
        }
    )
    n_acts = int(rng.integers(0, 30 * n_leads))
    owner = rng.integers(0, n_leads, n_acts)
    # some activities on the same second (ties), some before their lead was created
    seconds = rng.integers(0, (days + 90) * 86_400, n_acts)
    seconds = np.where(rng.random(n_acts) < 0.1, seconds - seconds % 86_400, seconds)
    activities = pd.DataFrame(
        {
            "lead_id": lead_ids[owner],
            "occurred_at": START + pd.to_timedelta(seconds, unit="s"),
            "activity_type": pd.Series(rng.choice(np.array(TYPES, dtype=object), n_acts)),
        }
    )
    layout = seed % 3
    if layout == 0:
        activities = activities.sort_values("occurred_at", kind="stable")
    elif layout == 1:
        activities = activities.sort_values(["lead_id", "occurred_at"], kind="stable")
    activities = activities.reset_index(drop=True)  # layout 2: shuffled
    n_deals = int(rng.integers(0, n_leads // 3 + 1))
    deal_lead = rng.choice(n_leads, n_deals, replace=False)
    deal_created = created[deal_lead] + pd.to_timedelta(rng.integers(1, 90, n_deals), unit="D")
    closed = rng.random(n_deals) < 0.7
    deals = pd.DataFrame(
        {
            "deal_id": np.arange(n_deals),
            "lead_id": lead_ids[deal_lead],
            "created_at": deal_created,
            "closed_at": pd.Series(
                deal_created + pd.to_timedelta(rng.integers(1, 120, n_deals), unit="D")
            ).where(closed),
            "outcome": pd.Series(rng.choice(["won", "Lost", "WON"], n_deals)).where(closed),
        }
    )
    history_leads = rng.choice(lead_ids, n_leads // 4)
    history = pd.DataFrame(
        {
            "lead_id": pd.Series(history_leads, dtype=object),
            "account_id": pd.Series([None] * len(history_leads), dtype=object),
            "field": "region",
            "value": rng.choice(["EMEA", "APAC", "Americas"], len(history_leads)),
            "changed_at": START
            + pd.to_timedelta(rng.integers(0, days * 86_400, len(history_leads)), unit="s"),
        }
    )
    tables = clean(CrmTables(accounts, leads, activities, deals, history))
    n_cutoffs = 1 if seed % 4 == 0 else int(rng.integers(2, 8))
    cutoffs = START + pd.to_timedelta(np.sort(rng.choice(days, n_cutoffs, replace=False)), unit="D")
    spine = pd.concat(
        [pd.DataFrame({"lead_id": lead_ids[created < c], "cutoff": c}) for c in cutoffs],
        ignore_index=True,
    )
    spine = spine.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # any order
    spine["cutoff"] = spine["cutoff"].astype("datetime64[ns, UTC]")
    return tables, spine


@pytest.mark.parametrize("seed", range(24))
def test_features_are_identical_to_the_builders_before_the_rewrite(seed: int) -> None:
    tables, spine = random_crm(seed)
    spec = FeatureSpec(skip_columns=("lead_id", "account_id"))
    today = build_features(tables, spine, spec)
    before = frozen_build_features(tables, spine, spec)
    assert len(today) == len(spine)
    pd.testing.assert_frame_equal(today, before, check_exact=True)


def test_the_random_data_exercise_what_they_claim() -> None:
    """The equivalence above is only worth something if the data hit the hard cases."""
    seen = {"text keys": False, "shuffled": False, "several cutoffs": False, "unknown": False}
    for seed in range(24):
        tables, spine = random_crm(seed)
        acts = tables.activities
        seen["text keys"] |= not pd.api.types.is_integer_dtype(acts["lead_id"])
        seen["shuffled"] |= not acts["occurred_at"].is_monotonic_increasing and seed % 3 == 2
        seen["several cutoffs"] |= spine["cutoff"].nunique() > 1
        features = build_features(tables, spine, FeatureSpec(skip_columns=("lead_id",)))
        seen["unknown"] |= bool((features.filter(like="act_other").to_numpy() > 0).any())
    assert all(seen.values()), seen


@pytest.mark.parametrize("grouped", [True, False])
def test_repeated_activities_are_found_as_duplicated_finds_them(grouped: bool) -> None:
    """The fast path for logs grouped by lead in time order marks exactly the rows
    `DataFrame.duplicated` marks (keep the first), and the general path is that call."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(0, 80))
        key = pd.DataFrame(
            {
                "lead_id": rng.integers(0, 6, n),
                "occurred_at": rng.integers(0, 5, n),
                "type": rng.integers(0, 3, n),
            }
        )
        if grouped:
            key = key.sort_values(["lead_id", "occurred_at"], kind="stable")
        key = key.assign(lead_id=pd.factorize(key["lead_id"])[0]).reset_index(drop=True)
        assert (_repeated(key) == key.duplicated().to_numpy()).all()


@pytest.mark.parametrize(
    "value",
    [0.1, 1e16, 1e-7, -0.0, 3.0, 123456789.123, np.float64(2.5), np.float32(0.1), np.nan,
     np.inf, 5, np.int64(7), True, np.bool_(False), 'say "hi"', "é", None],
)  # fmt: skip
def test_reason_json_values_are_what_json_writes(value: object) -> None:
    assert _json_value(value) == json.dumps(_plain(value))
