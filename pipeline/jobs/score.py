"""The scoring job: load -> features for open leads -> predict -> reasons -> write back."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from leadscore.features.build import build_features
from leadscore.features.changes import changed_lead_ids, new_activity_lead_ids
from leadscore.features.descriptions import describe
from leadscore.features.families import FAMILIES, feature_family
from leadscore.features.snapshots import open_leads
from leadscore.features.tables import CrmTables, activities_as_of, clean_activities
from leadscore.models.evaluation import grade_table
from leadscore.models.reasons import reason_columns
from leadscore.models.scores import SCORE_COLUMNS, assign_grades, mql_flags, to_score
from leadscore.models.subscores import family_logits, to_subscore
from leadscore.pipeline.config import Config
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io.activities import (
    ActivityPartitions,
    partition_activities,
    source_rows,
    spill_folder,
)
from leadscore.pipeline.io.model_package import ScoringBundle
from leadscore.pipeline.io.registry import chosen_bundle
from leadscore.pipeline.io.sources import (
    as_of_view,
    describe_source,
    load_tables,
    resolve_as_of,
    source_spec,
)
from leadscore.pipeline.io.spark import (
    SCORE_PART_COLUMNS,
    SparkActivities,
    spark_activities,
    spark_scores,
)
from leadscore.pipeline.io.writeback import read_current, write_table
from leadscore.pipeline.progress import Steps
from leadscore.pipeline.redaction import redact

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
    words = reason_columns(X, contributions, describe, s.max_reasons, s.min_reason_impact)
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


def chunks(
    tables: CrmTables, spine: pd.DataFrame, size: int
) -> Iterator[tuple[CrmTables, pd.DataFrame]]:
    """The spine `size` leads at a time, each with only its own leads' activities.

    Activities are split once, by a stable sort on the chunk number, so each chunk's features
    read its own rows instead of the whole log. Leads, accounts and deals stay whole: account
    features count the account's other leads and deals."""
    acts = tables.activities
    position = pd.Index(spine["lead_id"].to_numpy()).get_indexer(acts["lead_id"].to_numpy())
    chunk_of = np.where(position >= 0, position // size, -1)
    order = np.argsort(chunk_of, kind="stable")
    n_chunks = -(-len(spine) // size)
    bounds = np.searchsorted(chunk_of[order], np.arange(n_chunks + 1), side="left")
    for k in range(n_chunks):
        rows = order[bounds[k] : bounds[k + 1]]
        part = replace(tables, activities=acts.iloc[rows])
        yield part, spine.iloc[k * size : (k + 1) * size]


def partitioned_chunks(
    tables: CrmTables,
    spine: pd.DataFrame,
    size: int,
    partitions: ActivityPartitions,
    moment: pd.Timestamp,
) -> Iterator[tuple[CrmTables, pd.DataFrame]]:
    """As `chunks`, with activities read from disk: consecutive buckets are grouped up to `size`
    open leads, and only their activities (as of `moment`, cleaned) are in memory at once.
    `spine` must be in the leads table's order (as `open_spine` gives it)."""
    bucket = partitions.buckets(spine["lead_id"])
    if (np.diff(bucket) < 0).any() or (bucket < 0).any():
        raise ValueError("the spine must hold leads of the partitioned table, in its order")
    ids, starts, counts = np.unique(bucket, return_index=True, return_counts=True)
    group_start = 0
    while group_start < len(ids):
        group_end, total = group_start + 1, counts[group_start]
        while group_end < len(ids) and total + counts[group_end] <= size:
            total += counts[group_end]
            group_end += 1
        first = starts[group_start]
        lead_chunk = spine.iloc[first : first + total]
        read = partitions.read(ids[group_start:group_end].tolist())
        part = replace(tables, activities=clean_activities(activities_as_of(read, moment)))
        yield from chunks(part, lead_chunk, size)  # a bucket can hold more than `size` leads
        group_start = group_end


def score_leads(
    tables: CrmTables,
    bundle: ScoringBundle,
    version: str,
    moment: pd.Timestamp,
    config: Config,
    scored_at: pd.Timestamp,
    spine: pd.DataFrame | None = None,
    advance: Callable[[int], None] | None = None,
    partitions: ActivityPartitions | None = None,
    select: Callable[[CrmTables, pd.DataFrame], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """One row per lead of `spine` (default: every lead open at `moment`): probability, score,
    grade, MQL flag, sub-scores and reasons. Leads are scored `scoring.chunk_size` at a time, so
    feature matrices and TreeSHAP contributions stay bounded by the chunk; with `partitions`,
    activities are read from disk a chunk at a time too (`tables.activities` is not used).
    `select` narrows each chunk's leads given its tables (incremental runs); `advance` is told
    how many leads each chunk covered."""
    if spine is None:
        spine = open_spine(tables, moment, config.data.shape)
    size = config.scoring.chunk_size
    parts = []
    if partitions is None:
        pieces = chunks(tables, spine, size)
    else:
        pieces = partitioned_chunks(tables, spine, size, partitions, moment)
    for part, lead_chunk in pieces:
        chosen = lead_chunk if select is None else select(part, lead_chunk)
        if len(chosen):
            parts.append(_score_chunk(part, bundle, chosen, config))
        if advance is not None:
            advance(len(lead_chunk))
    if not parts:
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    return _finished(pd.concat(parts, ignore_index=True), version, moment, scored_at, config)


def _finished(
    scored: pd.DataFrame,
    version: str,
    moment: pd.Timestamp,
    scored_at: pd.Timestamp,
    config: Config,
) -> pd.DataFrame:
    """Per-lead results with scores, grades and MQL flags drawn over all of them, and the
    batch's model version and times."""
    if scored.empty:
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    scored = _regraded(scored.assign(score=to_score(scored["probability"].to_numpy())), config)
    return scored.assign(model_version=version, as_of=moment, scored_at=scored_at)[
        list(SCORE_COLUMNS)
    ]


def score_leads_spark(
    activities: SparkActivities,
    tables: CrmTables,
    bundle: ScoringBundle,
    version: str,
    moment: pd.Timestamp,
    config: Config,
    scored_at: pd.Timestamp,
    spine: pd.DataFrame,
    select: Callable[[CrmTables, pd.DataFrame], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """`score_leads` with the per-lead work (`_score_chunk`) run per bucket of leads on Spark;
    grades and MQL flags are drawn on the driver over all leads, as on one machine."""

    def part(bucket_tables: CrmTables, lead_chunk: pd.DataFrame) -> pd.DataFrame:
        chosen = lead_chunk if select is None else select(bucket_tables, lead_chunk)
        if chosen.empty:
            return pd.DataFrame({c: [] for c in SCORE_PART_COLUMNS})
        return _score_chunk(bucket_tables, bundle, chosen, config)

    scored = spark_scores(activities, tables, spine, moment, part)
    return _finished(scored, version, moment, scored_at, config)


@dataclass(frozen=True)
class IncrementalRun:
    """What an incremental run compares against: the current table and the moment since which
    changes are looked for."""

    current: pd.DataFrame
    since: pd.Timestamp
    changed: pd.Index  # leads changed through leads, deals or accounts (activities: per chunk)

    def select(self, part: CrmTables, lead_chunk: pd.DataFrame) -> pd.DataFrame:
        """The chunk's leads to rescore: changed, newly active, or not in the current table."""
        ids = lead_chunk["lead_id"].astype(str)
        active = pd.Index(new_activity_lead_ids(part.activities, self.since)).astype(str)
        rescore = ids.isin(self.changed) | ids.isin(active) | ~ids.isin(self.current["lead_id"])
        return lead_chunk[rescore.to_numpy()]

    def kept(self, spine: pd.DataFrame, rescored: pd.DataFrame) -> pd.DataFrame:
        """The current rows of open leads that were not rescored, as they were."""
        known = self.current["lead_id"]
        keep = self.current[
            known.isin(spine["lead_id"].astype(str)).to_numpy()
            & ~known.isin(rescored["lead_id"].astype(str)).to_numpy()
        ]
        return keep.assign(
            lead_id=keep["lead_id"].astype(spine["lead_id"].dtype),
            as_of=pd.to_datetime(keep["as_of"], utc=True),
            scored_at=pd.to_datetime(keep["scored_at"], utc=True),
        )[list(SCORE_COLUMNS)]


def _incremental_run(
    tables: CrmTables,
    version: str,
    output: str,
    config: Config,
    changed_since: pd.Timestamp | str,
    steps: Steps,
) -> IncrementalRun | None:
    """The earlier scores to build on, or None when every open lead must be scored."""
    s = config.scoring
    current, last = read_current(output, s.table, s.history_table, dict(s.columns))
    since = last if changed_since == "last" else changed_since
    if current is None or current.empty or since is None:
        steps.note(f"No earlier scores at {redact(output)}: scoring every open lead")
        return None
    versions = set(current["model_version"].astype(str))
    if versions != {version}:
        steps.note(
            f"The current scores come from model version(s) {', '.join(sorted(versions))}, not "
            f"{version}: scoring every open lead"
        )
        return None
    changed = pd.Index(changed_lead_ids(tables, since)).astype(str)
    return IncrementalRun(current.assign(lead_id=current["lead_id"].astype(str)), since, changed)


def _regraded(scores: pd.DataFrame, config: Config) -> pd.DataFrame:
    """Grades and MQL flags drawn over the whole table (percentile bands and the MQL capacity
    rank leads against each other)."""
    s = config.scoring
    proba = scores["probability"].to_numpy(dtype=float)
    grades = assign_grades(proba, s.grades, s.grade_by)
    return scores.assign(
        grade=grades.to_numpy(),
        mql=mql_flags(proba, grades, s.mql_grades, s.mql_min_score, s.mql_capacity),
    )


def _partitioned_activities(
    config: Config, data_dir: Path, raw: CrmTables, folder: Path, steps: Steps
) -> ActivityPartitions | None:
    """The activity source streamed into `folder` by lead (None: the shape has no activities)."""
    spec = source_spec(config, data_dir, "activities")
    if spec is None:
        return None
    where = describe_source(spec, data_dir)
    with steps.progress(f"Reading activities from {where}", source_rows(spec, data_dir)) as bar:
        return partition_activities(
            spec,
            where,
            data_dir,
            raw.leads["lead_id"],
            config.scoring.chunk_size,
            folder,
            steps.warn,
            bar,
        )


def score(
    config: Config,
    data_dir: Path,
    moment: pd.Timestamp | None,
    output: str,
    steps: Steps,
    model_version: str | None = None,
    changed_since: pd.Timestamp | str | None = None,
    engine: str = "pandas",
) -> ScoreResult:
    """Score every lead open at `moment` with the champion model and write the scores.

    With `changed_since` (a moment, or "last" for the newest `as_of` in the history table), only
    leads whose features may have changed since then are rescored (`changed_lead_ids`), plus
    open leads the current table lacks; the other rows are kept as they were, leads no longer
    open are dropped, and grades and MQL flags are drawn again over the whole table. A model
    version other than the current table's means every lead is rescored. `engine` "spark" runs
    the per-lead work on Spark (`pipeline.spark_engine`); the results are the same."""
    with steps.step(f"Loading {data_dir}"):
        raw = load_tables(config, data_dir, steps.warn, activities=False)
    with spill_folder(config.scoring.spill_dir) as folder:
        on_spark, partitions = None, None
        if engine == "spark":
            with steps.step("Starting Spark and reading the activity log"):
                on_spark = spark_activities(config, data_dir, raw)
                newest = on_spark.newest(steps.warn)
        else:
            partitions = _partitioned_activities(config, data_dir, raw, folder, steps)
            newest = partitions.newest if partitions is not None else None
        moment = resolve_as_of(raw, moment, steps.note, newest)
        tables = as_of_view(raw, moment, config.data.shape, steps.warn)
        del raw  # the as-of view holds copies: keep one set of tables in memory, not two
        version, bundle = chosen_bundle(
            config.mlflow.registered_model, moment, model_version, steps
        )
        spine = open_spine(tables, moment, config.data.shape)
        run = None
        if changed_since is not None:
            run = _incremental_run(tables, version, output, config, changed_since, steps)
        select = run.select if run is not None else None
        scored_at = pd.Timestamp.now(tz="UTC").floor("s")
        title = "Building features, scoring and explaining open leads"
        if on_spark is not None:
            with steps.step(f"{title} on Spark"):
                scores = score_leads_spark(
                    on_spark, tables, bundle, version, moment, config, scored_at, spine, select
                )
        else:
            with steps.progress(title, len(spine)) as bar:
                scores = score_leads(
                    tables,
                    bundle,
                    version,
                    moment,
                    config,
                    scored_at,
                    spine=spine,
                    advance=bar,
                    partitions=partitions,
                    select=select,
                )
    rescored = scores
    if run is not None:
        kept = run.kept(spine, rescored)
        steps.note(
            f"Changed since {run.since:%Y-%m-%d %H:%M}: rescored {len(rescored):,} of "
            f"{len(spine):,} open leads, kept {len(kept):,}, dropped "
            f"{int((~run.current['lead_id'].isin(spine['lead_id'].astype(str))).sum()):,} "
            "no longer open"
        )
        parts = [kept, scores] if len(scores) else [kept]
        scores = _regraded(pd.concat(parts, ignore_index=True), config)
    if scores.empty:
        what = (
            "no lead without an outcome (shape flat scores the leads whose outcome is empty)"
            if config.data.shape == "flat"
            else f"no open leads at {moment:%Y-%m-%d %H:%M}"
        )
        raise InputError(f"{data_dir}: {what}; nothing to score")
    rescored_note = "" if run is None else f" ({len(rescored):,} rescored)"
    with steps.step(f"Writing {len(scores):,} scores{rescored_note}"):
        batch = uuid.uuid4().hex
        history = rescored[HISTORY_COLUMNS].assign(batch_id=batch)
        target = write_table(
            scores,
            output,
            config.scoring.table,
            history=(history, config.scoring.history_table),
            columns=dict(config.scoring.columns),
            lock_timeout_s=config.scoring.lock_timeout_s,
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
