"""The leakage audit step: examine the untimed attributes, apply the audit policy."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from leadscore.features.build import FeatureSpec
from leadscore.features.leakage import Finding, audit_columns, flagged_columns
from leadscore.features.snapshots import lead_outcomes
from leadscore.features.tables import CrmTables, lookup
from leadscore.features.training_set import TrainingSet
from leadscore.pipeline.config import Config
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.progress import Steps


@dataclass(frozen=True)
class AuditResult:
    findings: list[Finding]
    aucs: pd.Series
    dropped: list[str]
    policy: str

    def records(self) -> list[dict[str, str]]:
        action = {"drop": "dropped", "warn": "kept (policy warn)", "fail": "fail"}[self.policy]
        return [
            {**f.as_dict(), "verdict": action if f.verdict == "flagged" else f.verdict}
            for f in self.findings
        ]


def run_audit(ts: TrainingSet, tables: CrmTables, config: Config) -> AuditResult:
    """The leakage audit on the examples the model learns from (never the holdout)."""
    seen = (ts.rows["split"] != "holdout").to_numpy()
    X = ts.X[seen].reset_index(drop=True)
    y = ts.rows.loc[seen, "label"].to_numpy()
    lead_ids = ts.rows.loc[seen, "lead_id"]
    stamp_columns = [
        c
        for c in tables.leads.columns
        if c != "created_at" and pd.api.types.is_datetime64_any_dtype(tables.leads[c])
    ]
    stamps = None
    if stamp_columns:
        stamps = tables.leads.set_index("lead_id")[stamp_columns].reindex(lead_ids.to_numpy())
        stamps = stamps.reset_index(drop=True)
    closed = lookup(lead_outcomes(tables.deals)["closed_at"], lead_ids).reset_index(drop=True)
    keys = pd.DataFrame(
        {"account_id": lookup(tables.leads.set_index("lead_id")["account_id"], lead_ids).to_numpy()}
    )
    a = config.audit
    findings, aucs = audit_columns(
        X,
        y,
        ts.attributes,
        max_auc=a.max_auc,
        review_auc=a.review_auc,
        min_expected=a.min_expected,
        allow=a.allow,
        closed_at=closed,
        timestamps=stamps,
        keys=keys,
    )
    dropped = flagged_columns(findings) if a.policy == "drop" else []
    if "account_id" in dropped:  # every account attribute and the account's history go with it
        dropped += [c for c in ts.X.columns if c.startswith("account_")]
    dropped = list(dict.fromkeys(c for c in dropped if c in ts.X.columns))
    return AuditResult(findings, aucs, dropped, a.policy)


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
