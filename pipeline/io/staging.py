"""The wide per-lead columns of a score batch (the reasons), staged on disk between scoring and
the write, so the job's memory does not grow with them.

A scoring chunk's reasons go to an Arrow stream file as soon as the chunk is scored; the batch
keeps only its narrow columns (ids, probabilities, stages, sub-scores) in memory, which is all
that grades, MQL flags, score changes and unchanged times are drawn from. The write reads the
file back one chunk at a time, joins each to its rows and inserts it, inside the one
transaction that replaces the current table. The file lives in the run's spill folder, which
is removed when the run ends (or by the next run, when this one was killed).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from leadscore.pipeline.errors import JobFailure

WIDE_COLUMNS = ("reasons", "reason_against", "reasons_json")


class StagedColumns:
    """Columns of a batch's rows, appended chunk by chunk in the rows' order, with each row's
    lead id to check that they are joined back to the right rows."""

    def __init__(
        self, path: Path, order: Sequence[str], columns: Sequence[str] = WIDE_COLUMNS
    ) -> None:
        self.path = path
        self.order = list(order)  # every column of the joined rows, in order
        self.columns = list(columns)
        self.schema = pa.schema(
            [("lead_id", pa.large_string()), *((c, pa.large_string()) for c in self.columns)]
        )
        self.rows = 0
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None

    def append(self, part: pd.DataFrame) -> None:
        """Stage `part`'s columns (lead_id and `columns`)."""
        if self._writer is None:
            self._writer = pa.ipc.new_stream(str(self.path), self.schema)
        arrays = [pa.array(_ids(part["lead_id"]), pa.large_string())]
        arrays += [
            pa.array(part[c].to_numpy(dtype=object), pa.large_string()) for c in self.columns
        ]
        try:
            self._writer.write_batch(pa.record_batch(arrays, schema=self.schema))
        except OSError as exc:  # a full disk, most often
            raise JobFailure(
                f"cannot stage the batch's reasons in {self.path.parent}: {exc} (scoring.spill_dir "
                "sets the folder); nothing was written"
            ) from None
        self.rows += len(part)

    def kept(self, part: pd.DataFrame) -> pd.DataFrame:
        """Stage `part`'s columns; the rest of it, to keep in memory."""
        if len(part):
            self.append(part)
        return part.drop(columns=self.columns)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def chunks(self) -> Iterator[pd.DataFrame]:
        """The staged rows, chunk by chunk, in the order they were appended."""
        self.close()
        if not self.path.exists():
            return
        # read, not memory-mapped: mapped pages would count in the job's resident memory
        with pa.OSFile(str(self.path)) as source:
            for batch in pa.ipc.open_stream(source):
                yield pd.DataFrame(
                    {name: batch.column(name).to_pylist() for name in batch.schema.names}
                )

    def shape(self, narrow: pd.DataFrame) -> pd.DataFrame:
        """No rows, every column: what the joined rows will be (for a table's schema)."""
        empty = narrow.head(0).assign(**{c: pd.Series([], dtype=object) for c in self.columns})
        return empty[self.order]

    def joined(self, narrow: pd.DataFrame) -> Iterator[pd.DataFrame]:
        """`narrow` (the batch's rows, in the staged order) with the staged columns, a chunk at
        a time, columns in `order`."""
        if len(narrow) != self.rows:
            raise JobFailure(
                f"the staged reasons hold {self.rows:,} rows, the batch {len(narrow):,}"
            )
        start = 0
        for chunk in self.chunks():
            rows = narrow.iloc[start : start + len(chunk)]
            if not np.array_equal(_ids(rows["lead_id"]), chunk["lead_id"].to_numpy(dtype=object)):
                raise JobFailure("the staged reasons are not in the batch's order")
            wide = chunk.drop(columns="lead_id").set_axis(rows.index)
            yield pd.concat([rows, wide], axis=1)[self.order]
            start += len(chunk)

    def whole(self, narrow: pd.DataFrame) -> pd.DataFrame:
        """`narrow` with every staged column, all at once (file targets, incremental runs)."""
        parts = list(self.joined(narrow))
        return pd.concat(parts) if parts else self.shape(narrow)


def _ids(values: pd.Series) -> np.ndarray:
    return values.astype(str).to_numpy(dtype=object)
