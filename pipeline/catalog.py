"""The catalog: where a job's data comes from and goes to, decided once.

Built once per command from the config, the engine and the data's shape, it hands the jobs
what they need (`load_as_of`, `write_scores`, `current_scores`, `score_history`, the tracking
store and the model registry) so that no job branches on engine, shape or kind of target:

- the shape (events, unit, flat) picks what "as of a time" and "open" mean (`features.shapes`);
- the engine and the job pick the activity log: the whole table in memory, streamed to disk by
  bucket of leads, or on Spark (`pipeline.io.activities`, `pipeline.io.spark`);
- the target (a SQLAlchemy URL, a SQLite file, a Parquet or CSV file) picks the writer
  (`pipeline.io.writeback`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import pandas as pd

from leadscore.features.engagement import ACTIVITY_TYPES, unknown_activity_types
from leadscore.features.shapes import Shape, shape_for
from leadscore.features.tables import CrmTables
from leadscore.pipeline.config import Config
from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io.activities import (
    ActivityLog,
    InMemoryActivities,
    SpilledActivities,
    partition_activities,
    source_rows,
    spill_folder,
)
from leadscore.pipeline.io.checks import check_named_columns
from leadscore.pipeline.io.readers import describe_source
from leadscore.pipeline.io.sources import fingerprint, load_tables, resolve_as_of, source_spec
from leadscore.pipeline.io.staging import StagedColumns
from leadscore.pipeline.io.work_aside import Aside
from leadscore.pipeline.io.writeback import (
    ChangeLog,
    read_changes,
    read_current,
    read_history,
    write_table,
)
from leadscore.pipeline.progress import Steps

Engine = Literal["pandas", "spark"]
Activities = Literal["whole", "streamed"]
FINGERPRINT_TIMEOUT_S = 1800.0  # a stuck child is stopped and the print computed in process


@dataclass(frozen=True)
class LoadedData:
    """The sources as of the run's time: the small tables (leads, accounts, deals, and the
    activities when loaded whole) and the activity log to map work over."""

    tables: CrmTables
    activities: ActivityLog
    as_of: pd.Timestamp
    printing: Aside[str] | None  # the fingerprint being computed aside, when asked for
    activity_rows: int | None  # None when the log is not counted here (on Spark, streamed)

    @property
    def fingerprint(self) -> str | None:
        """The loaded tables' fingerprint (waiting for it), when asked for."""
        return None if self.printing is None else self.printing.result()


@dataclass
class Catalog:
    """Sources, scores target, tracking and registry of one command's run."""

    config: Config
    data_dir: Path
    engine: Engine = "pandas"
    output: str | None = None  # the scores target; default scoring.output
    steps: Steps = field(default_factory=Steps)
    warnings: list[str] = field(default_factory=list)  # the run's validation report
    _cleanup: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _scratch: Path | None = None

    @classmethod
    @contextlib.contextmanager
    def open(
        cls,
        config: Config,
        data_dir: Path | None = None,
        engine: Engine = "pandas",
        output: str | None = None,
        steps: Steps | None = None,
    ) -> Iterator[Catalog]:
        """A catalog for one command; temporary files it made are gone when the block ends.

        The config it holds records the data folder actually used (`--data` over `data.dir`),
        so what is logged with a run is what ran."""
        folder = Path(data_dir) if data_dir is not None else Path(config.data.dir)
        used = config.data.model_copy(update={"dir": str(folder)})
        catalog = cls(
            config.model_copy(update={"data": used}), folder, engine, output, steps or Steps()
        )
        with catalog._cleanup:
            yield catalog

    def scratch(self) -> Path:
        """A folder for this run's temporary files (the split activity log's kind: removed
        when the run ends, or by a later run when this one was killed)."""
        if self._scratch is None:
            self._scratch = self._cleanup.enter_context(spill_folder(self.config.scoring.spill_dir))
        return self._scratch

    @property
    def shape(self) -> Shape:
        return shape_for(self.config.data.shape)

    @property
    def on_engine(self) -> str:
        """Said after a step's title: where its work runs ("" on one machine)."""
        return " on Spark" if self.engine == "spark" else ""

    @property
    def target(self) -> str:
        return self.output or self.config.scoring.output

    def warn(self, message: str) -> None:
        """A warning for the terminal and the run's validation report."""
        self.warnings.append(message)
        self.steps.warn(message)

    def record(self, message: str) -> None:
        """A detail for the run's validation report only (the terminal got a summary)."""
        self.warnings.append(message)

    # -- sources -------------------------------------------------------------------------------

    def load_as_of(
        self,
        as_of: pd.Timestamp | None,
        activities: Activities = "whole",
        with_fingerprint: bool = False,
    ) -> LoadedData:
        """Load and check every source, pick the run's time (`--as-of`, or the data's), and
        view the tables as they were just before it.

        `activities`: "whole" loads the activity log with the other tables (training builds
        features at many cutoffs at once); "streamed" splits it to disk by bucket of leads
        (scoring holds one chunk at a time). On Spark the log stays on Spark either way."""
        on_spark = self.engine == "spark"
        whole = activities == "whole" and not on_spark
        with self.steps.step(f"Loading {self.data_dir}"):
            raw = load_tables(self.config, self.data_dir, self.warn, activities=whole)
            check_named_columns(self.config, raw)
            printing = None
            if with_fingerprint:  # on the other core while the run goes on; read at its end
                printing = Aside(partial(fingerprint, raw, on_spark), FINGERPRINT_TIMEOUT_S)
        log = self._activity_log(raw, whole)
        as_of = resolve_as_of(raw, as_of, self.steps.note, log.newest)
        self._warn_future_leads(raw, as_of)
        tables = self.shape.as_of_view(raw, as_of)
        log = log.at(as_of)
        if whole:
            self._warn_unknown_activity_types(tables)
        rows = len(tables.activities) if whole else None
        return LoadedData(tables, log, as_of, printing, rows)

    def _activity_log(self, raw: CrmTables, whole: bool) -> ActivityLog:
        """The one place that decides where activities come from."""
        if self.engine == "spark":
            from leadscore.pipeline.io.spark import spark_activities

            if not self.shape.point_in_time:
                raise InputError("--engine spark is for event data; shape flat has no activity log")
            with self.steps.step("Starting Spark and reading the activity log"):
                return spark_activities(self.config, self.data_dir, raw, self.warn)
        spec = source_spec(self.config, self.data_dir, "activities")
        if whole or spec is None:  # no activities source: the (empty) loaded table
            newest = raw.activities["occurred_at"].max() if len(raw.activities) else None
            return InMemoryActivities(newest if pd.notna(newest) else None)
        folder = self._cleanup.enter_context(spill_folder(self.config.scoring.spill_dir))
        where = describe_source(spec, self.data_dir)
        rows = source_rows(spec, self.data_dir)
        with self.steps.progress(f"Reading activities from {where}", rows) as bar:
            partitions = partition_activities(
                spec, where, self.data_dir, raw.leads["lead_id"], folder, self.warn, bar
            )
        return SpilledActivities(partitions)

    def _warn_future_leads(self, raw: CrmTables, as_of: pd.Timestamp) -> None:
        """Leads created at or after the run's time are left out, and said so: a lead dated in
        the future (year 9999) is more often a typo than a lead."""
        created = raw.leads["created_at"]
        later = created >= as_of
        if not later.any():
            return
        message = (
            f"{int(later.sum()):,} leads created at or after the as-of time "
            f"{as_of:%Y-%m-%d %H:%M} are ignored"
        )
        future = created > pd.Timestamp.now(tz="UTC")
        if future.any():
            newest = raw.leads.loc[created[future].idxmax()]
            message += (
                f"; {int(future.sum()):,} of them are dated after today, e.g. lead "
                f"{str(newest['lead_id'])!r} on {newest['created_at']:%Y-%m-%d}: check created_at"
            )
        self.warn(message)

    def _warn_unknown_activity_types(self, tables: CrmTables) -> None:
        unknown = unknown_activity_types(tables.activities)
        if unknown.sum():
            shown = ", ".join(f"{t!r} ({n:,})" for t, n in unknown.head(5).items())
            self.warn(
                f"{int(unknown.sum()):,} of {len(tables.activities):,} activities have a type "
                f"outside {', '.join(ACTIVITY_TYPES)} and count as 'other': {shown}. Map them "
                "with values: in the activities source"
            )

    # -- the scores target ---------------------------------------------------------------------

    def write_scores(
        self,
        scores: pd.DataFrame,
        history: pd.DataFrame,
        batch_id: str,
        as_of: pd.Timestamp,
        scored_at: pd.Timestamp,
        staged: StagedColumns | None = None,
    ) -> tuple[str, dict[str, int]]:
        """Replace the current scores and append the batch to the history and its changes to
        the change log, as one; where, and how many changes of each kind. `staged`: the
        reasons, on disk, joined to `scores` as they are written."""
        s = self.config.scoring
        changes = ChangeLog(s.changes_table, batch_id, as_of, scored_at)
        target = write_table(
            scores,
            self.target,
            s.table,
            history=(history, s.history_table),
            columns=dict(s.columns),
            lock_timeout_s=s.lock_timeout_s,
            changes=changes,
            staged=staged,
        )
        return target, dict(changes.counts)

    def current_scores(
        self, only: Sequence[str] | None = None
    ) -> tuple[pd.DataFrame | None, pd.Timestamp | None]:
        """The current scores (our column names; only these, when given) and the history's
        newest as-of."""
        s = self.config.scoring
        return read_current(
            self.target, s.table, s.history_table, dict(s.columns), only, s.lock_timeout_s
        )

    def score_changes(self, since: pd.Timestamp | None = None) -> pd.DataFrame | None:
        """The score changes (MQL hand-offs and exits, grade changes) as of `since` or later."""
        s = self.config.scoring
        return read_changes(self.target, s.changes_table, since, s.lock_timeout_s)

    def score_history(self) -> pd.DataFrame | None:
        s = self.config.scoring
        return read_history(self.target, s.history_table, dict(s.columns), s.lock_timeout_s)
