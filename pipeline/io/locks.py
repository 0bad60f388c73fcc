"""Exclusive locks between leadscore jobs on one machine, held as `flock` on a lock file.

The kernel releases an flock when its holder exits, however it exits (SIGKILL included), so a
lock is never left behind by a crash: whoever can take it knows its last holder is gone.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from leadscore.pipeline.errors import JobBusy


@contextmanager
def exclusive(path: Path, timeout_s: float, what: str) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing), waiting up to `timeout_s`.

    Raises JobBusy naming `what` when another process holds it for longer."""
    deadline = time.monotonic() + timeout_s
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise JobBusy(
                        f"another leadscore job holds {what} (lock {path}); waited "
                        f"{timeout_s:.0f} s. It is released when that job ends: retry later"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def held_by_someone(path: Path) -> bool:
    """Whether a live process holds the lock on `path` (False when the file is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing the descriptor releases a lock taken here
    return False
