"""Figures drawn in a forked child: the same PNGs as drawn in process, and the parent draws them
itself whenever the child cannot deliver (it failed, or it ran too long)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from leadscore.pipeline.io.figure_drawing import drawn_aside, save_figures

PARENT = os.getpid()


def _line(seed: int) -> Figure:
    figure = Figure(figsize=(3, 2), dpi=60)
    figure.subplots().plot(np.random.default_rng(seed).normal(size=50))
    return figure


def _figures() -> dict[str, object]:
    return {"first": lambda: _line(0), "second": lambda: _line(1)}


def test_drawn_aside_gives_the_pngs_drawn_in_process(tmp_path: Path):
    expected = {p.stem: p.read_bytes() for p in save_figures(tmp_path, _figures())}
    with drawn_aside(_figures()) as drawing:
        assert drawing.child is not None and drawing.child.pid != PARENT
        png = drawing.png()
    assert drawing.drawn_aside  # the child drew them
    assert png == expected and list(png) == ["first", "second"]


def test_the_child_writes_nothing_to_the_terminal(capfd):
    def noisy() -> Figure:
        print("from the child", file=sys.stderr)
        warnings.warn("a drawing warning", UserWarning, stacklevel=1)
        return _line(2)

    with drawn_aside({"noisy": noisy}) as drawing:
        png = drawing.png()
    assert drawing.drawn_aside and png["noisy"].startswith(b"\x89PNG")
    assert capfd.readouterr() == ("", "")


def test_a_figure_that_fails_fails_in_the_parent_too():
    def broken() -> Figure:
        raise ValueError("no data to draw")

    with drawn_aside({"broken": broken}) as drawing, pytest.raises(ValueError, match="no data"):
        drawing.png()
    assert not drawing.drawn_aside


def test_a_child_past_its_time_is_stopped_and_the_parent_draws():
    def slow_in_the_child() -> Figure:
        if os.getpid() != PARENT:
            time.sleep(60)
        return _line(3)

    started = time.perf_counter()
    with drawn_aside({"slow": slow_in_the_child}, timeout_s=1) as drawing:
        png = drawing.png()
    assert time.perf_counter() - started < 30
    assert not drawing.drawn_aside and not drawing.child.is_alive()
    assert png["slow"].startswith(b"\x89PNG")


def test_leaving_the_block_early_stops_the_child():
    def slow() -> Figure:
        time.sleep(60)
        return _line(4)

    with pytest.raises(RuntimeError), drawn_aside({"slow": slow}) as drawing:
        raise RuntimeError("the run failed while the figures were being drawn")
    assert not drawing.child.is_alive() and not drawing.folder.exists()


def test_a_fork_that_fails_leaves_the_figures_to_the_parent(monkeypatch):
    from multiprocessing.context import ForkProcess

    def no_fork(self) -> None:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(ForkProcess, "start", no_fork)
    with drawn_aside(_figures()) as drawing:
        png = drawing.png()
    assert drawing.child is None and not drawing.drawn_aside
    assert list(png) == ["first", "second"]


def test_the_child_dies_with_its_parent(tmp_path):
    # a parent killed with SIGKILL cannot stop its child: the kernel does (the child holds
    # copies of the parent's files, its locks among them)
    code = (
        "import os, signal, time\n"
        "from pathlib import Path\n"
        "from leadscore.pipeline.io.figure_drawing import drawn_aside\n"
        "def slow():\n"
        "    time.sleep(60)\n"
        "with drawn_aside({'slow': slow}) as drawing:\n"
        "    time.sleep(0.5)\n"
        "    Path('child').write_text(str(drawing.child.pid))\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    parent = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, timeout=60)
    assert parent.returncode == -9
    child = int((tmp_path / "child").read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; only its parent's wait is missing


def test_the_child_ends_after_its_own_time():
    def slow() -> Figure:
        time.sleep(60)
        return _line(5)

    with drawn_aside({"slow": slow}, timeout_s=1) as drawing:
        drawing.child.join(30)  # the parent does not stop it: its own alarm does (1 s + 5 s)
        assert drawing.child.exitcode == -signal.SIGALRM
