"""Incremental scoring: which leads to rescore since the last batch, and which rows to keep."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from leadscore.features.changes import changed_lead_ids, new_activity_lead_ids
from leadscore.features.tables import CrmTables
from leadscore.models.scores import SCORE_COLUMNS


@dataclass(frozen=True)
class IncrementalRun:
    """What an incremental run compares against: the current table and the time since which
    changes are looked for."""

    current: pd.DataFrame
    since: pd.Timestamp
    changed: pd.Index  # leads changed through leads, deals or accounts (activities: per chunk)

    @classmethod
    def of(cls, tables: CrmTables, current: pd.DataFrame, since: pd.Timestamp) -> IncrementalRun:
        """The run over `tables` (as of the scoring time) against the current scores."""
        changed = pd.Index(changed_lead_ids(tables, since)).astype(str)
        return cls(current.assign(lead_id=current["lead_id"].astype(str)), since, changed)

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
        ).reindex(columns=list(SCORE_COLUMNS))  # a table an older release wrote lacks some

    def dropped(self, spine: pd.DataFrame) -> int:
        """Rows of the current table whose leads are no longer open."""
        return int((~self.current["lead_id"].isin(spine["lead_id"].astype(str))).sum())
