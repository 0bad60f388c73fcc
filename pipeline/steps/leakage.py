"""The leakage audit step: examine the untimed attributes, apply the audit policy."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from leadscore.features.build import FeatureSpec
from leadscore.features.leakage import (
    Audit,
    AuditRules,
    Finding,
    audit_columns,
    flagged_columns,
)
from leadscore.features.snapshots import lead_outcomes
from leadscore.features.tables import CrmTables, lookup
from leadscore.features.training_set import TrainingSet
from leadscore.pipeline.config import Config
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.progress import Steps


@dataclass(frozen=True)
class AuditResult:
    audit: Audit
    dropped: list[str]
    policy: str
    units: int  # units (leads) judged

    @property
    def findings(self) -> list[Finding]:
        return self.audit.findings

    @property
    def aucs(self) -> pd.Series:
        return self.audit.aucs

    def records(self) -> list[dict[str, str]]:
        """The findings with the policy's verdict, and the price of each drop."""
        action = {"drop": "dropped", "warn": "kept (policy warn)", "fail": "fail"}[self.policy]
        price = {
            column: f"AUC {with_it:.3f} with it, {without:.3f} without"
            for key, (with_it, without) in self.audit.price.items()
            for column in key.removeprefix("group: ").split(", ")
        }
        return [
            {
                **f.as_dict(),
                "verdict": action if f.verdict == "flagged" else f.verdict,
                "price": price.get(f.column, "") if f.verdict == "flagged" else "",
            }
            for f in self.findings
        ]

    def evidence(self) -> list[dict[str, object]]:
        """Every examined column's evidence, flagged or not (for `audit --json`)."""
        verdicts = {f.column: f.verdict for f in self.findings if f.verdict != "review"}
        return [
            {"column": column, "verdict": verdicts.get(column, "clean"), **facts}
            for column, facts in self.audit.evidence.items()
        ]


def units_of(
    ts: TrainingSet, tables: CrmTables
) -> tuple[pd.DataFrame, np.ndarray, pd.Series, pd.Series]:
    """One row per unit the model learns from (never the holdout), with its final outcome:
    the unit's features (attributes do not change between its snapshots), whether it was won
    by the run's time (a unit lost or still open was not), its id and its close time."""
    seen = (ts.rows["split"] != "holdout").to_numpy()
    first = ~ts.rows["lead_id"].duplicated().to_numpy()
    rows = np.flatnonzero(seen & first)
    lead_ids = ts.rows["lead_id"].iloc[rows].reset_index(drop=True)
    X = ts.X.iloc[rows].reset_index(drop=True)
    if not ts.point_in_time:  # one labelled row per unit already
        closed = pd.Series(pd.NaT, index=X.index, dtype="datetime64[ns, UTC]")
        return X, ts.rows["label"].iloc[rows].to_numpy(), lead_ids, closed
    outcomes = lead_outcomes(tables.deals)
    closed = lookup(outcomes["closed_at"], lead_ids).reset_index(drop=True)
    won = lookup(outcomes["won_at"], lead_ids).reset_index(drop=True)
    return X, won.notna().to_numpy().astype(int), lead_ids, closed


def run_audit(ts: TrainingSet, tables: CrmTables, config: Config) -> AuditResult:
    """The leakage audit on the units the model learns from (never the holdout), each judged
    once on its final outcome."""
    X, y, lead_ids, closed = units_of(ts, tables)
    stamp_columns = [
        c
        for c in tables.leads.columns
        if c != "created_at" and pd.api.types.is_datetime64_any_dtype(tables.leads[c])
    ]
    stamps = None
    if stamp_columns:
        stamps = tables.leads.set_index("lead_id")[stamp_columns].reindex(lead_ids.to_numpy())
        stamps = stamps.reset_index(drop=True)
    keys = pd.DataFrame(
        {"account_id": lookup(tables.leads.set_index("lead_id")["account_id"], lead_ids).to_numpy()}
    )
    a = config.audit
    rules = AuditRules(a.max_auc, a.review_auc, a.p_value, a.group_lift, a.allow)
    audit = audit_columns(
        X, y, ts.attributes, rules, closed_at=closed, timestamps=stamps, keys=keys
    )
    dropped = audit.flagged() if a.policy == "drop" else []
    if "account_id" in dropped:  # every account attribute and the account's history go with it
        dropped += [c for c in ts.X.columns if c.startswith("account_")]
    dropped = list(dict.fromkeys(c for c in dropped if c in ts.X.columns))
    return AuditResult(audit, dropped, a.policy, len(y))


@dataclass(frozen=True)
class AuditedFeatures:
    """The features left after the audit, their spec, the audit, and what it flagged."""

    X: pd.DataFrame
    spec: FeatureSpec
    audit: AuditResult
    flagged: list[str]

    @property
    def kept_flagged(self) -> list[str]:
        """Columns the audit flagged that are still features (policy warn)."""
        return [c for c in self.flagged if c in self.X.columns]


def audited_features(
    ts: TrainingSet, tables: CrmTables, config: Config, steps: Steps
) -> AuditedFeatures:
    """The audit applied to the examples' features; policy fail raises an input error when
    anything is flagged."""
    with steps.step("Auditing attributes for leakage"):
        result = run_audit(ts, tables, config)
    for finding in result.findings:
        steps.warn(f"leakage audit: {finding.column}: {finding.check}: {finding.evidence}")
    flagged = flagged_columns(result.findings)
    if flagged and config.audit.policy == "fail":
        raise InputError(
            f"the leakage audit flagged {', '.join(flagged)} and audit.policy is fail; exclude "
            "them (features.exclude), vouch for them (audit.allow) or set another policy"
        )
    X = ts.X.drop(columns=result.dropped)
    spec = replace(ts.spec, skip_columns=frozenset({*ts.spec.skip_columns, *result.dropped}))
    if result.dropped:
        steps.warn(f"dropped by the leakage audit: {', '.join(result.dropped)}")
    return AuditedFeatures(X, spec, result, flagged)
