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


@dataclass(frozen=True)
class _Accounts:
    """The companies: their table, and what the hidden propensity needs of them."""

    frame: pd.DataFrame
    ids: np.ndarray
    employees: np.ndarray
    fit: np.ndarray  # industry, size and an account-level effect on the win logit


@dataclass(frozen=True)
class _Population:
    """Every lead's hidden life: when it arrives, who it is, its intent and whether it is won."""

    created_s: np.ndarray  # seconds since the epoch
    frac: np.ndarray  # position in the history, 0 (start) to 1 (end)
    account: np.ndarray  # index into the accounts
    has_account: np.ndarray
    seniority: np.ndarray  # names
    department: np.ndarray
    source: np.ndarray
    country: np.ndarray
    fit: np.ndarray
    intent: np.ndarray
    p_won: np.ndarray
    won: np.ndarray


@dataclass(frozen=True)
class _DealTiming:
    exists: np.ndarray  # a deal was created before the end
    closed: np.ndarray  # ... and closed before it
    created_s: np.ndarray
    closed_s: np.ndarray
    employees: np.ndarray  # of each lead's company (50 without one)


DAY_S = 86_400


def _accounts(rng: np.random.Generator, n_leads: int) -> _Accounts:
    """A pool of companies with firmographics and a hidden account-level effect."""
    n_accounts = max(1, n_leads // 4)
    ind_names, ind_idx = _pick(rng, INDUSTRIES, n_accounts)
    cty_names, cty_idx = _pick(rng, COUNTRIES, n_accounts)
    employees = np.round(np.exp(rng.normal(np.log(180), 1.5, n_accounts))).clip(1, 300_000)
    revenue = np.round(employees * np.exp(rng.normal(np.log(0.16), 0.6, n_accounts)), 2)
    account_effect = rng.normal(0, 0.3, n_accounts)
    size_effect = 0.28 * np.clip(np.log10(employees) - 2.0, -1.5, 2.0)
    fit = _effects(INDUSTRIES)[ind_idx] + size_effect + account_effect
    ids = np.arange(1, n_accounts + 1, dtype=np.int64) + 100_000
    frame = pd.DataFrame(
        {
            "account_id": ids,
            "name": [f"Company {i}" for i in range(n_accounts)],
            "industry": _mess_case(rng, pd.Series(ind_names[ind_idx]), 0.04),
            "employees": _blank(rng, pd.Series(employees), 0.12),
            "annual_revenue_musd": _blank(rng, pd.Series(revenue), 0.20),
            "country": _blank(rng, pd.Series(cty_names[cty_idx], dtype=object), 0.03),
        }
    )
    frame["industry"] = _blank(rng, frame["industry"], 0.05)
    return _Accounts(frame, ids, employees, fit)


def _population(
    rng: np.random.Generator, n_leads: int, start_s: int, accounts: _Accounts
) -> _Population:
    """Leads arrive at a growing rate; 80% belong to a known account; the hidden propensity."""
    growth = 0.8
    u = rng.random(n_leads)
    frac = (-1 + np.sqrt(1 + 2 * growth * u * (1 + growth / 2))) / growth
    created_s = start_s + np.floor(frac * HISTORY_DAYS * DAY_S).astype(np.int64)
    order = np.argsort(created_s, kind="stable")
    created_s, frac = created_s[order], frac[order]
    n_accounts = len(accounts.ids)
    popularity = rng.pareto(2.0, n_accounts) + 1
    account = rng.choice(n_accounts, size=n_leads, p=popularity / popularity.sum())
    has_account = rng.random(n_leads) < 0.8
    sen_names, sen_idx = _pick(rng, SENIORITIES, n_leads)
    dep_names, dep_idx = _pick(rng, DEPARTMENTS, n_leads)
    src_names = np.array(list(SOURCES))
    share_start = np.array([v[0] for v in SOURCES.values()])
    share_end = np.array([v[1] for v in SOURCES.values()])
    shares = share_start[None, :] * (1 - frac[:, None]) + share_end[None, :] * frac[:, None]
    cum = np.cumsum(shares / shares.sum(axis=1, keepdims=True), axis=1)
    src_idx = (rng.random(n_leads)[:, None] > cum).sum(axis=1).clip(0, len(src_names) - 1)
    cty_names, cty_idx = _pick(rng, COUNTRIES, n_leads)
    fit = (
        np.where(has_account, accounts.fit[account], -0.35)
        + _effects(SENIORITIES)[sen_idx]
        + _effects(DEPARTMENTS)[dep_idx]
        + _effects(SOURCES)[src_idx]
    )
    intent = rng.normal(0, 1, n_leads)
    base = -3.0 - 0.35 * frac  # drift: the market gets harder over the two years
    logit = base + fit + 1.3 * intent + rng.normal(0, 0.6, n_leads)
    p_won = 1 / (1 + np.exp(-logit))
    won = rng.random(n_leads) < p_won
    return _Population(
        created_s, frac, account, has_account, sen_names[sen_idx], dep_names[dep_idx],
        src_names[src_idx], cty_names[cty_idx], fit, intent, p_won, won,
    )  # fmt: skip


def _deal_timing(
    rng: np.random.Generator, pop: _Population, accounts: _Accounts, end_s: int
) -> _DealTiming:
    """Every eventual win gets a deal, and an engaged share of the rest (which are lost); the
    sales cycle grows with company size."""
    n_leads = len(pop.won)
    engaged = 1 / (1 + np.exp(-(-2.2 + 0.9 * pop.intent + 0.4 * pop.fit)))
    gets_deal = pop.won | (rng.random(n_leads) < engaged)
    deal_delay = rng.gamma(2.0, 18.0, n_leads) * np.exp(-0.25 * pop.intent)
    employees = np.where(pop.has_account, accounts.employees[pop.account], 50.0)
    cycle_mean = 35 * (1 + 0.25 * np.clip(np.log10(employees) - 1, 0, 4))
    cycle = rng.gamma(2.5, cycle_mean / 2.5) * np.where(pop.won, 1.0, 0.8)
    created_s = pop.created_s + (deal_delay * DAY_S).astype(np.int64)
    closed_s = created_s + (cycle * DAY_S).astype(np.int64)
    exists = gets_deal & (created_s < end_s)
    return _DealTiming(exists, exists & (closed_s < end_s), created_s, closed_s, employees)


def _activity_events(
    rng: np.random.Generator, pop: _Population, deals: _DealTiming
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each activity's lead, time and type code: count and mix follow intent, timing rises then
    decays after creation, and deal leads see a burst of demos and meetings around the deal."""
    n_leads = len(pop.won)
    is_student = pop.seniority == "Student"
    expected = np.exp(2.95 + 0.45 * pop.intent + 0.15 * pop.fit) * np.where(is_student, 0.6, 1.0)
    counts = rng.poisson(expected)
    lead_of = np.repeat(np.arange(n_leads), counts)
    tau = np.exp(rng.normal(np.log(28), 0.5, n_leads))
    offset_days = rng.gamma(1.6, tau[lead_of] / 1.6)
    burst_leads = np.flatnonzero(deals.exists)
    burst_n = rng.integers(1, 4, burst_leads.size)
    burst_of = np.repeat(burst_leads, burst_n)
    burst_offset = (deals.created_s[burst_of] - pop.created_s[burst_of]) / DAY_S + rng.normal(
        -3, 6, burst_of.size
    )
    lead_of = np.concatenate([lead_of, burst_of])
    offset_days = np.concatenate([offset_days, np.clip(burst_offset, 0.01, None)])
    occurred_s = pop.created_s[lead_of] + (offset_days * DAY_S).astype(np.int64)
    high_share = 1 / (1 + np.exp(-(-1.7 + 1.0 * pop.intent + 0.2 * pop.fit)))
    is_high = rng.random(lead_of.size) < high_share[lead_of]
    is_high[counts.sum() :] = True
    low_pick = rng.choice(len(LOW_VALUE), lead_of.size, p=np.array(list(LOW_VALUE.values())))
    high_p = np.array(list(HIGH_VALUE.values()))
    high_pick = rng.choice(len(HIGH_VALUE), lead_of.size, p=high_p / high_p.sum())
    codes = {kind: i for i, kind in enumerate(ACTIVITY_KINDS)}
    burst_codes = np.array([codes["demo_request"], codes["meeting"]])[
        rng.integers(0, 2, burst_of.size)
    ]
    types = np.where(is_high, len(LOW_VALUE) + high_pick, low_pick)
    types[counts.sum() :] = burst_codes
    return lead_of, occurred_s, types


ACTIVITY_KINDS = [*LOW_VALUE, *HIGH_VALUE]  # activity types are codes into this until the end


def _activities(
    rng: np.random.Generator,
    pop: _Population,
    deals: _DealTiming,
    start_s: int,
    end_s: int,
    lead_ids: np.ndarray,
) -> pd.DataFrame:
    """The activity log, with the mess of real exports: quiet after a close (a few post-sale
    email opens), 2% of types in another spelling, 0.5% duplicated rows."""
    lead_of, occurred_s, types = _activity_events(rng, pop, deals)
    closed_at_of = np.where(deals.closed, deals.closed_s, np.iinfo(np.int64).max)[lead_of]
    after_close = occurred_s >= closed_at_of
    keep = (occurred_s < end_s) & (~after_close | (rng.random(lead_of.size) < 0.15))
    lead_of, occurred_s, types = lead_of[keep], occurred_s[keep], types[keep]
    types = np.where(after_close[keep], ACTIVITY_KINDS.index("email_open"), types)
    recase = rng.random(types.size) < 0.02
    types[recase] += len(ACTIVITY_KINDS)  # 'pricing_page_view' -> 'Pricing Page View'
    labels = [*ACTIVITY_KINDS, *(k.replace("_", " ").title() for k in ACTIVITY_KINDS)]
    dup = np.flatnonzero(rng.random(lead_of.size) < 0.005)
    lead_of = np.concatenate([lead_of, lead_of[dup]])
    occurred_s = np.concatenate([occurred_s, occurred_s[dup]])
    types = np.concatenate([types, types[dup]])
    # One int64 sort key (lead, seconds since start) sorts twice as fast as np.lexsort.
    order = np.argsort((lead_of.astype(np.int64) << 32) | (occurred_s - start_s), kind="stable")
    return pd.DataFrame(
        {
            "lead_id": lead_ids[lead_of[order]],
            "occurred_at": _timestamps(occurred_s[order]),
            "activity_type": pd.Categorical.from_codes(
                types[order], categories=labels
            ).reorder_categories(sorted(labels)),
        }
    )


def _timestamps(seconds: np.ndarray) -> pd.DatetimeIndex:
    return pd.to_datetime(seconds, unit="s", utc=True)


def _leads(
    rng: np.random.Generator,
    pop: _Population,
    accounts: _Accounts,
    deals: _DealTiming,
    lead_ids: np.ndarray,
) -> pd.DataFrame:
    """The leads table, with missing and inconsistently spelled values, and the planted leak:
    a disqualify reason filled in only once a lead's deal was lost."""
    n_leads = len(lead_ids)
    titles = pd.Series(np.char.add(np.char.add(pop.seniority.astype(str), " of "), pop.department))
    titles = titles.where(pop.seniority != "Student", "Student")
    lost_closed = deals.closed & ~pop.won
    account_ids = np.where(pop.has_account, accounts.ids[pop.account], 0)
    leads = pd.DataFrame(
        {
            "lead_id": lead_ids,
            "account_id": pd.array(account_ids, dtype="Int64"),
            "created_at": _timestamps(pop.created_s),
            "email": [f"lead{i}@example.com" for i in lead_ids],
            "source": _mess_case(rng, pd.Series(pop.source), 0.03),
            "job_title": _blank(rng, titles, 0.06),
            "seniority": _blank(rng, pd.Series(pop.seniority), 0.08),
            "department": _blank(rng, pd.Series(pop.department), 0.10),
            "country": _blank(rng, pd.Series(pop.country), 0.04),
            "disqualify_reason": np.where(
                lost_closed, np.array(LOSS_REASONS)[rng.integers(0, 5, n_leads)], None
            ),
        }
    )
    leads.loc[~pop.has_account, "account_id"] = pd.NA
    return leads


def _deals(
    rng: np.random.Generator,
    pop: _Population,
    deals: _DealTiming,
    leads: pd.DataFrame,
    lead_ids: np.ndarray,
) -> pd.DataFrame:
    """The deals table: open deals have no close date or outcome."""
    amount = np.exp(rng.normal(np.log(8000), 0.6, len(lead_ids))) * np.sqrt(deals.employees / 50)
    amount = np.round(amount, -1)
    rows = np.flatnonzero(deals.exists)
    closed = deals.closed[rows]
    return pd.DataFrame(
        {
            "deal_id": np.arange(1, rows.size + 1, dtype=np.int64) + 5_000_000,
            "lead_id": lead_ids[rows],
            "account_id": leads["account_id"].to_numpy()[rows],
            "created_at": _timestamps(deals.created_s[rows]),
            "closed_at": _timestamps(deals.closed_s[rows]).where(closed),
            "outcome": pd.Series(np.where(pop.won[rows], "won", "lost"), dtype=object).where(
                closed, None
            ),
            "amount": amount[rows],
        }
    )


LEAK_COLUMNS = {  # planted by `leaks=True`: each kind of leak real exports hide
    "days_in_discovery": "lifecycle group: time spent in a sales stage",
    "days_in_negotiation": "lifecycle group: time spent in a sales stage",
    "stage_changes": "lifecycle group: how many stages the unit went through",
    "days_to_close": "lifecycle group: from first contact to the close",
    "negotiation_share_of_total": "lifecycle group: a stage's share of the whole cycle",
    "last_call_duration_s": "measured during the deciding contact",
    "has_signed_nda": "a boolean filled in only for some won units",
    "catalog_size": "a count filled in for most won units and few others",
    "behaviour_profile": "a profile filled in for most won units and few others",
}
HONEST_PLANTED = {  # planted beside them: strong or odd, but known at creation
    "fit_hint": "the hidden propensity itself, rounded",
    "landing_page": "an id-like category with few wins per value",
    "trial_days": "a lifecycle-sounding name with no signal",
}


def _planted(leads: pd.DataFrame, pop: _Population, deals: _DealTiming, seed: int) -> pd.DataFrame:
    """The leads with every kind of leak of `LEAK_COLUMNS` and the honest columns of
    `HONEST_PLANTED` added, from a random stream of their own (the rest stays identical).
    A leak column follows the unit's final state: won (its deal closed won) or not."""
    rng = np.random.default_rng([seed, 20261130])
    n = len(leads)
    won = (deals.closed & pop.won).astype(float)
    discovery = rng.gamma(2.0, 8.0, n) * (1 + 0.35 * won)
    negotiation = rng.gamma(2.0, 6.0, n) * (1 + 0.5 * won)
    total = discovery + negotiation + rng.gamma(2.0, 10.0, n)

    def filled_won(share_won: float, share_other: float) -> np.ndarray:
        return rng.random(n) < np.where(won == 1, share_won, share_other)

    return leads.assign(
        days_in_discovery=np.round(discovery, 1),
        days_in_negotiation=np.round(negotiation, 1),
        stage_changes=rng.poisson(1.2 + 0.8 * won),
        days_to_close=np.round(total, 1),
        negotiation_share_of_total=np.round(negotiation / total, 3),
        last_call_duration_s=np.round(np.exp(rng.normal(5.0 + 1.0 * won, 0.8))),
        has_signed_nda=np.where(filled_won(0.3, 0.0), True, None),
        catalog_size=np.where(filled_won(0.45, 0.01), rng.poisson(40, n), np.nan),
        behaviour_profile=np.where(
            filled_won(0.75, 0.03), rng.choice(["cat", "eagle", "wolf", "shark"], n), None
        ),
        fit_hint=np.round(pop.p_won, 3),
        landing_page=[f"LP-{k:04d}" for k in rng.integers(0, 300, n)],
        trial_days=rng.choice([7, 14, 30], n),
    )


def generate_crm(
    n_leads: int = 20_000,
    seed: int = 0,
    end: pd.Timestamp = DEFAULT_END,
    drift_days: int = 0,
    leaks: bool = False,
) -> SyntheticCrm:
    """Generate about two years of CRM history ending at `end`, deterministic for a seed.

    `drift_days` > 0 plants a population shift for `leadscore monitor` to find: leads created
    in the last `drift_days` days come from a new campaign (content syndication and social,
    mostly students and juniors) and engage less (60% of their activities never happen).
    `leaks` adds the columns of `LEAK_COLUMNS` and `HONEST_PLANTED` to the leads, for the
    leakage audit to tell apart. Everything else is the same without them."""
    if n_leads < 1:
        raise ValueError("n_leads must be positive")
    rng = np.random.default_rng(seed)  # every stage draws from it in this order
    stamp = pd.Timestamp(end)
    end = stamp.tz_convert("UTC") if stamp.tzinfo else pd.Timestamp(end, tz="UTC")
    start = end - pd.Timedelta(days=HISTORY_DAYS)
    start_s, end_s = start.value // 1_000_000_000, end.value // 1_000_000_000
    lead_ids = np.arange(1, n_leads + 1, dtype=np.int64) + 1_000_000
    accounts = _accounts(rng, n_leads)
    pop = _population(rng, n_leads, start_s, accounts)
    deal_timing = _deal_timing(rng, pop, accounts, end_s)
    activities = _activities(rng, pop, deal_timing, start_s, end_s, lead_ids)
    leads = _leads(rng, pop, accounts, deal_timing, lead_ids)
    deals = _deals(rng, pop, deal_timing, leads, lead_ids)
    truth = pd.DataFrame({"lead_id": lead_ids, "p_won": pop.p_won})
    if leaks:
        leads = _planted(leads, pop, deal_timing, seed)
    if drift_days > 0:
        leads, activities = _drifted(leads, activities, end, drift_days, seed)
    return SyntheticCrm(
        accounts=accounts.frame, leads=leads, activities=activities, deals=deals, truth=truth
    )
