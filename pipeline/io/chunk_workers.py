"""Chunks of leads worked on every core: forked worker processes, results taken in chunk order.

Scoring a chunk is mostly Python and NumPy holding the GIL (reading its activities, features,
the reason sentences and their JSON), so threads would not help and the job used one of the
machine's cores for most of its time. Here each chunk runs in a worker process forked from the
job once its tables and model are loaded: a worker inherits them (no pickling, memory shared
copy-on-write), is told only a chunk's number, builds the chunk itself (a spilled log is read
from disk by the worker) and sends back the chunk's rows. The parent takes them in chunk order,
so whatever it does with them (staging the reasons on disk, the progress bar) happens as in one
process, and the rows come out the same.

Each worker works on one thread (`setup`, e.g. `tree_shap.use_one_thread`): the parallelism
moves from threads to processes, and a worker never enters an OpenMP thread pool it inherited
in the state the fork found it (GNU OpenMP hangs there).

The guards are those of `work_aside`: a worker dies with the parent, writes nothing to the
terminal, and ignores Ctrl-C (the parent stops it). Warnings a chunk raises are sent back and
raised again in the parent. An exception in a chunk is raised in the parent as it would be in
process. A worker that dies (the kernel's out-of-memory killer, say), or runs past
`CHUNK_TIMEOUT_S` on one chunk (a hang; it is stopped), is said so, and the chunks not yet
taken are worked in the job's own process. Where forking is not safe (not Linux) everything
runs in process.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import pickle
import signal
import sys
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from leadscore.pipeline.errors import InputError, JobBusy, JobFailure
from leadscore.pipeline.io.work_aside import guard_forked_child

Task = Callable[[], pd.DataFrame]  # one chunk's work, wherever it runs
Caught = list[tuple[str, type[Warning], str, int]]  # message, category, file, line

CHUNKS_PER_WORKER = 4
MIN_CHUNK_LEADS = 5_000
# A chunk takes seconds (100,000 leads: about 5 s on one core here); a worker past this is hung
CHUNK_TIMEOUT_S = 1800.0

# In a worker: the parent's tasks, inherited through the fork
_tasks: Sequence[Task] = ()


@dataclass(frozen=True)
class Workers:
    """How chunks are worked: `count` processes at once (1: in the job's own process)."""

    count: int
    setup: Callable[[], None] | None = None  # run first in each worker
    warn: Callable[[str], None] | None = None  # told when the workers stopped early

    @property
    def forking(self) -> bool:
        """Whether chunks go to forked workers (Linux only: macOS' system libraries may not
        survive a fork of a process with threads)."""
        return self.count > 1 and sys.platform.startswith("linux")


def usable_cores(quota_file: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The cores this process may run on: its affinity (which `taskset` or a cpuset sets),
    capped by a CPU quota (cgroup v2's cpu.max, which `docker --cpus` or a Kubernetes limit
    sets) rounded up."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
    try:
        quota, period = quota_file.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):  # no cgroup v2, or a file not as expected: no quota known
        pass
    return cores


def chunk_leads(leads: int, chunk_size: int, workers: Workers | None) -> int:
    """Leads per chunk: `chunk_size`, or with forked workers fewer, about `CHUNKS_PER_WORKER`
    chunks each, so the workers finish near together (and no fewer than `MIN_CHUNK_LEADS`:
    each chunk has fixed costs)."""
    if workers is None or not workers.forking:
        return chunk_size
    even = -(-leads // (CHUNKS_PER_WORKER * workers.count))
    return min(chunk_size, max(MIN_CHUNK_LEADS, even))


def worked_in_order(tasks: Sequence[Task], workers: Workers | None) -> Iterator[pd.DataFrame]:
    """Each task's result, in task order: in forked workers when `workers` fork and there is
    more than one task, otherwise here, one after the other."""
    if workers is None or not workers.forking or len(tasks) < 2:
        for task in tasks:
            yield task()
        return
    yield from _pooled(tasks, workers)


def _pooled(tasks: Sequence[Task], workers: Workers) -> Iterator[pd.DataFrame]:
    count = min(workers.count, len(tasks))
    pending: deque[Future[tuple[pd.DataFrame, Caught]]] = deque()
    pool = ProcessPoolExecutor(
        count,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_start_worker,
        initargs=(os.getpid(), workers.setup, tasks),  # forked: inherited, not pickled
    )
    # The workers' collectors leave the parent's objects (and their pages) alone, and the
    # parent's leave the pages it shares with them, until the pool stops.
    gc.freeze()
    submitted = taken = 0
    broken = hung = False
    try:
        try:
            pending.append(pool.submit(_work, 0))  # forks the workers
            submitted = 1
        except OSError:  # no memory or no process left for a fork: all of it here
            broken = True
        while taken < len(tasks) and not broken:
            try:
                # a chunk ahead of each worker's: a worker finishing one has its next at hand
                while submitted < len(tasks) and len(pending) < count + 1:
                    pending.append(pool.submit(_work, submitted))
                    submitted += 1
                out, caught = pending.popleft().result(timeout=CHUNK_TIMEOUT_S)
            except BrokenProcessPool:  # a worker died (submitting or waiting: the same)
                broken = True
                break
            except FutureTimeout:  # a worker hung (a chunk takes seconds): stopped below
                hung = True
                break
            for warning in caught:
                warnings.warn_explicit(*warning)
            taken += 1
            yield out
    finally:
        _stop(pool, graceful=taken == len(tasks))
        gc.unfreeze()
    if taken < len(tasks):  # a worker died or hung, or none could be forked: the rest here
        if workers.warn is not None and submitted:
            what = (
                f"ran past {CHUNK_TIMEOUT_S:.0f} s on one chunk and was stopped"
                if hung
                else "died (out of memory?)"
            )
            workers.warn(
                f"a scoring worker process {what}; the {len(tasks) - taken} chunk(s) left are "
                "worked in the job's own process"
            )
        for task in tasks[taken:]:
            yield task()


def _stop(pool: ProcessPoolExecutor, graceful: bool) -> None:
    """Let the workers leave (every chunk taken), or stop them at once (an error or Ctrl-C in
    the parent, a worker dead: their work is not wanted); either way they are reaped."""
    if not graceful:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            if process.is_alive():
                process.kill()
    pool.shutdown(wait=True, cancel_futures=True)


def _start_worker(parent: int, setup: Callable[[], None] | None, tasks: Sequence[Task]) -> None:
    global _tasks
    guard_forked_child(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which stops us
    with contextlib.suppress(OSError):  # when memory runs out, the kernel kills a worker first
        Path("/proc/self/oom_score_adj").write_text("1000")
    _tasks = tasks
    if setup is not None:
        setup()


def _work(index: int) -> tuple[pd.DataFrame, Caught]:
    """Task `index` of the parent's, with the warnings it raised (as `warn_explicit` takes
    them, so the parent's filters see where they came from)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # the parent's filters decide what is shown
        try:
            out = _tasks[index]()
        except Exception as exc:
            raise _portable(exc) from None
    return out, [_portable_warning(w) for w in caught]


def _portable(exc: Exception) -> Exception:
    """`exc`, or one the parent can unpickle with its message and its kind (input, busy or
    other failure: the exit code), when `exc` itself would not survive the trip."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        kind = next(
            (k for k in (JobBusy, JobFailure, InputError) if isinstance(exc, k)), RuntimeError
        )
        return kind(f"{type(exc).__name__}: {exc}")


def _portable_warning(w: warnings.WarningMessage) -> tuple[str, type[Warning], str, int]:
    category = w.category
    try:
        pickle.loads(pickle.dumps(category))
    except Exception:  # a category the parent cannot import
        category = UserWarning
    return str(w.message), category, w.filename, w.lineno or 0
