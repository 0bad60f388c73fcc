"""The scoring job: load -> features for open leads -> predict -> reasons -> write back."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.build import build_features
from features.descriptions import describe
from features.families import FAMILIES, feature_family
from features.snapshots import open_leads
from features.tables import CrmTables, as_of, clean
from models.evaluation import grade_table
from models.reasons import strongest_against, top_reasons
from models.scores import SCORE_COLUMNS, assign_grades, mql_flags, to_score
from models.subscores import family_logits, to_subscore
from pipeline.config import Config
from pipeline.errors import InputError
from pipeline.progress import Steps
from pipeline.pyfunc_model import ScoringBundle
from pipeline.registry import choose_version, configure_tracking, load_bundle
from pipeline.sources import load_tables, resolve_as_of
from pipeline.writeback import write_table

HISTORY_COLUMNS = [
    "lead_id",
    "score",
    "probability",
    "grade",
    "fit_score",
    "engagement_score",
    "mql",
    "model_version",
    "as_of",
    "scored_at",
]
NO_REASON = "No signal raised this lead's score above the typical lead"


@dataclass(frozen=True)
class ScoreResult:
    scores: pd.DataFrame
    target: str
    version: str
    as_of: pd.Timestamp
    holdout_grades: pd.DataFrame  # the model's holdout, graded with the current bands


def open_spine(tables: CrmTables, moment: pd.Timestamp, shape: str) -> pd.DataFrame:
    """The leads to score: open at `moment`, or (shape flat) those with no outcome yet."""
    if shape == "flat":
        open_ids = tables.leads.loc[tables.leads["outcome"].isna(), "lead_id"]
        return pd.DataFrame({"lead_id": open_ids.to_numpy(), "cutoff": moment})
    return open_leads(tables, pd.DatetimeIndex([moment], name="cutoff"), None)


def _score_chunk(
    tables: CrmTables, bundle: ScoringBundle, spine: pd.DataFrame, config: Config
) -> pd.DataFrame:
    """Everything per lead that does not depend on the other leads: features, probability,
    sub-scores and reasons. Grades and MQL flags (which can rank leads) come after."""
    X = build_features(tables, spine, bundle.feature_spec).reset_index(drop=True)
    model = bundle.estimator
    missing = [c for c in model.feature_names_in_ if c not in X.columns]
    if missing:
        raise InputError(
            f"the model was trained with feature(s) {', '.join(missing)} that these data cannot "
            "build: a column of leads or accounts (an attribute's own name, or account_<name>) "
            "is missing"
        )
    contributions = model.contributions(X)
    proba = model.proba_from_margin(contributions.sum(axis=1).to_numpy())
    s = config.scoring
    logits = family_logits(contributions, feature_family, FAMILIES)
    up = top_reasons(X, contributions, describe, s.max_reasons, s.min_reason_impact)
    down = strongest_against(X, contributions, describe, s.min_reason_impact)
    structured = [
        json.dumps(
            [
                {
                    "feature": r["feature"],
                    "value": _plain(r["value"]),
                    "impact": round(r["impact"], 4),
                }
                for r in [*ups, *([against] if against else [])]
            ]
        )
        for ups, against in zip(up, down, strict=True)
    ]
    reference = bundle.subscore_reference
    return pd.DataFrame(
        {
            "lead_id": spine["lead_id"].to_numpy(),
            "probability": proba.round(6),
            "fit_score": to_subscore(logits["fit"], reference["fit"]),
            "engagement_score": to_subscore(logits["engagement"], reference["engagement"]),
            "reasons": ["; ".join(r["text"] for r in row) or NO_REASON for row in up],
            "reason_against": [r["text"] if r else "" for r in down],
            "reasons_json": structured,
        }
    )


def score_leads(
    tables: CrmTables,
    bundle: ScoringBundle,
    version: str,
    moment: pd.Timestamp,
    config: Config,
    scored_at: pd.Timestamp,
) -> pd.DataFrame:
    """One row per lead open at `moment`: probability, score, grade, MQL flag, sub-scores and
    reasons. Leads are scored `scoring.chunk_size` at a time, so feature matrices and TreeSHAP
    contributions stay bounded by the chunk, not the number of leads."""
    spine = open_spine(tables, moment, config.data.shape)
    if spine.empty:
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    size = config.scoring.chunk_size
    parts = [
        _score_chunk(tables, bundle, spine.iloc[start : start + size], config)
        for start in range(0, len(spine), size)
    ]
    scored = pd.concat(parts, ignore_index=True)
    s = config.scoring
    proba = scored["probability"].to_numpy()
    grades = assign_grades(proba, s.grades, s.grade_by)
    scored.insert(2, "score", to_score(proba))
    scored.insert(3, "grade", grades.to_numpy())
    scored.insert(4, "mql", mql_flags(proba, grades, s.mql_grades, s.mql_min_score, s.mql_capacity))
    return scored.assign(model_version=version, as_of=moment, scored_at=scored_at)[
        list(SCORE_COLUMNS)
    ]


def _plain(value: object) -> object:
    """A JSON-friendly feature value (numpy numbers become Python numbers, NaN null)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def score(
    config: Config,
    data_dir: Path,
    moment: pd.Timestamp | None,
    output: str,
    steps: Steps,
    model_version: str | None = None,
) -> ScoreResult:
    """Score every lead open at `moment` with the champion model and write the scores."""
    with steps.step(f"Loading {data_dir}"):
        raw = load_tables(config, data_dir, steps.warn)
    moment = resolve_as_of(raw, moment, steps.note)
    tables = clean(raw if config.data.shape == "flat" else as_of(raw, moment))
    configure_tracking()
    name = config.mlflow.registered_model
    version, why = choose_version(name, moment, model_version)
    with steps.step(f"Loading {name}: {why}"):
        bundle = load_bundle(name, version)
    with steps.step("Building features, scoring and explaining open leads"):
        scores = score_leads(
            tables, bundle, version, moment, config, pd.Timestamp.now(tz="UTC").floor("s")
        )
    if scores.empty:
        what = (
            "no lead without an outcome (shape flat scores the leads whose outcome is empty)"
            if config.data.shape == "flat"
            else f"no open leads at {moment:%Y-%m-%d %H:%M}"
        )
        raise InputError(f"{data_dir}: {what}; nothing to score")
    with steps.step(f"Writing {len(scores):,} scores"):
        batch = uuid.uuid4().hex
        history = scores[HISTORY_COLUMNS].assign(batch_id=batch)
        target = write_table(
            scores,
            output,
            config.scoring.table,
            history=(history, config.scoring.history_table),
            columns=dict(config.scoring.columns),
        )
    return ScoreResult(
        scores=scores,
        target=target,
        version=version,
        as_of=moment,
        holdout_grades=grade_table(
            bundle.holdout["label"].to_numpy(),
            bundle.holdout["probability"].to_numpy(),
            assign_grades(
                bundle.holdout["probability"].to_numpy(),
                config.scoring.grades,
                config.scoring.grade_by,
            ),
        ),
    )
