"""Replacing several files as one: after a crash at any instant, all old or all new.

One rename replaces one file atomically; a scores file and its history file are two. So the new
files are first written in full beside their targets, then a journal naming every
(temporary, final) pair is put in place with one rename: that rename is the commit. The renames
follow, then the journal is removed. Whoever next opens the files (`recover`, under the same
lock) finishes a committed set whose journal is still there, or removes the temporary files of
one that never committed. A crash before the journal leaves the old files; after it, the new.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from leadscore.pipeline.io.locks import exclusive


def journal_path(primary: Path) -> Path:
    return primary.with_name(f".{primary.name}.commit")


def lock_path(primary: Path) -> Path:
    return primary.with_name(f".{primary.name}.lock")


def _temporaries(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def recover(paths: Sequence[Path]) -> bool:
    """Finish or undo an interrupted replacement of `paths` (the first is the primary, whose
    journal decides). Call under the lock. Returns whether anything was done."""
    primary = paths[0]
    journal = journal_path(primary)
    done = False
    if journal.exists():
        try:
            renames = json.loads(journal.read_text())["renames"]
        except (ValueError, KeyError, OSError):
            renames = []  # the journal is written whole before it is renamed: never seen here
        for tmp, final in renames:  # names in the primary's folder
            if (primary.parent / tmp).exists():
                os.replace(primary.parent / tmp, primary.parent / final)
        journal.unlink()
        _fsync_dir(primary.parent)
        done = True
    for path in paths:
        for stray in _temporaries(path):  # a replacement that never committed
            stray.unlink(missing_ok=True)
            done = True
    return done


@contextmanager
def locked(paths: Sequence[Path], timeout_s: float, what: str) -> Iterator[None]:
    """Hold the lock of `paths` (beside the primary) and recover them first."""
    with exclusive(lock_path(paths[0]), timeout_s, what):
        recover(paths)
        yield


@contextmanager
def replaced_together(paths: Sequence[Path]) -> Iterator[list[Path]]:
    """Yield a temporary path per target; when the block ends without error, the targets are
    replaced by them as one. Call under `locked(paths)`. On error nothing changes."""
    temps: list[Path] = []
    journaled = False
    try:
        for path in paths:
            handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.close(handle)
            temps.append(Path(name))
        yield temps
        umask = os.umask(0)
        os.umask(umask)
        for tmp in temps:  # a BI tool running as another user can read the scores
            os.chmod(tmp, 0o666 & ~umask)
            _fsync_file(tmp)
        _journal(paths, temps)
        journaled = True  # from here on the new files are the truth: recover() finishes them
        _apply(paths, temps)
    finally:
        if not journaled:
            for tmp in temps:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()


def _journal(paths: Sequence[Path], temps: Sequence[Path]) -> None:
    """Put the journal in place with one rename: the commit point."""
    primary = paths[0]
    handle, staged = tempfile.mkstemp(dir=primary.parent, prefix=f".{primary.name}.", suffix=".tmp")
    with os.fdopen(handle, "w") as out:
        json.dump({"renames": [[t.name, p.name] for t, p in zip(temps, paths, strict=True)]}, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(staged, journal_path(primary))
    _fsync_dir(primary.parent)


def _apply(paths: Sequence[Path], temps: Sequence[Path]) -> None:
    """Rename each temporary file onto its target, then drop the journal."""
    primary = paths[0]
    for tmp, path in zip(temps, paths, strict=True):
        os.replace(tmp, path)
    _fsync_dir(primary.parent)
    journal_path(primary).unlink()
