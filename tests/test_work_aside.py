"""Work done aside in a forked child: the value comes back from the child, and the parent
computes it itself whenever the child cannot deliver (it failed, ran too long, or no fork was
possible). The child's own guards (its silence, its death with the parent, its alarm) are tested
through the figures drawn aside, in test_figure_drawing.py."""

from __future__ import annotations

import gc
import os
import time
import weakref
from functools import partial
from pathlib import Path

import pytest

from leadscore.pipeline.io.work_aside import Aside

PARENT = os.getpid()


def test_the_value_comes_from_the_child():
    aside = Aside(os.getpid, timeout_s=60)
    assert aside.child is not None
    assert aside.result() == aside.child.pid != PARENT
    assert aside.delivered and not aside.child.is_alive()
    assert aside.result() == aside.child.pid  # computed once


def test_a_child_that_fails_leaves_the_value_to_the_parent():
    def fails_in_the_child() -> int:
        if os.getpid() != PARENT:
            raise RuntimeError("only in the child")
        return os.getpid()

    aside = Aside(fails_in_the_child, timeout_s=60)
    assert aside.result() == PARENT and not aside.delivered


def test_work_that_fails_fails_in_the_parent_too():
    def broken() -> int:
        raise ValueError("bad input")

    aside = Aside(broken, timeout_s=60)
    with pytest.raises(ValueError, match="bad input"):
        aside.result()
    assert not aside.delivered and not aside.child.is_alive()


def test_a_child_past_its_time_is_stopped_and_the_parent_computes():
    def slow_in_the_child() -> int:
        if os.getpid() != PARENT:
            time.sleep(60)
        return os.getpid()

    started = time.perf_counter()
    aside = Aside(slow_in_the_child, timeout_s=1)
    assert aside.result() == PARENT
    assert time.perf_counter() - started < 30
    assert not aside.delivered and not aside.child.is_alive()


def test_a_fork_that_fails_leaves_the_value_to_the_parent(monkeypatch):
    from multiprocessing.context import ForkProcess

    def no_fork(self) -> None:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(ForkProcess, "start", no_fork)
    aside = Aside(os.getpid, timeout_s=60)
    assert aside.child is None and aside.result() == PARENT and not aside.delivered


def test_wait_lets_the_child_finish_its_work(tmp_path: Path):
    # a job that fails while a child makes the MLflow store must not leave it half made
    def slow_write() -> None:
        time.sleep(1)
        (tmp_path / "made").write_text(str(os.getpid()))

    aside = Aside(slow_write, timeout_s=60)
    aside.wait()
    assert not aside.child.is_alive() and aside.child.exitcode == 0
    assert int((tmp_path / "made").read_text()) == aside.child.pid  # the child's, not redone


def test_the_work_and_what_it_holds_are_let_go_once_the_value_came():
    # the data fingerprint's work holds the run's loaded tables: they are freed when the
    # child's value comes, not at the end of the run when it is read
    class Tables:
        pass

    tables = Tables()
    held = weakref.ref(tables)
    aside = Aside(partial(len, [tables]), timeout_s=60)
    del tables
    deadline = time.monotonic() + 30
    while held() is not None and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    assert held() is None and aside.delivered
    assert aside.result() == 1


def test_a_new_stores_problem_comes_back_from_the_child_once(monkeypatch, tmp_path: Path):
    # another job holding the store: the child waits for it and gives up; the job raises what
    # the child met, once (it does not wait again for the lock in process)
    from leadscore.pipeline.errors import JobBusy
    from leadscore.pipeline.io import tracking, tracking_uri

    tries = tmp_path / "tries"

    def held_elsewhere() -> str:
        with tries.open("a") as out:
            out.write(f"{os.getpid()}\n")
        raise JobBusy("another leadscore job holds the MLflow store")

    monkeypatch.setattr(tracking, "configure_tracking", held_elsewhere)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    aside = tracking_uri.store_made_aside()
    assert aside is not None
    problem = aside.result()
    assert isinstance(problem, JobBusy) and "holds the MLflow store" in str(problem)
    assert aside.delivered
    assert [int(pid) for pid in tries.read_text().split()] == [aside.child.pid]


def test_an_existing_store_is_not_made_aside(monkeypatch, tmp_path: Path):
    from leadscore.pipeline.io import tracking_uri

    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    assert tracking_uri.new_sqlite_store(tracking_uri.tracking_uri())
    store.write_bytes(b"SQLite format 3\x00")
    assert tracking_uri.store_made_aside() is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://localhost/mlflow")
    assert tracking_uri.store_made_aside() is None
