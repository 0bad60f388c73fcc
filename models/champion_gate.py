"""The champion/challenger gate: whether a retrained model may replace the champion, and why."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leadscore.models.evaluation import Evaluation
from leadscore.pipeline.config import GateConfig


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: list[str]  # every check, passed or failed, in plain words

    @property
    def verdict(self) -> str:
        return "promoted" if self.promote else "kept"

    def summary(self) -> str:
        return "; ".join(self.reasons)


def decide(
    challenger: Evaluation,
    champion: Evaluation | None,
    flagged_features: list[str],
    gate: GateConfig,
    champion_note: str = "",
) -> GateDecision:
    """Every check of the gate on the same holdout; the challenger is promoted only if all pass.

    Without a champion (none yet, or its version was deleted: `champion_note` says which) the
    challenger must still pass the checks that do not compare."""
    m = challenger.metrics
    checks: list[tuple[bool, str]] = []
    n, wins = int(m["n"]), int(m["wins"])
    checks.append(
        (
            n >= gate.min_holdout and wins >= gate.min_holdout_wins,
            f"holdout {n:,} examples with {wins:,} wins (gate: at least {gate.min_holdout:,} "
            f"and {gate.min_holdout_wins:,})",
        )
    )
    checks.append(
        (m["ece"] <= gate.max_ece, f"challenger ECE {m['ece']:.4f} (gate: at most {gate.max_ece})")
    )
    if gate.require_clean_audit:
        checks.append(
            (
                not flagged_features,
                "leakage audit clean"
                if not flagged_features
                else f"leakage audit flagged feature(s) kept in the model: "
                f"{', '.join(flagged_features)}",
            )
        )
    if champion is None:
        checks.append((True, champion_note or "no champion yet"))
    else:
        ours, theirs = m["roc_auc"], champion.metrics["roc_auc"]
        floor = theirs - gate.auc_tolerance
        if not np.isfinite(ours) or not np.isfinite(theirs):
            checks.append((False, "ROC AUC undefined on this holdout (one class only)"))
        else:
            relation = "ties" if ours == theirs else "above" if ours > theirs else "below"
            checks.append(
                (
                    ours >= floor - 1e-12,  # 0.78 - 0.08 is 0.70000000000000001 in floats
                    f"challenger ROC AUC {ours:.4f} {relation} the champion's {theirs:.4f} on the "
                    f"same holdout (gate: at least {floor:.4f}, tolerance {gate.auc_tolerance})",
                )
            )
    promote = all(ok for ok, _ in checks)
    reasons = [f"{'pass' if ok else 'FAIL'}: {text}" for ok, text in checks]
    return GateDecision(promote, reasons)
