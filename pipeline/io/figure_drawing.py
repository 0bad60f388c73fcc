"""Figures drawn to PNG files in a child process while the parent goes on.

A training run's seven plots take about 2 s to draw, all of it Python holding the GIL, while the
parent spends about as long logging the run and the model to MLflow on one core. A forked child
(`work_aside.Aside`) draws them on the other core into a folder of its own, and touches no
database; whenever it cannot deliver, the parent draws the same files itself, so a failure in
drawing surfaces as the same exception it would raise in process.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from leadscore.pipeline.io.work_aside import Aside

if TYPE_CHECKING:
    import multiprocessing

    from matplotlib.figure import Figure

Figures = dict[str, Callable[[], "Figure"]]


def save_figures(folder: Path, figures: Figures) -> list[Path]:
    """Draw and save each figure as `<name>.png` in `folder`; the files, in order."""
    written = []
    for name, draw in figures.items():
        path = folder / f"{name}.png"
        draw().savefig(path, bbox_inches="tight")
        written.append(path)
    return written


class Drawing:
    """Figures being drawn aside; `png()` waits for them."""

    def __init__(self, figures: Figures, folder: Path, timeout_s: float) -> None:
        self.figures, self.folder = figures, folder
        self.aside = Aside(partial(save_figures, folder, figures), timeout_s)

    @property
    def child(self) -> multiprocessing.process.BaseProcess | None:
        return self.aside.child

    @property
    def drawn_aside(self) -> bool:
        return self.aside.delivered

    def png(self) -> dict[str, bytes]:
        """Each figure's PNG bytes by name, in order: the child's files, or drawn here."""
        self.aside.result()
        return {name: (self.folder / f"{name}.png").read_bytes() for name in self.figures}

    def stop(self) -> None:
        self.aside.stop()


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
