"""A source read a batch ahead on a thread: the same batches in order, errors where they
happened, the source closed and the thread gone when the job stops early, and no more than
`depth` batches read ahead."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io.read_ahead import read_ahead


def _no_reader_left() -> bool:
    for _ in range(50):
        if not [t for t in threading.enumerate() if t.name == "read-ahead"]:
            return True
        time.sleep(0.02)
    return False


def test_the_batches_come_in_order_and_are_read_on_another_thread():
    threads: list[str] = []

    def source() -> Iterator[int]:
        for k in range(7):
            threads.append(threading.current_thread().name)
            yield k

    assert list(read_ahead(source())) == list(range(7))
    assert set(threads) == {"read-ahead"}
    assert _no_reader_left()


def test_an_error_while_reading_comes_after_the_batches_before_it():
    def source() -> Iterator[int]:
        yield 0
        yield 1
        raise InputError("activities.csv: row 2,000,001: cannot be read as csv")

    got = []
    with pytest.raises(InputError, match="row 2,000,001"):
        for batch in read_ahead(source()):
            got.append(batch)
    assert got == [0, 1]
    assert _no_reader_left()


def test_stopping_early_closes_the_source_and_ends_the_reader():
    closed = threading.Event()
    read: list[int] = []

    def source() -> Iterator[int]:
        try:
            for k in range(1000):
                read.append(k)
                yield k
        finally:
            closed.set()  # a database connection is closed here, on the reading thread

    batches = read_ahead(source(), depth=2)
    with pytest.raises(ValueError, match="a bad batch"):
        for batch in batches:
            if batch == 3:
                raise ValueError("a bad batch")
    batches.close()
    assert closed.wait(5)
    assert _no_reader_left()
    assert len(read) <= 3 + 1 + 2 + 1  # the batch in hand, the queue, and the one being put


def test_no_more_than_depth_batches_are_read_ahead():
    read: list[int] = []

    def source() -> Iterator[int]:
        for k in range(10):
            read.append(k)
            yield k

    batches = read_ahead(source(), depth=1)
    assert next(batches) == 0
    time.sleep(0.3)  # the reader has all the time it wants
    assert len(read) <= 3  # the first, one in the queue, one waiting to be put
    assert list(batches) == list(range(1, 10))
