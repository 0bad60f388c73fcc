"""A source's next batch read on a thread while the job works on the current one.

Streaming the activity log alternates reading a batch (Arrow decoding Parquet, pandas parsing
CSV, a database driver fetching rows: work that mostly lets go of the GIL) with mapping,
checking and splitting it (pandas and NumPy on the job's thread). Done one after the other,
one core waits while the other works; with the next batch read ahead, the two overlap.

The whole source iterator runs on the reading thread (a database connection is made, used and
closed there), at most `depth` batches ahead, so memory grows by those batches only. An error
while reading is raised in the job at the batch where it happened, after the batches before it.
When the job stops early (an error in a batch, Ctrl-C), the reading thread stops at its next
batch and closes the source.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Reader(threading.Thread, Generic[T]):
    def __init__(self, batches: Iterator[T], depth: int) -> None:
        super().__init__(name="read-ahead", daemon=True)
        self.batches = batches
        self.ready: queue.Queue[object] = queue.Queue(maxsize=depth)
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            for batch in self.batches:
                if not self._put(batch):
                    return
            self._put(_END)
        except BaseException as exc:  # raised in the job, where the batch was wanted
            self._put(_Failed(exc))
        finally:
            close = getattr(self.batches, "close", None)
            if close is not None:
                close()

    def _put(self, item: object) -> bool:
        """Hand `item` over, unless the job stopped taking batches."""
        while not self.stopped.is_set():
            try:
                self.ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


def read_ahead(batches: Iterator[T], depth: int = 1) -> Iterator[T]:
    """`batches` in order, up to `depth` of them read ahead on a thread."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, not {depth}")
    reader: _Reader[T] = _Reader(batches, depth)
    reader.start()
    try:
        while True:
            item = reader.ready.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        reader.stopped.set()
        reader.join()
