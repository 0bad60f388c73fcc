"""The agreement job: the table sales and marketing sign, what happened to past hand-offs, and
what marketing learns from what closes, for the champion and the scores written so far.

- the agreement table comes from the model's time-forward holdout (`pipeline.steps.handoff`);
- the closed loop reads the score changes (each batch's hand-offs) and the score history (the
  leads each batch kept), against the CRM as of the run's time;
- what closes was measured when the model was trained and travels with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from leadscore.features.lifecycle import MARKETING, LifecycleRule, accepted_at
from leadscore.features.snapshots import lead_outcomes
from leadscore.features.tables import CrmTables
from leadscore.models.handoff_outcomes import compared_with_kept, hand_off_outcomes, outcome_table
from leadscore.models.score_changes import INTO_MQL
from leadscore.pipeline.catalog import Catalog
from leadscore.pipeline.config import Config
from leadscore.pipeline.io.registry import chosen_bundle
from leadscore.pipeline.steps.handoff import agreement_table


@dataclass
class AgreementReport:
    """Everything the marketing report shows."""

    name: str
    version: str
    as_of: pd.Timestamp
    terms: dict[str, str]  # the agreement in words
    table: pd.DataFrame | None  # policies on the holdout
    grade_thresholds: pd.DataFrame  # per grade of marketing's leads now: leads, lowest score
    examples: pd.DataFrame  # the best MQLs now, with their reasons
    by_grade: pd.DataFrame | None = None  # hand-off outcomes per grade
    by_week: pd.DataFrame | None = None  # hand-off outcomes per hand-off week
    versus: pd.DataFrame | None = None  # handed over vs kept
    learnings: pd.DataFrame | None = None  # what closes
    population_metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def agreement(catalog: Catalog, as_of: pd.Timestamp | None) -> AgreementReport:
    config, steps = catalog.config, catalog.steps
    data = catalog.load_as_of(as_of, activities="streamed")
    version, bundle = chosen_bundle(config.mlflow.registered_model, data.as_of, None, steps)
    a = config.agreement
    with steps.step("Measuring the agreement on the model's holdout"):
        table = agreement_table(bundle, config)
    current, _ = catalog.current_scores()
    report = AgreementReport(
        name=a.name,
        version=version,
        as_of=data.as_of,
        terms=_terms(config, getattr(bundle, "lifecycle", None)),
        table=table,
        grade_thresholds=_grade_thresholds(current),
        examples=_examples(current),
        learnings=getattr(bundle, "learnings", None),
    )
    if table is None:
        report.notes.append(
            "The model has no time-forward holdout (shape flat, or trained before agreements "
            "existed): no agreement table. Retrain it to get one."
        )
    with steps.step("Following past hand-offs to what happened next"):
        _closed_loop(catalog, report, data.tables, bundle.lifecycle, data.as_of)
    return report


def _terms(config: Config, lifecycle: LifecycleRule | None) -> dict[str, str]:
    a, s = config.agreement, config.scoring
    definition = "grade " + " or ".join(a.mql_grades)
    if a.mql_min_score is not None:
        definition += f", or a score of at least {a.mql_min_score}"
    how = (
        "share of marketing's leads (best first)"
        if s.grade_by == "percentile"
        else "minimum calibrated probability"
    )
    return {
        "agreement": a.name,
        "an MQL is": f"a lead marketing holds (not yet accepted by sales) with {definition}",
        "grades": ", ".join(f"{g}: {v:g}" for g, v in s.grades.items()) + f" ({how}); rest D",
        "sales capacity": "no cap"
        if a.capacity_per_week is None
        else f"{a.capacity_per_week:,} new MQLs a week",
        "follow-up SLA": f"sales accepts or rejects a hand-off within {a.sla_days} days",
        "accepted (SQL) means": {
            "opportunity": "an opportunity was created for the lead",
            "column": f"the date in {config.lifecycle.sql_column} is set",
            "status_history": "the lead's status became "
            + " or ".join(config.lifecycle.sql_values),
            "none": "no lifecycle in these data (every open unit is marketing's; acceptance "
            "is not tracked, so read the SLA columns as not applicable)",
        }["none" if lifecycle is None else lifecycle.sql_from],
    }


def _grade_thresholds(current: pd.DataFrame | None) -> pd.DataFrame:
    if current is None or current.empty:
        return pd.DataFrame()
    if "stage" in current:
        current = current[current["stage"] == MARKETING]
    marketing = current
    table = marketing.groupby("grade").agg(
        leads=("lead_id", "size"), lowest_score=("score", "min"), mqls=("mql", "sum")
    )
    table["share"] = table["leads"] / max(len(marketing), 1)
    return table.reset_index()


def _examples(current: pd.DataFrame | None, n: int = 5) -> pd.DataFrame:
    if current is None or current.empty:
        return pd.DataFrame()
    mql = current[current["mql"].fillna(False).astype(bool)]
    best = (mql if len(mql) else current).nlargest(n, "probability")
    return best[["lead_id", "score", "grade", "reasons", "reason_against"]]


def _closed_loop(
    catalog: Catalog,
    report: AgreementReport,
    tables: CrmTables,
    lifecycle: LifecycleRule | None,
    now: pd.Timestamp,
) -> None:
    changes = catalog.score_changes()
    if changes is None or changes.empty or not (changes["change"] == INTO_MQL).any():
        report.notes.append(
            "No hand-offs recorded yet: the closed loop fills in once `leadscore score` has "
            "run and its MQLs have had time to be followed up."
        )
        return
    config = catalog.config
    into = changes[changes["change"] == INTO_MQL]
    handoffs = into.rename(columns={"new_grade": "grade"})[["lead_id", "as_of", "grade"]]
    handoffs["as_of"] = pd.to_datetime(handoffs["as_of"], utc=True)
    handoffs = handoffs.sort_values("as_of", kind="stable").drop_duplicates("lead_id")
    outcomes = lead_outcomes(tables.deals)
    accepted = accepted_at(tables, lifecycle or LifecycleRule())
    rows = hand_off_outcomes(handoffs, accepted, outcomes, now, config.agreement.sla_days)
    report.by_grade = outcome_table(rows, "grade")
    report.by_week = outcome_table(rows, "week")
    window = pd.Timedelta(days=config.snapshots.conversion_window_days)
    matured = handoffs[pd.to_datetime(handoffs["as_of"], utc=True) + window <= now]
    if matured.empty:
        report.notes.append(
            f"No hand-off has had its {window.days}-day window yet (the first was as of "
            f"{pd.to_datetime(handoffs['as_of'], utc=True).min():%Y-%m-%d}): the comparison with "
            "the leads marketing kept waits until then."
        )
        return
    handoffs = matured
    history = catalog.score_history()
    if history is not None and len(history):
        batches = set(pd.to_datetime(handoffs["as_of"], utc=True))
        at = pd.to_datetime(history["as_of"], utc=True)
        stage = history.get("stage", pd.Series(MARKETING, index=history.index))
        kept = history[
            at.isin(batches)
            & (stage == MARKETING)
            & ~history["mql"].fillna(False).astype(bool)
            & ~history["lead_id"].isin(handoffs["lead_id"])
        ]
        kept = kept.sort_values("as_of").drop_duplicates("lead_id", keep="first")
        report.versus = compared_with_kept(
            handoffs, kept, outcomes, config.snapshots.conversion_window_days
        )
