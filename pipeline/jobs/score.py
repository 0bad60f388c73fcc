"""The scoring job: load -> as-of -> features -> score -> reasons -> write back.

Reading it is the answer to "where does a lead's row go from the CSV to the scores table":
`load_as_of` reads and checks the CSV (or Parquet, or SQL) sources and views them as of the
run's time; the open spine lists the leads to score; per chunk of leads, `score_chunk` builds
their features with the model's own feature spec and computes the calibrated probability, the
fit and engagement sub-scores and the reasons, and stages the reasons on disk; `finish` draws
scores, grades and MQL flags over the whole batch from the probabilities; `write_scores`
replaces the current table (the staged reasons joined back a chunk at a time) and appends the
batch to the history, as one.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from leadscore.features.tables import CrmTables
from leadscore.models.incremental import IncrementalRun
from leadscore.models.score_changes import handoffs_since
from leadscore.models.scores import SCORE_COLUMNS, assign_grades, grade_table
from leadscore.pipeline.catalog import Catalog
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io.allocator import release_freed_memory
from leadscore.pipeline.io.chunk_workers import Workers, usable_cores
from leadscore.pipeline.io.staging import StagedColumns
from leadscore.pipeline.redaction import redact

if TYPE_CHECKING:
    from leadscore.models.scoring import HandOffState, ScoringBundle

# LightGBM, numba and MLflow take about a second to import: this job imports them after its
# first step (loading the data), inside the functions that use them, so a scheduled run shows
# progress at once.


@dataclass(frozen=True)
class ScoreResult:
    scores: pd.DataFrame  # the batch as written, without the reasons when they were staged
    target: str
    version: str
    as_of: pd.Timestamp
    holdout_grades: pd.DataFrame  # the model's holdout, graded with the current bands


def score(
    catalog: Catalog,
    as_of: pd.Timestamp | None,
    model_version: str | None = None,
    changed_since: pd.Timestamp | str | None = None,
) -> ScoreResult:
    """Score every lead open at the run's time with the champion and write the scores.

    With `changed_since` (a time, or "last": the history's newest as-of) only leads whose
    features may have changed since then are rescored, plus open leads the current table lacks;
    the other rows are kept, leads no longer open are dropped, and grades and MQL flags are
    drawn again over the whole table. A model version other than the current table's rescores
    every lead."""
    config, steps, rules = catalog.config, catalog.steps, catalog.config.scoring
    data = catalog.load_as_of(as_of, activities="streamed")
    release_freed_memory()  # the load's transient copies: scoring builds on a lower base
    from leadscore.models.scoring import HISTORY_COLUMNS, PART_KINDS, chunk_scorer, finish
    from leadscore.pipeline.io.registry import chosen_bundle

    version, bundle = chosen_bundle(
        config.mlflow.registered_model, data.as_of, model_version, steps
    )
    _check_features(data.tables, bundle)
    spine = catalog.shape.open_spine(data.tables, data.as_of)
    # the current table, read once: incremental runs build on it, a weekly capacity counts it
    capacity = config.agreement.capacity_per_week
    wanted = changed_since is not None or capacity is not None
    # a weekly capacity needs only who is MQL; an incremental run keeps whole rows
    only = None if changed_since is not None else ("lead_id", "mql")
    current, last = catalog.current_scores(only) if wanted else (None, None)
    base = _incremental_base(catalog, data.tables, version, changed_since, current, last)
    scored_at = pd.Timestamp.now(tz="UTC").floor("s")
    started = time.monotonic()
    title = f"Building features, scoring and explaining open leads{catalog.on_engine}"
    staged = StagedColumns(catalog.scratch() / f"reasons-{uuid.uuid4().hex}.arrow", SCORE_COLUMNS)
    work = chunk_scorer(bundle, rules, None if base is None else base.select)
    with steps.progress(title, len(spine)) as bar:  # each chunk's reasons go to disk at once
        scored = data.activities.map_leads(
            data.tables, spine, work, PART_KINDS, rules.chunk_size, bar, staged.kept,
            _workers(catalog, bundle),
        )  # fmt: skip
    release_freed_memory()
    state = _hand_off_state(catalog, data.as_of, current)
    rescored = finish(scored, version, data.as_of, scored_at, rules, config.agreement, state)
    if base is None:
        scores = rescored
    else:  # the kept rows come with their reasons: the rescored ones join them in memory
        rescored = staged.whole(rescored)
        scores = _merged(base, spine, rescored, catalog, state)
        staged = None
    run_as_of = data.as_of
    # the tables and the spine are not needed to write: their memory goes back before the
    # write builds its own (the leads table alone is about 150 bytes a lead)
    del data, spine, scored
    release_freed_memory()
    if scores.empty:
        raise InputError(
            f"{catalog.data_dir}: {catalog.shape.nothing_open(run_as_of)}; nothing to score"
        )
    note = "" if base is None else f" ({len(rescored):,} rescored)"
    batch_id = uuid.uuid4().hex
    with steps.step(f"Writing {len(scores):,} scores{note}"):
        # the rescored leads as the table holds them: grades and MQLs drawn over the whole table
        if base is None:  # every row rescored: the history takes them all, without a copy
            history = scores[HISTORY_COLUMNS].assign(batch_id=batch_id)
        else:
            fresh = scores["lead_id"].isin(rescored["lead_id"]).to_numpy()
            history = scores.loc[fresh, HISTORY_COLUMNS].assign(batch_id=batch_id)
        target, changes = catalog.write_scores(
            scores, history, batch_id, run_as_of, scored_at, staged
        )
    _log_batch(catalog, scores, changes, batch_id, version, run_as_of, started)
    return ScoreResult(scores, target, version, run_as_of, _holdout_grades(bundle, catalog))


def _workers(catalog: Catalog, bundle: ScoringBundle) -> Workers | None:
    """The processes that score chunks (`scoring.workers`, default one per usable core), each
    on one thread, with the model's tables built and its kernel compiled before they fork;
    None on Spark, whose executors score the chunks."""
    from leadscore.models import tree_shap
    from leadscore.models.scoring import prepare

    if catalog.engine == "spark":
        return None
    count = catalog.config.scoring.workers or usable_cores()
    workers = Workers(count, tree_shap.use_one_thread, catalog.warn)
    if workers.forking:
        prepare(bundle)
    return workers


def _check_features(tables: CrmTables, bundle: ScoringBundle) -> None:
    from leadscore.models.scoring import missing_features

    missing = missing_features(tables, bundle)
    if missing:
        raise InputError(
            f"the model was trained with feature(s) {', '.join(missing)} that these data cannot "
            "build: a column of leads or accounts (an attribute's own name, or account_<name>) "
            "is missing"
        )


def _incremental_base(
    catalog: Catalog,
    tables: CrmTables,
    version: str,
    changed_since: pd.Timestamp | str | None,
    current: pd.DataFrame | None,
    last: pd.Timestamp | None,
) -> IncrementalRun | None:
    """The earlier scores (`current`, the history's newest as-of `last`) to build on, or None
    when every open lead must be scored."""
    if changed_since is None:
        return None
    since = last if changed_since == "last" else changed_since
    if current is None or current.empty or since is None:
        catalog.steps.note(
            f"No earlier scores at {redact(catalog.target)}: scoring every open lead"
        )
        return None
    versions = set(current["model_version"].astype(str))
    if versions != {version}:
        catalog.steps.note(
            f"The current scores come from model version(s) {', '.join(sorted(versions))}, not "
            f"{version}: scoring every open lead"
        )
        return None
    return IncrementalRun.of(tables, current, since)


def _log_batch(
    catalog: Catalog,
    scores: pd.DataFrame,
    changes: dict[str, int],
    batch_id: str,
    version: str,
    as_of: pd.Timestamp,
    started: float,
) -> None:
    """The batch as an MLflow run beside the training runs: counts per stage and grade, MQLs,
    the changes it wrote. The scores are written already, so a failure here only warns."""
    from leadscore.pipeline.io.tracking import ScoreBatchRecord, log_score_batch

    config = catalog.config
    counts: dict[str, float] = {"leads": len(scores), "mqls": float(scores["mql"].sum())}
    for (stage, grade), n in scores.groupby(["stage", "grade"]).size().items():
        counts[f"leads_{stage}_{grade}"] = float(n)
    counts |= {f"changes_{kind}": float(n) for kind, n in changes.items()}
    try:
        record = ScoreBatchRecord(
            batch_id, as_of, version, catalog.target, catalog.engine, counts,
            time.monotonic() - started,
        )  # fmt: skip
        with catalog.steps.step("Logging the batch in MLflow"):
            log_score_batch(record, config.mlflow.experiment, config.mlflow.registered_model)
    except Exception as exc:  # the scores are written: say so, do not fail the job
        catalog.warn(f"the batch was written but not logged in MLflow: {type(exc).__name__}: {exc}")


def _hand_off_state(
    catalog: Catalog, as_of: pd.Timestamp, current: pd.DataFrame | None
) -> HandOffState:
    """With a weekly capacity: the leads MQL in the previous batch (`current`; they stay MQL
    while they qualify) and the new hand-offs made in the 7 days before this batch (they spend
    it)."""
    from leadscore.models.scoring import HandOffState

    capacity = catalog.config.agreement.capacity_per_week
    if capacity is None:
        return HandOffState()
    standing: frozenset[str] = frozenset()
    if current is not None and {"lead_id", "mql"} <= set(current.columns):
        flagged = current["mql"].fillna(False).astype(bool)
        standing = frozenset(current.loc[flagged, "lead_id"].astype(str))
    week = pd.Timedelta(days=7)
    handed = handoffs_since(catalog.score_changes(as_of - week), as_of - week, as_of)
    # a rerun as of the same time: its MQLs stand and its hand-offs are spent already
    catalog.steps.note(
        f"Capacity {capacity:,} new MQLs a week: {handed:,} handed over in the 7 days before "
        f"{as_of:%Y-%m-%d}, {len(standing):,} MQL in the previous batch"
    )
    return HandOffState(standing, handed)


def _merged(
    base: IncrementalRun,
    spine: pd.DataFrame,
    rescored: pd.DataFrame,
    catalog: Catalog,
    state: HandOffState,
) -> pd.DataFrame:
    """The rescored rows with the kept ones, graded again over the whole table."""
    from leadscore.models.scoring import regrade

    kept = base.kept(spine, rescored)
    catalog.steps.note(
        f"Changed since {base.since:%Y-%m-%d %H:%M}: rescored {len(rescored):,} of "
        f"{len(spine):,} open leads, kept {len(kept):,}, dropped {base.dropped(spine):,} "
        "no longer open"
    )
    parts = [kept, rescored] if len(rescored) else [kept]
    config = catalog.config
    return regrade(pd.concat(parts, ignore_index=True), config.scoring, config.agreement, state)


def _holdout_grades(bundle: ScoringBundle, catalog: Catalog) -> pd.DataFrame:
    """The model's holdout, graded with the current bands (win rates per grade)."""
    rules = catalog.config.scoring
    p = bundle.holdout["probability"].to_numpy()
    return grade_table(
        bundle.holdout["label"].to_numpy(), p, assign_grades(p, rules.grades, rules.grade_by)
    )
