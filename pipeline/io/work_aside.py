"""Work done aside: a function run in a forked child on the other core while the parent goes on.

Much of a training run is Python holding the GIL on one core (threads do not help), while the
machine has two. A forked child inherits the parent's data (no pickling, memory shared
copy-on-write), computes one value and sends it back through a pipe (so the value must be small
and picklable: a digest, a list of files, None). It leaves by `os._exit` (multiprocessing's fork
start), so none of the parent's exit handlers (an MLflow run's end) run in it. It writes
nothing to the terminal: its stdout and stderr go to /dev/null before it works, since the fork
may have copied a lock of the parent's spinner (rich's console) in its held state, and a write
through it would wait forever.

Whenever the child cannot deliver (not Linux, where forking a process with threads is safe
enough; no fork possible; the child failed, or ran past `timeout_s`), the parent computes the
value itself, so a failure surfaces as the same exception it would raise in process. The work
must therefore give the same value wherever it runs and be safe to run twice. The child holds
copies of the parent's open files (its locks among them), so it never outlives the parent (the
kernel kills it when the parent dies) nor its own time.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import multiprocessing
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Generic, TypeVar

T = TypeVar("T")
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def guard_forked_child(parent: int) -> None:
    """What a child forked from a job does first. It holds copies of the parent's open files,
    its locks among them: it must not outlive the parent (killed with SIGKILL, the parent could
    not stop it), so the kernel kills it when the parent dies. It writes nothing to the
    terminal (a lock of the spinner may have been copied held) and logs nothing."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # killed when the parent dies
    if os.getppid() != parent:  # the parent died before that took effect
        os._exit(1)
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (the process ends with it)
    logging.disable(logging.CRITICAL)


def _work_in_child(work: Callable[[], T], out: Connection, parent: int, timeout_s: float) -> None:
    guard_forked_child(parent)
    signal.alarm(int(timeout_s) + 5)  # nor its own time: SIGALRM ends the process
    warnings.simplefilter("ignore")
    out.send(work())


class Aside(Generic[T]):
    """`work()` being computed in a child process; `result()` waits for its value."""

    def __init__(self, work: Callable[[], T], timeout_s: float) -> None:
        self.work: Callable[[], T] | None = work
        self.timeout_s = timeout_s
        self.child: multiprocessing.process.BaseProcess | None = None
        self.delivered = False  # the value came from the child
        self._reader: Connection | None = None
        self._receiver: threading.Thread | None = None
        self._value: T | None = None
        self._done = False
        if sys.platform.startswith("linux"):  # macOS can fork, but its system libraries may not
            self._start(work)

    def _start(self, work: Callable[[], T]) -> None:
        context = multiprocessing.get_context("fork")
        reader, writer = context.Pipe(duplex=False)
        gc.freeze()  # the child's collector leaves the parent's objects (and their finalizers)
        try:
            child = context.Process(
                target=_work_in_child,
                args=(work, writer, os.getpid(), self.timeout_s),
                daemon=True,
            )
            child.start()
            self.child, self._reader = child, reader
        except OSError:  # no memory or no process left for a fork: computed here instead
            reader.close()
        finally:
            gc.unfreeze()
            writer.close()  # the child's copy stays open: its end (or death) shows as EOF here
        if self.child is not None:
            self._receiver = threading.Thread(target=self._receive, daemon=True)
            self._receiver.start()

    def _receive(self) -> None:
        """Take the value as soon as it comes (on a thread of its own), and let go of the work:
        what it holds (a run's loaded tables, say) is freed then, not when the value is read."""
        assert self._reader is not None
        try:
            if self._reader.poll(self.timeout_s):
                self._value = self._reader.recv()
                self.delivered = True
                self.work = None
        except (EOFError, OSError):  # the child ended without a value: it failed
            pass

    def result(self) -> T:
        """The child's value, or `work()` computed here when the child could not deliver."""
        if not self._done:
            if self._receiver is not None:
                self._receiver.join()  # the value, the child's end, or `timeout_s`
                if self.delivered and self.child is not None:
                    self.child.join(5)  # it has sent its value and is leaving
                self.stop()
            if not self.delivered:
                assert self.work is not None  # let go of only once the value came
                self._value = self.work()
            self.work = None
            self._done = True
        return self._value  # type: ignore[return-value]

    def wait(self) -> None:
        """Let the child finish, up to `timeout_s`, without computing the value here (a job
        that fails meanwhile must not leave a child's work half done)."""
        if self.child is not None and not self._done:
            self.child.join(self.timeout_s)
        self.stop()

    def stop(self) -> None:
        """Stop the child if it is still at work (a late value is not waited for)."""
        if self.child is not None and self.child.is_alive():
            self.child.kill()
            self.child.join()
        if self._receiver is not None:
            self._receiver.join()  # the child has ended: its end of the pipe is closed
        if self._reader is not None:
            self._reader.close()
