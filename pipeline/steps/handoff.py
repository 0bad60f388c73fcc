"""The agreement's figures from a trained model: the table the two teams sign, measured on the
model's time-forward holdout of the leads marketing held."""

from __future__ import annotations

import pandas as pd

from leadscore.models.agreement import policies, policy_rows
from leadscore.models.scoring import ScoringBundle
from leadscore.pipeline.config import Config


def agreement_table(bundle: ScoringBundle, config: Config) -> pd.DataFrame | None:
    """The agreed policy and its alternatives on the holdout, or None when the model has no
    time-forward holdout to measure them on (shape flat, or a model made before it)."""
    fraction = getattr(bundle, "holdout_fraction", None)
    holdout = bundle.holdout
    if fraction is None or "cutoff" not in holdout or holdout.empty:
        return None
    s, a = config.scoring, config.agreement
    rows = policies(
        s.grade_by,
        s.grades,
        a.mql_grades,
        a.mql_min_score,
        a.capacity_per_week,
        a.report_thresholds,
        a.report_capacities,
    )
    return policy_rows(holdout, rows, fraction)
