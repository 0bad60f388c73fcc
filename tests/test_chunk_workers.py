"""Chunks worked in forked processes: the same rows in the same order as in process, warnings
and errors brought back, a dead worker said and its chunks worked here, no worker left."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml

from leadscore.pipeline.errors import InputError
from leadscore.pipeline.io import chunk_workers
from leadscore.pipeline.io.activities import MIN_BUCKET_LEADS
from leadscore.pipeline.io.chunk_workers import Workers, chunk_leads, worked_in_order

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="chunks go to forked workers on Linux only"
)


def _task(k: int) -> chunk_workers.Task:
    def run() -> pd.DataFrame:
        return pd.DataFrame({"chunk": [k] * (k + 1), "pid": os.getpid()})

    return run


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead, only not yet reaped
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_results_come_in_task_order_from_other_processes():
    tasks = [_task(k) for k in range(9)]
    here = list(worked_in_order(tasks, None))
    there = list(worked_in_order(tasks, Workers(2)))
    assert [list(t["chunk"]) for t in there] == [list(h["chunk"]) for h in here]
    pids = {int(t["pid"].iloc[0]) for t in there}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # one may take them all
    assert {int(h["pid"].iloc[0]) for h in here} == {os.getpid()}
    time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids)  # the workers left with the last chunk


def test_one_task_or_one_worker_stays_in_process():
    assert {int(t["pid"].iloc[0]) for t in worked_in_order([_task(0)], Workers(2))} == {os.getpid()}
    assert {int(t["pid"].iloc[0]) for t in worked_in_order([_task(0), _task(1)], Workers(1))} == {
        os.getpid()
    }


def test_each_worker_runs_setup_first():
    def setup() -> None:
        os.environ["LEADSCORE_TEST_WORKER"] = "set up"

    def task() -> pd.DataFrame:
        return pd.DataFrame({"seen": [os.environ.get("LEADSCORE_TEST_WORKER", "")]})

    out = list(worked_in_order([task] * 4, Workers(2, setup)))
    assert [t["seen"].iloc[0] for t in out] == ["set up"] * 4
    assert "LEADSCORE_TEST_WORKER" not in os.environ  # not in the parent


def test_a_chunks_warnings_are_raised_in_the_parent():
    def task() -> pd.DataFrame:
        warnings.warn("column 'x' looks odd", UserWarning, stacklevel=1)
        return pd.DataFrame({"pid": [os.getpid()]})

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = list(worked_in_order([task, task], Workers(2)))
    assert {int(t["pid"].iloc[0]) for t in out} != {os.getpid()}
    assert [(w.category, str(w.message)) for w in caught] == [
        (UserWarning, "column 'x' looks odd")
    ] * 2


def test_a_chunks_error_is_raised_in_the_parent_and_the_workers_stop(tmp_path: Path):
    def failing() -> pd.DataFrame:
        for _ in range(200):  # fails once the other worker is at work on a slow chunk
            if list(tmp_path.glob("*.pid")):
                break
            time.sleep(0.05)
        raise InputError("column 'occurred_at' of chunk 2: not a time")

    def slow(k: int) -> chunk_workers.Task:
        def run() -> pd.DataFrame:
            (tmp_path / f"{os.getpid()}.pid").touch()
            time.sleep(30)
            return pd.DataFrame({"k": [k]})

        return run

    started = time.monotonic()
    with pytest.raises(InputError, match="column 'occurred_at' of chunk 2"):
        list(worked_in_order([failing, slow(1), slow(2), slow(3)], Workers(2)))
    assert time.monotonic() - started < 20  # the slow chunks were not waited for
    pids = [int(p.stem) for p in tmp_path.glob("*.pid")]
    assert pids
    assert not any(_alive(pid) for pid in pids)


def test_an_error_that_cannot_be_pickled_still_comes_back_with_its_message():
    class LocalError(ValueError):  # a class pickle cannot find by name
        pass

    def failing() -> pd.DataFrame:
        raise LocalError("chunk 1: a value nobody expected")

    with pytest.raises(RuntimeError, match="LocalError: chunk 1: a value nobody expected"):
        list(worked_in_order([failing, failing], Workers(2)))

    class LocalInputError(InputError):  # still the input's fault: the CLI exits 2
        pass

    def bad_input() -> pd.DataFrame:
        raise LocalInputError("column 'stage' of chunk 1: an unknown value")

    with pytest.raises(InputError, match="LocalInputError: column 'stage'"):
        list(worked_in_order([bad_input, bad_input], Workers(2)))


def test_the_parent_failing_stops_the_workers(tmp_path: Path):
    def chunk(seconds: float) -> chunk_workers.Task:
        def run() -> pd.DataFrame:
            (tmp_path / f"{os.getpid()}.pid").touch()
            time.sleep(seconds)
            return pd.DataFrame({"pid": [os.getpid()]})

        return run

    started = time.monotonic()
    results = worked_in_order([chunk(0.5)] + [chunk(30)] * 5, Workers(2))
    next(results)  # the parent takes one chunk, then fails while the workers work
    results.close()
    assert time.monotonic() - started < 20  # the workers' chunks were not waited for
    time.sleep(0.2)
    pids = [int(p.stem) for p in tmp_path.glob("*.pid")]
    assert pids and not any(_alive(pid) for pid in pids)


@pytest.mark.parametrize("parent_busy_s", [0.0, 0.3])
def test_a_dead_worker_is_said_and_its_chunks_worked_here(parent_busy_s):
    """Whether the parent is waiting for the dead worker's chunk or busy with an earlier one
    (staging its reasons) when the worker dies."""
    said: list[str] = []
    parent = os.getpid()

    def dying() -> pd.DataFrame:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer would
        return pd.DataFrame({"k": [1], "pid": [os.getpid()]})

    tasks = [_task(0), dying, *(_task(k) for k in range(2, 8))]
    out = []
    for result in worked_in_order(tasks, Workers(2, warn=said.append)):
        out.append(result)
        time.sleep(parent_busy_s)
    assert [list(t["k"] if "k" in t else t["chunk"]) for t in out] == [
        [0], [1], *([k] * (k + 1) for k in range(2, 8))
    ]  # fmt: skip
    assert int(out[1]["pid"].iloc[0]) == parent  # the chunk the dead worker had, worked here
    # the chunk before may not have come back before the pool broke: then it is redone here
    assert len(said) == 1 and "worker process died" in said[0]
    assert re.search(r"the [78] chunk\(s\) left", said[0])


def test_a_hung_worker_is_stopped_and_its_chunks_worked_here(monkeypatch, tmp_path: Path):
    said: list[str] = []
    parent = os.getpid()
    monkeypatch.setattr(chunk_workers, "CHUNK_TIMEOUT_S", 1.0)

    def hanging() -> pd.DataFrame:
        if os.getpid() != parent:
            (tmp_path / f"{os.getpid()}.pid").touch()
            time.sleep(60)  # as a worker stuck in a lock would
        return pd.DataFrame({"k": [1], "pid": [os.getpid()]})

    started = time.monotonic()
    out = list(worked_in_order([_task(0), hanging, _task(2)], Workers(2, warn=said.append)))
    assert time.monotonic() - started < 20
    assert [len(t) for t in out] == [1, 1, 3] and int(out[1]["pid"].iloc[0]) == parent
    assert len(said) == 1 and "ran past 1 s on one chunk" in said[0]
    assert re.search(r"the [23] chunk\(s\) left", said[0])
    time.sleep(0.2)
    pids = [int(p.stem) for p in tmp_path.glob("*.pid")]
    assert pids and not any(_alive(pid) for pid in pids)  # the hung worker was stopped


def test_a_fork_that_fails_leaves_every_chunk_to_the_parent(monkeypatch):
    said: list[str] = []

    def no_fork(*args: object, **kwargs: object) -> object:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(chunk_workers.ProcessPoolExecutor, "submit", no_fork)
    out = list(worked_in_order([_task(0), _task(1), _task(2)], Workers(2, warn=said.append)))
    assert [list(t["chunk"]) for t in out] == [[0], [1, 1], [2, 2, 2]]
    assert {int(t["pid"].iloc[0]) for t in out} == {os.getpid()}
    assert not said  # no worker died: there were none


def test_usable_cores_follow_a_cpu_quota(tmp_path: Path):
    cores = len(os.sched_getaffinity(0))
    quota = tmp_path / "cpu.max"
    quota.write_text("max 100000\n")
    assert chunk_workers.usable_cores(quota) == cores
    quota.write_text("150000 100000\n")  # docker --cpus=1.5
    assert chunk_workers.usable_cores(quota) == min(cores, 2)
    quota.write_text("50000 100000\n")
    assert chunk_workers.usable_cores(quota) == 1
    assert chunk_workers.usable_cores(tmp_path / "none") == cores


def test_chunks_shrink_so_each_worker_has_several():
    assert chunk_leads(1_000_000, 100_000, None) == 100_000
    assert chunk_leads(1_000_000, 100_000, Workers(1)) == 100_000
    assert chunk_leads(1_000_000, 100_000, Workers(2)) == 100_000
    assert chunk_leads(100_000, 100_000, Workers(2)) == 12_500
    assert chunk_leads(9_000, 100_000, Workers(2)) == chunk_workers.MIN_CHUNK_LEADS
    assert chunk_leads(9_000, 1_000, Workers(2)) == 1_000  # never above the configured size


def _tables(db: Path) -> dict[str, pd.DataFrame]:
    with sqlite3.connect(db) as connection:
        out = {}
        for table in ("lead_scores", "lead_score_history", "lead_score_changes"):
            frame = pd.read_sql(f"SELECT * FROM {table}", connection)
            times = [c for c in frame.columns if c in ("scored_at", "batch_id")]
            out[table] = frame.drop(columns=times).sort_values("lead_id").reset_index(drop=True)
        return out


def test_score_writes_the_same_rows_with_workers_or_without(trained_copy, run_cli):
    """The real job on more leads than a bucket of the spilled log holds (so more than one
    chunk, and the chunks go to forked workers), many chunks: scores, grades, reasons and
    score changes identical whether they are worked in two processes or in the job's own."""
    workdir, _ = trained_copy(6000, 3, "2026-10-01")
    run_cli("demo-data", "--out", "more", "--leads", "25000", "--seed", "5")
    leads = pd.read_parquet(workdir / "more" / "leads.parquet")
    assert len(leads) > 2 * MIN_BUCKET_LEADS  # three buckets at least: the workers fork
    config_path = workdir / "configs" / "demo.yaml"
    config = yaml.safe_load(config_path.read_text())
    outputs = {}
    for workers in (1, 2):
        config.setdefault("scoring", {}).update(workers=workers, chunk_size=3000)
        config_path.write_text(yaml.safe_dump(config))
        out = f"scores_{workers}.db"
        run_cli("score", "--data", "more", "--as-of", "2026-10-01", "--output", out)
        outputs[workers] = _tables(workdir / out)
    for table, frame in outputs[1].items():
        assert len(frame) > 15_000
        pd.testing.assert_frame_equal(outputs[2][table], frame, obj=table)
