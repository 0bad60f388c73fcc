"""Tidy terminal output: one line per finished step, a spinner while a step runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from leadscore.pipeline.redaction import redact_text


class SafeConsole(Console):
    """A console that hides passwords and secret values in every text it prints."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        super().print(*(redact_text(o) if isinstance(o, str) else o for o in objects), **kwargs)


class Steps:
    """Prints `✓ step (1.2s)` as each step of a command finishes, to stderr."""

    def __init__(self, quiet: bool = False) -> None:
        self.console = SafeConsole(stderr=True, quiet=quiet, highlight=False, soft_wrap=True)

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        start = time.perf_counter()
        with self.console.status(f"{escape(redact_text(title))}…"):
            yield
        self.console.print(
            f"[green]✓[/green] {escape(title)} [dim]({time.perf_counter() - start:.1f}s)[/dim]"
        )

    @contextmanager
    def progress(self, title: str, total: int) -> Iterator[Callable[[int], None]]:
        """A step with a progress bar; the caller advances it by units done."""
        start = time.perf_counter()
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        live = self.console.is_terminal  # a log file gets the ✓ line only
        with Progress(*columns, console=self.console, transient=True, disable=not live) as bar:
            task = bar.add_task(escape(title), total=total)
            yield lambda done: bar.advance(task, done)
        self.console.print(
            f"[green]✓[/green] {escape(title)} [dim]({time.perf_counter() - start:.1f}s)[/dim]"
        )

    def note(self, text: str) -> None:
        self.console.print(f"  {escape(text)}")

    def warn(self, text: str) -> None:
        self.console.print(f"[yellow]![/yellow] {escape(text)}")
