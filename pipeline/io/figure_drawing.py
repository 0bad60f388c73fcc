"""Figures drawn to PNG files in a child process while the parent goes on.

A training run's seven plots take about 2 s to draw, all of it Python holding the GIL (threads do
not help), while the parent spends about as long logging the run and the model to MLflow on one
core. A forked child draws them on the other core. The child inherits the data (no pickling,
memory shared copy-on-write), writes only files in its own folder, touches no database, and
leaves by `os._exit` (multiprocessing's fork start), so none of the parent's exit handlers (an
MLflow run's end) run in it. It writes nothing to the terminal either: its stdout and stderr go
to /dev/null before it draws, since the fork may have copied a lock of the parent's spinner
(rich's console) in its held state, and a write through it would wait forever.

Whenever the child cannot deliver (not Linux, where forking a process with threads is safe
enough; no fork possible; the child failed, or ran past `timeout_s`), the parent draws the
figures itself: the same files, so a failure in drawing surfaces as the same exception it would
raise in process. The child holds copies of the parent's open files (its locks among them), so
it never outlives the parent (the kernel kills it when the parent dies) nor its own time.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import multiprocessing
import os
import signal
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Figures = dict[str, Callable[[], "Figure"]]
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def save_figures(folder: Path, figures: Figures) -> list[Path]:
    """Draw and save each figure as `<name>.png` in `folder`; the files, in order."""
    written = []
    for name, draw in figures.items():
        path = folder / f"{name}.png"
        draw().savefig(path, bbox_inches="tight")
        written.append(path)
    return written


def _draw_in_child(folder: Path, figures: Figures, parent: int, timeout_s: float) -> None:
    # The child holds copies of the parent's open files, its locks among them: it must not
    # outlive the parent (killed with SIGKILL, it could not stop the child) nor its own time.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # killed when the parent dies
    if os.getppid() != parent:  # the parent died before that took effect
        os._exit(1)
    signal.alarm(int(timeout_s) + 5)  # SIGALRM ends the process
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (the process ends here)
    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    save_figures(folder, figures)


class Drawing:
    """Figures being drawn aside; `png()` waits for them."""

    def __init__(self, figures: Figures, folder: Path, timeout_s: float) -> None:
        self.figures, self.folder, self.timeout_s = figures, folder, timeout_s
        self.child: multiprocessing.process.BaseProcess | None = None
        if sys.platform.startswith("linux"):  # macOS can fork, but its system libraries may not
            gc.freeze()  # the child's collector leaves the parent's objects (and their finalizers)
            try:
                child = multiprocessing.get_context("fork").Process(
                    target=_draw_in_child,
                    args=(folder, figures, os.getpid(), timeout_s),
                    daemon=True,
                )
                child.start()
                self.child = child
            except OSError:  # no memory or no process left for a fork: drawn here instead
                self.child = None
            finally:
                gc.unfreeze()
        self.drawn_aside = False

    def png(self) -> dict[str, bytes]:
        """Each figure's PNG bytes by name, in order: the child's files, or drawn here."""
        if self.child is not None:
            self.child.join(self.timeout_s)
            if self.child.is_alive():
                self.stop()
            paths = [self.folder / f"{name}.png" for name in self.figures]
            self.drawn_aside = self.child.exitcode == 0 and all(p.is_file() for p in paths)
        if not self.drawn_aside:
            save_figures(self.folder, self.figures)
        return {name: (self.folder / f"{name}.png").read_bytes() for name in self.figures}

    def stop(self) -> None:
        if self.child is not None and self.child.is_alive():
            self.child.kill()
            self.child.join()


@contextmanager
def drawn_aside(figures: Figures, timeout_s: float = 120.0) -> Iterator[Drawing]:
    """Start drawing `figures` in a child process; the child is stopped, and its folder removed,
    when the block ends, however it ends."""
    with tempfile.TemporaryDirectory(prefix="leadscore-plots-") as folder:
        drawing = Drawing(figures, Path(folder), timeout_s)
        try:
            yield drawing
        finally:
            drawing.stop()
