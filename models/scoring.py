"""Scoring leads with a trained bundle: per lead a probability, sub-scores and reasons; over the
whole batch the score, grades and MQL flags."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from leadscore.features.build import FeatureSpec, build_features
from leadscore.features.descriptions import Describer, FeatureInfo
from leadscore.features.families import FAMILIES, feature_family
from leadscore.features.lifecycle import MARKETING, SALES, LifecycleRule, lead_stages
from leadscore.features.tables import CrmTables
from leadscore.models.drift import DriftReference
from leadscore.models.lead_model import LeadScoringModel
from leadscore.models.raw_records import InputSchema
from leadscore.models.reasons import reason_columns
from leadscore.models.scores import SCORE_COLUMNS, assign_grades, mql_flags, to_score
from leadscore.models.subscores import family_logits, to_subscore

HISTORY_COLUMNS = [
    "lead_id",
    "score",
    "probability",
    "grade",
    "stage",
    "fit_score",
    "engagement_score",
    "mql",
    "model_version",
    "as_of",
    "scored_at",
]
NO_REASON = "No signal raised this lead's score above the typical lead"
# What `score_chunk` gives per lead besides lead_id, and the kind of each (for engines that
# need a schema before they run it)
PART_KINDS = {
    "stage": "string",
    "probability": "double",
    "fit_score": "long",
    "engagement_score": "long",
    "reasons": "string",
    "reason_against": "string",
    "reasons_json": "string",
}


@dataclass(frozen=True)
class RecordRules:
    """The scoring settings a model uses on its own (raw records through MLflow): the reasons'
    count and threshold as trained."""

    grade_by: str = "probability"
    grades: dict[str, float] = field(default_factory=lambda: {"A": 0.3, "B": 0.12, "C": 0.04})
    max_reasons: int = 3
    min_reason_impact: float = 0.05


@dataclass
class ScoringBundle:
    """What scoring needs besides the estimator: how its features were built, and its evidence."""

    estimator: LeadScoringModel
    feature_spec: FeatureSpec
    as_of: pd.Timestamp
    holdout: pd.DataFrame  # label, probability: the holdout predictions, for grade win rates
    subscore_reference: dict[str, np.ndarray]  # holdout quantiles of each family's log-odds
    # the training population binned, for `leadscore monitor` (None in bundles made before it)
    drift_reference: DriftReference | None = None
    # how each feature reads in a reason: its column's name, unit, window, values' spellings
    descriptions: dict[str, FeatureInfo] = field(default_factory=dict)
    # when sales accepted a lead (None: no lifecycle, every open lead is marketing's)
    lifecycle: LifecycleRule | None = None
    # the model of leads already with sales (None: they are scored by this one, apart)
    opportunity: ScoringBundle | None = None
    # the share of leads the holdout drew (time-forward holdouts; None for older bundles)
    holdout_fraction: float | None = None
    # what marketing learns from what closes (`models.what_closes`), per value
    learnings: pd.DataFrame | None = None
    # the raw lead records the model takes (`models.raw_records.InputSchema`)
    input_schema: InputSchema | None = None
    # minimum probability per grade for one record at a time (percentile bands drawn on the
    # holdout): a batch draws percentile grades over its own leads instead
    grade_thresholds: dict[str, float] | None = None
    # which model this is, as the model itself can know it (the run that made it)
    stamp: str = ""
    rules: RecordRules = field(default_factory=RecordRules)
    # the versions of the libraries it was trained with, {name: version} (empty in older bundles)
    libraries: dict[str, str] = field(default_factory=dict)

    def describer(self) -> Describer:
        return Describer(getattr(self, "descriptions", {}))


class ScoringRules(Protocol):
    """The scoring settings these functions read (the config's `scoring` section)."""

    grade_by: str
    grades: dict[str, float]
    max_reasons: int
    min_reason_impact: float


class HandOffRules(Protocol):
    """The MQL definition and the capacity (the config's `agreement` section)."""

    mql_grades: tuple[str, ...]
    mql_min_score: int | None
    capacity_per_week: int | None


@dataclass(frozen=True)
class HandOffState:
    """What the MQL decision needs from earlier batches: the leads MQL in the previous batch,
    and the new hand-offs already made in the 7 days before this one."""

    standing: frozenset[str] = frozenset()
    handed_this_week: int = 0


Select = Callable[[CrmTables, pd.DataFrame], pd.DataFrame]


def missing_features(tables: CrmTables, bundle: ScoringBundle) -> list[str]:
    """Features the model was trained with that these tables cannot build (a column gone)."""
    sample = tables.leads[["lead_id"]].head(1).assign(cutoff=bundle.as_of)
    built = build_features(tables, sample, bundle.feature_spec).columns
    return [c for c in bundle.estimator.feature_names_in_ if c not in built]


def score_chunk(
    tables: CrmTables, bundle: ScoringBundle, spine: pd.DataFrame, rules: ScoringRules
) -> pd.DataFrame:
    """Everything per lead that does not depend on the other leads: stage, features,
    probability, sub-scores and reasons. A lead already with sales is scored by the
    opportunity model when the bundle has one. Grades and MQL flags (which rank leads) come
    after (`finish`)."""
    return _parts(tables, bundle, spine, rules)[["lead_id", *PART_KINDS]]


def _parts(
    tables: CrmTables,
    bundle: ScoringBundle,
    spine: pd.DataFrame,
    rules: ScoringRules,
    known: pd.DataFrame | None = None,
) -> pd.DataFrame:
    stage = lead_stages(tables, spine, getattr(bundle, "lifecycle", None))
    opportunity = getattr(bundle, "opportunity", None)
    with_sales = stage == SALES
    if opportunity is None or not with_sales.any():
        return _scored(tables, bundle, spine, rules, known).assign(stage=stage)
    if with_sales.all():
        return _scored(tables, opportunity, spine, rules, known).assign(stage=SALES)
    out = pd.concat(
        [
            _scored(tables, bundle, spine[~with_sales], rules, known).assign(stage=MARKETING),
            _scored(tables, opportunity, spine[with_sales], rules, known).assign(stage=SALES),
        ],
        ignore_index=True,
    )
    position = np.concatenate([np.flatnonzero(~with_sales), np.flatnonzero(with_sales)])
    return out.iloc[np.argsort(position, kind="stable")].reset_index(drop=True)  # spine order


def _scored(
    tables: CrmTables,
    bundle: ScoringBundle,
    spine: pd.DataFrame,
    rules: ScoringRules,
    known: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """`known`: feature values given with the leads (by lead id), used where not missing."""
    X = build_features(tables, spine, bundle.feature_spec).reset_index(drop=True)
    if known is not None:
        given = known.reindex(spine["lead_id"].to_numpy()).reset_index(drop=True)
        for column in given.columns.intersection(X.columns):
            X[column] = given[column].where(given[column].notna(), X[column])
    model = bundle.estimator
    contributions = model.contributions(X)
    proba = model.proba_from_margin(contributions.sum(axis=1).to_numpy())
    logits = family_logits(contributions, feature_family, FAMILIES)
    words = reason_columns(
        X, contributions, bundle.describer(), rules.max_reasons, rules.min_reason_impact
    )
    reference = bundle.subscore_reference
    return pd.DataFrame(
        {
            "lead_id": spine["lead_id"].to_numpy(),
            "probability": proba.round(6),
            "fit_score": to_subscore(logits["fit"], reference["fit"]),
            "engagement_score": to_subscore(logits["engagement"], reference["engagement"]),
            "reasons": np.where(words.reasons == "", NO_REASON, words.reasons),
            "reason_against": words.against,
            "reasons_json": words.structured,
        }
    )


def score_records(
    bundle: ScoringBundle, records: pd.DataFrame, as_of: pd.Timestamp, rules: ScoringRules
) -> pd.DataFrame:
    """Raw lead records (`models.raw_records`) scored as a batch scores them as of `as_of`:
    stage, probability, score, grade (by the bundle's thresholds), sub-scores and reasons."""
    from leadscore.models.raw_records import BadRecords, rollups, to_tables
    from leadscore.models.scores import to_grade

    schema = getattr(bundle, "input_schema", None)
    if schema is None:
        raise BadRecords("this model was trained before raw records were supported")
    tables = to_tables(records, schema, as_of)
    if len(tables.leads) < len(records):
        late = records.loc[~records["lead_id"].isin(tables.leads["lead_id"]), "lead_id"]
        raise BadRecords(
            f"column 'created_at': lead {late.iloc[0]!r} was created at or after as_of "
            f"{as_of.isoformat()}: it cannot be scored as of then"
        )
    spine = pd.DataFrame({"lead_id": tables.leads["lead_id"].to_numpy(), "cutoff": as_of})
    known = rollups(records.reset_index(drop=True)).set_axis(spine["lead_id"].to_numpy())
    scored = _parts(tables, bundle, spine, rules, known)
    proba = scored["probability"].to_numpy(dtype=float)
    grades = np.empty(len(scored), dtype=object)
    for stage in np.unique(scored["stage"]):
        mask = (scored["stage"] == stage).to_numpy()
        model = bundle.opportunity if stage == SALES and bundle.opportunity else bundle
        grades[mask] = to_grade(proba[mask], model.grade_thresholds or {}).to_numpy()
    return scored.assign(score=to_score(proba), grade=grades)


def prepare(bundle: ScoringBundle) -> None:
    """Build what explaining builds on first use (`LeadScoringModel.prepare_explaining`) here
    and now, so processes forked afterwards inherit it instead of each building it."""
    for model in (bundle, getattr(bundle, "opportunity", None)):
        if model is not None:
            model.estimator.prepare_explaining()


def chunk_scorer(
    bundle: ScoringBundle, rules: ScoringRules, select: Select | None = None
) -> Callable[[CrmTables, pd.DataFrame], pd.DataFrame]:
    """`score_chunk` for a chunk of leads with its tables, scoring only the leads `select`
    keeps (all by default)."""

    def work(tables: CrmTables, spine: pd.DataFrame) -> pd.DataFrame:
        chosen = spine if select is None else select(tables, spine)
        if chosen.empty:
            return pd.DataFrame({c: [] for c in ["lead_id", *PART_KINDS]})
        return score_chunk(tables, bundle, chosen, rules)

    return work


def regrade(
    scores: pd.DataFrame,
    rules: ScoringRules,
    policy: HandOffRules,
    state: HandOffState = HandOffState(),
) -> pd.DataFrame:
    """Grades and MQL flags drawn over the whole table, each population apart: percentile
    bands rank marketing's leads among themselves and sales' among theirs, and only marketing's
    leads can be MQL, within the weekly capacity the agreement sets."""
    proba = scores["probability"].to_numpy(dtype=float)
    stage, names = _stage_codes(scores)
    grades = np.full(len(scores), None, dtype=object)
    for code in range(len(names)):
        mask = stage == code
        grades[mask] = assign_grades(proba[mask], rules.grades, rules.grade_by).to_numpy()
    flags = np.zeros(len(scores), dtype=bool)
    marketing = stage == (names.index(MARKETING) if MARKETING in names else -1)
    capacity = policy.capacity_per_week
    if capacity is not None:
        capacity = max(capacity - state.handed_this_week, 0)
    standing = (
        scores["lead_id"].astype(str).isin(state.standing).to_numpy()
        if state.standing
        else np.zeros(len(scores), dtype=bool)
    )
    flags[marketing] = mql_flags(
        proba[marketing],
        pd.Series(grades[marketing]),
        policy.mql_grades,
        policy.mql_min_score,
        capacity,
        standing[marketing],
    )
    return scores.assign(grade=grades, mql=flags)


def _stage_codes(scores: pd.DataFrame) -> tuple[np.ndarray, list[object]]:
    """Each row's stage as a code into the stages (integer codes, not a Python string per
    row: a batch has millions of rows and two stages). Rows kept from a table an older release
    wrote have no stage: they were marketing's."""
    if "stage" not in scores:
        return np.zeros(len(scores), dtype=np.int64), [MARKETING]
    codes, found = pd.factorize(scores["stage"])
    names = list(found)
    missing = codes < 0
    if missing.any():
        if MARKETING not in names:
            names.append(MARKETING)
        codes[missing] = names.index(MARKETING)
    return codes, names


def finish(
    scored: pd.DataFrame,
    version: str,
    as_of: pd.Timestamp,
    scored_at: pd.Timestamp,
    rules: ScoringRules,
    policy: HandOffRules,
    state: HandOffState = HandOffState(),
) -> pd.DataFrame:
    """Per-lead results with scores, grades and MQL flags drawn over all of them, and the
    batch's model version and times, in the columns a scoring run writes."""
    if scored.empty:
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    scored = scored.assign(score=to_score(scored["probability"].to_numpy()))
    scored = regrade(scored, rules, policy, state)
    out = scored.assign(model_version=version, as_of=as_of, scored_at=scored_at)
    return out[[c for c in SCORE_COLUMNS if c in out.columns]]  # the reasons may be staged
