"""A synthetic CRM history with a documented hidden propensity, for demos, tests and benchmarks.

How outcomes are made (the "hidden propensity"):

    fit    = industry + company size + seniority + department + channel effects + account noise
    intent ~ Normal(0, 1), a per-lead latent that is never written out
    logit(p_won) = base(t) + fit + 1.3 * intent + Normal(0, 0.6)
    won    ~ Bernoulli(p_won)

`intent` drives what the lead does: how many activities it has and what share of them are
high-value (pricing-page views, demo requests, meetings, webinars, form submissions). Engagement
rises after the lead is created and then decays (a gamma-shaped timeline). Won leads, and an
intent-dependent share of the others, get a deal; deals close won or lost after a sales cycle that
grows with company size. Deals still open at the end of the history have no close date or outcome.
`truth.parquet` holds p_won per lead for evaluation only; the pipeline never reads it.

The mess of real exports is planted on purpose: missing firmographics and titles, rare industries
and countries, inconsistent capitalisation, about 0.5% duplicated activity rows, a slow drift
(channel mix moves towards paid search and the base rate falls over the two years), and one leak:
`leads.disqualify_reason` is filled in only once a lead's deal has been lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DEFAULT_END = pd.Timestamp("2026-11-01", tz="UTC")
HISTORY_DAYS = 730

INDUSTRIES = {  # name: (share, effect on the win logit)
    "Technology": (0.22, 0.45),
    "Financial Services": (0.14, 0.30),
    "Healthcare": (0.12, 0.15),
    "Manufacturing": (0.12, 0.0),
    "Retail": (0.10, -0.25),
    "Education": (0.08, -0.45),
    "Government": (0.06, -0.35),
    "Media": (0.06, -0.10),
    "Logistics": (0.05, 0.05),
    "Energy": (0.04, 0.20),
    "Agriculture": (0.006, -0.2),
    "Nonprofit": (0.003, -0.6),
    "Mining": (0.001, 0.3),
}
COUNTRIES = {
    "United States": 0.42,
    "United Kingdom": 0.12,
    "Germany": 0.09,
    "Canada": 0.07,
    "France": 0.06,
    "Australia": 0.05,
    "Netherlands": 0.04,
    "India": 0.06,
    "Brazil": 0.04,
    "Singapore": 0.03,
    "Iceland": 0.001,
    "Chile": 0.004,
    "Kenya": 0.002,
}
SENIORITIES = {  # name: (share, effect)
    "C-Level": (0.07, 0.55),
    "VP": (0.10, 0.65),
    "Director": (0.16, 0.45),
    "Manager": (0.27, 0.10),
    "Individual Contributor": (0.32, -0.35),
    "Student": (0.08, -1.40),
}
DEPARTMENTS = {
    "Marketing": (0.26, 0.30),
    "Sales": (0.20, 0.20),
    "IT": (0.16, 0.15),
    "Engineering": (0.14, 0.0),
    "Operations": (0.10, -0.05),
    "Finance": (0.08, -0.10),
    "HR": (0.06, -0.40),
}
SOURCES = {  # name: (share at start, share at end, effect)
    "Website": (0.20, 0.18, 0.20),
    "Organic Search": (0.14, 0.12, 0.05),
    "Paid Search": (0.10, 0.22, -0.20),
    "Referral": (0.10, 0.06, 0.70),
    "Event": (0.08, 0.07, 0.25),
    "Partner": (0.07, 0.07, 0.45),
    "Outbound": (0.10, 0.08, -0.30),
    "Social": (0.08, 0.10, -0.45),
    "Webinar": (0.06, 0.05, 0.15),
    "Content Syndication": (0.07, 0.05, -0.55),
}
LOW_VALUE = {"web_visit": 0.45, "email_open": 0.35, "email_click": 0.12, "content_download": 0.08}
HIGH_VALUE = {
    "pricing_page_view": 0.40,
    "form_submit": 0.20,
    "webinar": 0.18,
    "demo_request": 0.12,
    "meeting": 0.10,
}
LOSS_REASONS = ["No budget", "Went with a competitor", "No response", "Bad timing", "Not a fit"]


@dataclass(frozen=True)
class SyntheticCrm:
    """The four canonical tables plus the hidden truth."""

    accounts: pd.DataFrame
    leads: pd.DataFrame
    activities: pd.DataFrame
    deals: pd.DataFrame
    truth: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "accounts": self.accounts,
            "leads": self.leads,
            "activities": self.activities,
            "deals": self.deals,
            "truth": self.truth,
        }


def _pick(rng: np.random.Generator, table: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw n category indices with the table's shares; return (names, index)."""
    names = np.array(list(table))
    shares = np.array([v[0] if isinstance(v, tuple) else v for v in table.values()], dtype=float)
    index = rng.choice(len(names), size=n, p=shares / shares.sum())
    return names, index


def _effects(table: dict) -> np.ndarray:
    return np.array([v[-1] for v in table.values()], dtype=float)


def _mess_case(rng: np.random.Generator, values: pd.Series, rate: float) -> pd.Series:
    """Recase a share of the values, as hand-typed CRM fields are."""
    out = values.astype(object).copy()
    mask = (rng.random(len(out)) < rate) & out.notna().to_numpy()
    styles = rng.integers(0, 3, size=int(mask.sum()))
    picked = out[mask].astype(str).to_numpy()
    recased = np.where(
        styles == 0,
        np.char.lower(picked.astype(str)),
        np.where(
            styles == 1, np.char.upper(picked.astype(str)), np.char.add(picked.astype(str), " ")
        ),
    )
    out[mask] = recased
    return out


def _blank(rng: np.random.Generator, values: pd.Series, rate: float) -> pd.Series:
    out = values.copy()
    out[rng.random(len(out)) < rate] = None
    return out


def _drifted(
    leads: pd.DataFrame, activities: pd.DataFrame, end: pd.Timestamp, days: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The recent leads shifted (see `generate_crm`), with a random stream of their own."""
    rng = np.random.default_rng([seed, 20261127])
    recent = (leads["created_at"] >= end - pd.Timedelta(days=days)).to_numpy()
    n = int(recent.sum())
    leads = leads.copy()
    leads.loc[recent, "source"] = rng.choice(["Content Syndication", "Social"], n)
    leads.loc[recent, "seniority"] = rng.choice(["Student", "Individual Contributor"], n)
    quiet = activities["lead_id"].isin(leads.loc[recent, "lead_id"]).to_numpy()
    dropped = quiet & (rng.random(len(activities)) < 0.6)
    return leads, activities[~dropped].reset_index(drop=True)


def generate_crm(
    n_leads: int = 20_000, seed: int = 0, end: pd.Timestamp = DEFAULT_END, drift_days: int = 0
) -> SyntheticCrm:
    """Generate about two years of CRM history ending at `end`, deterministic for a seed.

    `drift_days` > 0 plants a population shift for `leadscore monitor` to find: leads created
    in the last `drift_days` days come from a new campaign (content syndication and social,
    mostly students and juniors) and engage less (60% of their activities never happen).
    Everything else is the same as without drift."""
    if n_leads < 1:
        raise ValueError("n_leads must be positive")
    rng = np.random.default_rng(seed)
    end = (
        pd.Timestamp(end).tz_convert("UTC")
        if pd.Timestamp(end).tzinfo
        else pd.Timestamp(end, tz="UTC")
    )
    start = end - pd.Timedelta(days=HISTORY_DAYS)
    day = np.timedelta64(1, "D").astype("timedelta64[s]").astype(np.int64)
    start_s = start.value // 1_000_000_000

    # Accounts: a pool of companies with firmographics and a hidden account-level effect.
    n_accounts = max(1, n_leads // 4)
    ind_names, ind_idx = _pick(rng, INDUSTRIES, n_accounts)
    cty_names, cty_idx = _pick(rng, COUNTRIES, n_accounts)
    employees = np.round(np.exp(rng.normal(np.log(180), 1.5, n_accounts))).clip(1, 300_000)
    revenue = np.round(employees * np.exp(rng.normal(np.log(0.16), 0.6, n_accounts)), 2)
    account_effect = rng.normal(0, 0.3, n_accounts)
    size_effect = 0.28 * np.clip(np.log10(employees) - 2.0, -1.5, 2.0)
    account_fit = _effects(INDUSTRIES)[ind_idx] + size_effect + account_effect
    account_ids = np.arange(1, n_accounts + 1, dtype=np.int64) + 100_000
    accounts = pd.DataFrame(
        {
            "account_id": account_ids,
            "name": [f"Company {i}" for i in range(n_accounts)],
            "industry": _mess_case(rng, pd.Series(ind_names[ind_idx]), 0.04),
            "employees": _blank(rng, pd.Series(employees), 0.12),
            "annual_revenue_musd": _blank(rng, pd.Series(revenue), 0.20),
            "country": _blank(rng, pd.Series(cty_names[cty_idx], dtype=object), 0.03),
        }
    )
    accounts["industry"] = _blank(rng, accounts["industry"], 0.05)

    # Leads: arrive over time at a growing rate; 80% belong to a known account.
    growth = 0.8
    u = rng.random(n_leads)
    frac = (-1 + np.sqrt(1 + 2 * growth * u * (1 + growth / 2))) / growth
    created_s = start_s + np.floor(frac * HISTORY_DAYS * day).astype(np.int64)
    order = np.argsort(created_s, kind="stable")
    created_s, frac = created_s[order], frac[order]
    popularity = rng.pareto(2.0, n_accounts) + 1
    acct_idx = rng.choice(n_accounts, size=n_leads, p=popularity / popularity.sum())
    has_account = rng.random(n_leads) < 0.8
    sen_names, sen_idx = _pick(rng, SENIORITIES, n_leads)
    dep_names, dep_idx = _pick(rng, DEPARTMENTS, n_leads)
    src_names = np.array(list(SOURCES))
    share_start = np.array([v[0] for v in SOURCES.values()])
    share_end = np.array([v[1] for v in SOURCES.values()])
    shares = share_start[None, :] * (1 - frac[:, None]) + share_end[None, :] * frac[:, None]
    cum = np.cumsum(shares / shares.sum(axis=1, keepdims=True), axis=1)
    src_idx = (rng.random(n_leads)[:, None] > cum).sum(axis=1).clip(0, len(src_names) - 1)
    lead_cty_names, lead_cty_idx = _pick(rng, COUNTRIES, n_leads)

    fit = (
        np.where(has_account, account_fit[acct_idx], -0.35)
        + _effects(SENIORITIES)[sen_idx]
        + _effects(DEPARTMENTS)[dep_idx]
        + _effects(SOURCES)[src_idx]
    )
    intent = rng.normal(0, 1, n_leads)
    base = -3.0 - 0.35 * frac  # drift: the market gets harder over the two years
    logit = base + fit + 1.3 * intent + rng.normal(0, 0.6, n_leads)
    p_won = 1 / (1 + np.exp(-logit))
    won = rng.random(n_leads) < p_won

    # Deals: every eventual win, plus an engaged share of the rest (which are lost).
    gets_deal = won | (rng.random(n_leads) < 1 / (1 + np.exp(-(-2.2 + 0.9 * intent + 0.4 * fit))))
    deal_delay = rng.gamma(2.0, 18.0, n_leads) * np.exp(-0.25 * intent)
    emp_lead = np.where(has_account, employees[acct_idx], 50.0)
    cycle_mean = 35 * (1 + 0.25 * np.clip(np.log10(emp_lead) - 1, 0, 4))
    cycle = rng.gamma(2.5, cycle_mean / 2.5) * np.where(won, 1.0, 0.8)
    deal_created_s = created_s + (deal_delay * day).astype(np.int64)
    deal_closed_s = deal_created_s + (cycle * day).astype(np.int64)
    end_s = end.value // 1_000_000_000
    deal_exists = gets_deal & (deal_created_s < end_s)
    deal_closed = deal_exists & (deal_closed_s < end_s)

    # Activities: count and mix follow intent; timing rises then decays after creation.
    expected = np.exp(2.95 + 0.45 * intent + 0.15 * fit) * np.where(
        sen_names[sen_idx] == "Student", 0.6, 1.0
    )
    counts = rng.poisson(expected)
    lead_of = np.repeat(np.arange(n_leads), counts)
    tau = np.exp(rng.normal(np.log(28), 0.5, n_leads))
    offset_days = rng.gamma(1.6, tau[lead_of] / 1.6)
    # Deal leads see a burst of demo requests and meetings around the deal's creation.
    burst_leads = np.flatnonzero(deal_exists)
    burst_n = rng.integers(1, 4, burst_leads.size)
    burst_of = np.repeat(burst_leads, burst_n)
    burst_offset = (deal_created_s[burst_of] - created_s[burst_of]) / day + rng.normal(
        -3, 6, burst_of.size
    )
    lead_of = np.concatenate([lead_of, burst_of])
    offset_days = np.concatenate([offset_days, np.clip(burst_offset, 0.01, None)])
    occurred_s = created_s[lead_of] + (offset_days * day).astype(np.int64)

    high_share = 1 / (1 + np.exp(-(-1.7 + 1.0 * intent + 0.2 * fit)))
    is_high = rng.random(lead_of.size) < high_share[lead_of]
    is_high[counts.sum() :] = True
    # Activity types are integer codes into `kinds` until the end: 20M strings are slow.
    kinds = [*LOW_VALUE, *HIGH_VALUE]
    code_of = {kind: i for i, kind in enumerate(kinds)}
    low_pick = rng.choice(len(LOW_VALUE), lead_of.size, p=np.array(list(LOW_VALUE.values())))
    high_p = np.array(list(HIGH_VALUE.values()))
    high_pick = rng.choice(len(HIGH_VALUE), lead_of.size, p=high_p / high_p.sum())
    burst_codes = np.array([code_of["demo_request"], code_of["meeting"]])[
        rng.integers(0, 2, burst_of.size)
    ]
    types = np.where(is_high, len(LOW_VALUE) + high_pick, low_pick)
    types[counts.sum() :] = burst_codes

    # After a deal closes the lead mostly goes quiet; keep a few post-sale email opens.
    closed_at_of = np.where(deal_closed, deal_closed_s, np.iinfo(np.int64).max)[lead_of]
    after_close = occurred_s >= closed_at_of
    keep = (occurred_s < end_s) & (~after_close | (rng.random(lead_of.size) < 0.15))
    lead_of, occurred_s, types = lead_of[keep], occurred_s[keep], types[keep]
    types = np.where(after_close[keep], code_of["email_open"], types)
    recase = rng.random(types.size) < 0.02
    types[recase] += len(kinds)  # 'pricing_page_view' -> 'Pricing Page View'
    labels = [*kinds, *(k.replace("_", " ").title() for k in kinds)]
    dup = np.flatnonzero(rng.random(lead_of.size) < 0.005)
    lead_of = np.concatenate([lead_of, lead_of[dup]])
    occurred_s = np.concatenate([occurred_s, occurred_s[dup]])
    types = np.concatenate([types, types[dup]])
    # One int64 sort key (lead, seconds since start) sorts twice as fast as np.lexsort.
    act_order = np.argsort((lead_of.astype(np.int64) << 32) | (occurred_s - start_s), kind="stable")

    lead_ids = np.arange(1, n_leads + 1, dtype=np.int64) + 1_000_000
    to_ts = lambda seconds: pd.to_datetime(seconds, unit="s", utc=True)  # noqa: E731
    activities = pd.DataFrame(
        {
            "lead_id": lead_ids[lead_of[act_order]],
            "occurred_at": to_ts(occurred_s[act_order]),
            "activity_type": pd.Categorical.from_codes(
                types[act_order], categories=labels
            ).reorder_categories(sorted(labels)),
        }
    )

    titles = pd.Series(
        np.char.add(np.char.add(sen_names[sen_idx].astype(str), " of "), dep_names[dep_idx])
    )
    titles = titles.where(sen_names[sen_idx] != "Student", "Student")
    lost_closed = deal_closed & ~won
    leads = pd.DataFrame(
        {
            "lead_id": lead_ids,
            "account_id": pd.array(np.where(has_account, account_ids[acct_idx], 0), dtype="Int64"),
            "created_at": to_ts(created_s),
            "email": [f"lead{i}@example.com" for i in lead_ids],
            "source": _mess_case(rng, pd.Series(src_names[src_idx]), 0.03),
            "job_title": _blank(rng, titles, 0.06),
            "seniority": _blank(rng, pd.Series(sen_names[sen_idx]), 0.08),
            "department": _blank(rng, pd.Series(dep_names[dep_idx]), 0.10),
            "country": _blank(rng, pd.Series(lead_cty_names[lead_cty_idx]), 0.04),
            "disqualify_reason": np.where(
                lost_closed, np.array(LOSS_REASONS)[rng.integers(0, 5, n_leads)], None
            ),
        }
    )
    leads.loc[~has_account, "account_id"] = pd.NA

    deal_rows = np.flatnonzero(deal_exists)
    amount = np.round(np.exp(rng.normal(np.log(8000), 0.6, n_leads)) * np.sqrt(emp_lead / 50), -1)
    deals = pd.DataFrame(
        {
            "deal_id": np.arange(1, deal_rows.size + 1, dtype=np.int64) + 5_000_000,
            "lead_id": lead_ids[deal_rows],
            "account_id": leads["account_id"].to_numpy()[deal_rows],
            "created_at": to_ts(deal_created_s[deal_rows]),
            "closed_at": to_ts(deal_closed_s[deal_rows]).where(deal_closed[deal_rows]),
            "outcome": pd.Series(np.where(won[deal_rows], "won", "lost"), dtype=object).where(
                deal_closed[deal_rows], None
            ),
            "amount": amount[deal_rows],
        }
    )
    truth = pd.DataFrame({"lead_id": lead_ids, "p_won": p_won})
    if drift_days > 0:
        leads, activities = _drifted(leads, activities, end, drift_days, seed)
    return SyntheticCrm(
        accounts=accounts, leads=leads, activities=activities, deals=deals, truth=truth
    )
